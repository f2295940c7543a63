//! `rtc`: tells run-to-completion scheduling from time slicing. A second
//! thread sets a flag when it first runs; the main thread busy-loops ~300 ms
//! (no system call but `time`) and notes whether the flag got set meanwhile.
//! Prints `rtc: interleaved=yes` (preemptive) or `rtc: interleaved=no`
//! (run to completion), reports the same to its starter (`interleaved`),
//! exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::{println, starter};
use amoeba_rt::{thread, time};
use core::sync::atomic::{AtomicBool, Ordering};

amoeba_rt::entry!(main);

const BUSY_US: u64 = 300_000;

fn main(_argument: u64) -> i32 {
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let other = thread::spawn(move || flag.store(true, Ordering::SeqCst));
    let start = time::now_us();
    while time::now_us() - start < BUSY_US {
        core::hint::spin_loop();
    }
    let interleaved = ran.load(Ordering::SeqCst);
    other.join();
    println!("rtc: interleaved={}", if interleaved { "yes" } else { "no" });
    let _ = starter::report("interleaved", Value::Flag(interleaved));
    0
}
