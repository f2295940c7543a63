//! The run server's pure core: which processor of the pool should run a program.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;
