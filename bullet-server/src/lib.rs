//! The Bullet file server's pure core: immutable files stored contiguously on a
//! block device, a whole-file RAM cache, and crash-safe commits.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;
