//! `bench`: costs in counter ticks (`cntvct_el0`, best of several runs):
//! a null system call (`time`), a thread context switch (two threads
//! ping-ponging through futexes, per switch, including the wake and wait
//! calls), and process creation (from just before `process_create` to the
//! first instruction of `main` in `nop`, which writes the counter into a
//! segment shared with this process).
//!
//! Prints `bench ticks-per-second <hz>`, then `bench null-syscall <ticks>`,
//! `bench context-switch <ticks> (<ratio>x null syscall)` and
//! `bench process-create <ticks> (<ratio>x null syscall)`; exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use amoeba_abi::Status;
use amoeba_abi::syscall::MAP_WRITE;
use amoeba_rt::println;
use amoeba_rt::process::{Builder, Process};
use amoeba_rt::segment::Segment;
use amoeba_rt::{sys, thread, time};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

amoeba_rt::entry!(main);

const NULL_CALLS: u64 = 1000;
const NULL_RUNS: u32 = 20;
const ROUND_TRIPS: u64 = 500;
const SWITCH_RUNS: u32 = 5;
const CREATE_RUNS: u32 = 5;
/// Where the segment `nop` writes to is mapped, here and in `nop`.
const SHARED: u64 = 0x2000_0000;

fn main(_argument: u64) -> i32 {
    println!("bench ticks-per-second {}", time::ticks_per_second());
    let null = null_syscall();
    println!("bench null-syscall {}", (null + 0.5) as u64);
    let switch = context_switch();
    println!("bench context-switch {} ({:.1}x null syscall)", (switch + 0.5) as u64, switch / null);
    match process_create() {
        Ok(create) => {
            println!("bench process-create {create} ({:.1}x null syscall)", create as f64 / null);
            0
        }
        Err(status) => {
            println!("bench: process-create failed: {status}");
            1
        }
    }
}

/// Ticks per `time` system call, best of `NULL_RUNS` batches.
fn null_syscall() -> f64 {
    let mut best = u64::MAX;
    for _ in 0..NULL_RUNS {
        let start = time::ticks();
        for _ in 0..NULL_CALLS {
            core::hint::black_box(sys::time());
        }
        best = best.min(time::ticks() - start);
    }
    best as f64 / NULL_CALLS as f64
}

const MAIN: u32 = 0;
const PARTNER: u32 = 1;

/// Ticks per switch between two threads handing a turn word back and forth
/// through futexes, best of `SWITCH_RUNS` batches.
fn context_switch() -> f64 {
    let turn = Arc::new(AtomicU32::new(MAIN));
    let stop = Arc::new(AtomicBool::new(false));
    let partner = {
        let (turn, stop) = (turn.clone(), stop.clone());
        thread::spawn(move || {
            loop {
                while turn.load(Ordering::Acquire) != PARTNER {
                    let _ = sys::futex_wait(&turn, MAIN);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
                turn.store(MAIN, Ordering::Release);
                let _ = sys::futex_wake(&turn, 1);
            }
        })
    };
    let mut best = u64::MAX;
    for _ in 0..SWITCH_RUNS {
        let start = time::ticks();
        for _ in 0..ROUND_TRIPS {
            turn.store(PARTNER, Ordering::Release);
            let _ = sys::futex_wake(&turn, 1);
            while turn.load(Ordering::Acquire) != MAIN {
                let _ = sys::futex_wait(&turn, PARTNER);
            }
        }
        best = best.min(time::ticks() - start);
    }
    stop.store(true, Ordering::Release);
    turn.store(PARTNER, Ordering::Release);
    let _ = sys::futex_wake(&turn, 1);
    partner.join();
    best as f64 / (2 * ROUND_TRIPS) as f64
}

/// Ticks from before `process_create` to `nop`'s first counter reading,
/// best of `CREATE_RUNS`.
fn process_create() -> Result<u64, Status> {
    let segment = Segment::create(4096)?;
    let shared = segment.map(SHARED, true)?;
    let slot = shared.atomic_u64(0);
    let mut best = u64::MAX;
    for _ in 0..CREATE_RUNS {
        slot.store(0, Ordering::SeqCst);
        let nop = Builder::new("nop").argument(SHARED).map_segment(segment.capability(), SHARED, MAP_WRITE);
        let descriptor = nop.descriptor();
        let start = time::ticks();
        let host = amoeba_rt::env::capability(amoeba_abi::syscall::HOST_CAPABILITY_NAME);
        let (pid, cap) = sys::process_create(&descriptor, host.as_ref())?;
        let status = Process { pid, cap }.wait()?;
        let first = slot.load(Ordering::SeqCst);
        if status != 0 || first == 0 {
            println!("bench: nop exited with {status}, wrote {first}");
            return Err(Status::SysErr);
        }
        best = best.min(first.saturating_sub(start));
    }
    Ok(best)
}
