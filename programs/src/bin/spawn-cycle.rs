//! `spawn-cycle`: creates and waits for `nop` processes over and over, to
//! show that a board reuses what a process takes (address-space ids,
//! memory, process records) once it has exited. The argument's low 32 bits
//! are the number of processes, bits 32..40 how many run at once (at least
//! one). Prints progress, then `spawn-cycle: N of N created and exited`
//! and exits 0; at the first failure it says which and exits 1. It reports
//! how many were created and exited to its starter (`done`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::process;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

/// A progress line every this many processes.
const PROGRESS_EVERY: u64 = 10_000;

fn main(argument: u64) -> i32 {
    let total = argument & 0xffff_ffff;
    let at_once = ((argument >> 32) & 0xff).max(1);
    let mut done = 0u64;
    let mut running = Vec::with_capacity(at_once as usize);
    while done < total {
        let batch = at_once.min(total - done);
        for _ in 0..batch {
            match process::spawn("nop", 0) {
                Ok(child) => running.push(child),
                Err(status) => {
                    println!(
                        "spawn-cycle: creating process {} failed: {status}",
                        done + running.len() as u64
                    );
                    return 1;
                }
            }
        }
        for child in running.drain(..) {
            match child.wait() {
                Ok(0) => done += 1,
                Ok(status) => {
                    println!("spawn-cycle: process {} exited with {status}", child.pid);
                    return 1;
                }
                Err(error) => {
                    println!("spawn-cycle: waiting for process {} failed: {error}", child.pid);
                    return 1;
                }
            }
            if done.is_multiple_of(PROGRESS_EVERY) {
                println!("spawn-cycle: {done} created and exited");
            }
        }
    }
    println!("spawn-cycle: {done} of {total} created and exited");
    let _ = starter::report("done", Value::Unsigned(done));
    0
}
