//! The nucleus: the small kernel every board of the pool runs.

// The kernel only exists for the bare-metal target; on the host this binary
// is a stub so that workspace-wide `cargo test` and `cargo clippy` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the nucleus runs on QEMU virt boards: build it with --target aarch64-unknown-none");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
#[path = "arch/aarch64/mod.rs"]
mod arch;
#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod devicetree;
#[cfg(target_os = "none")]
mod disk;
#[cfg(target_os = "none")]
mod disk_self_test;
#[cfg(target_os = "none")]
mod drivers;
#[cfg(target_os = "none")]
mod group;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod memory;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
mod power;
#[cfg(target_os = "none")]
mod process;
#[cfg(target_os = "none")]
mod rpc;
#[cfg(target_os = "none")]
mod services;
#[cfg(target_os = "none")]
mod sync;
#[cfg(target_os = "none")]
mod syscall;
#[cfg(target_os = "none")]
mod trap;

#[cfg(target_os = "none")]
mod startup;
