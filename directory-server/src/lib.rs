//! The SOAP directory service's pure core: directories as rows of names mapped to
//! capability sets with rights columns, as a state machine over ordered updates.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;
