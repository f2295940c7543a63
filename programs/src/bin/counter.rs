//! `counter`: four threads each add 1 to a shared `Mutex<u64>` 10,000
//! times, sometimes yielding inside the critical section to provoke
//! contention. Prints `counter total <n>`, reports it to its starter
//! (`total`) and exits 0 if n is 40000.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::sync::Mutex;
use amoeba_rt::thread;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

const THREADS: u64 = 4;
const ROUNDS: u64 = 10_000;

fn main(_argument: u64) -> i32 {
    let total = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            let total = total.clone();
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    let mut count = total.lock();
                    let seen = *count;
                    // Read, yield, write: without mutual exclusion another
                    // thread's increments in between would be lost.
                    if (round + worker) % 500 == 0 {
                        thread::yield_now();
                    }
                    *count = seen + 1;
                    drop(count);
                    if round % 97 == 0 {
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join();
    }
    let total = *total.lock();
    println!("counter total {total}");
    let _ = starter::report("total", Value::Unsigned(total));
    if total == THREADS * ROUNDS { 0 } else { 1 }
}
