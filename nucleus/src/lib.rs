//! The host-testable part of the nucleus: logic that needs no machine, kept
//! apart so that `cargo test` on the host exercises it. The kernel itself is
//! the `nucleus` binary (`main.rs`), built for `aarch64-unknown-none`.

#![no_std]

extern crate alloc;

pub mod asid;
pub mod call_types;
pub mod contiguous;
pub mod disk_queue;
pub mod owner_watch;

// Pure parts of the kernel's modules, kept in the kernel's folders next to
// the code that acts on them.
#[path = "process/server/load_meter.rs"]
pub mod load_meter;
#[path = "process/pending_signals.rs"]
pub mod pending_signals;
#[path = "process/run_queue.rs"]
pub mod run_queue;
#[path = "process/server/requests.rs"]
pub mod server_requests;
#[path = "syscall/args.rs"]
pub mod syscall_args;
