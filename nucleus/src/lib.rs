//! The host-testable part of the nucleus: logic that needs no machine, kept
//! apart so that `cargo test` on the host exercises it. The kernel itself is
//! the `nucleus` binary (`main.rs`), built for `aarch64-unknown-none`.

#![no_std]

extern crate alloc;

pub mod asid;
pub mod contiguous;
pub mod owner_watch;
