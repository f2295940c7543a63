//! `rpc-bench`: measures RPC to the echo service at the put-port in bits
//! 0..48 of the argument: null-call latency (median and 99th percentile) and
//! the throughput of 8 KiB and 1 MiB requests (answered with empty replies).
//! With bit 63 set it measures only the null calls (the unit other
//! benchmarks are reported in). Reports to its starter (`BOOTSTRAP`) the
//! timing `null`, every null call's time in µs in call order (the series
//! `samples`, for the host to draw the distribution) and, unless null calls
//! only, `8KiB-KiB/s` and `1MiB-KiB/s`; prints the same for people, without
//! the samples. Exits 0, or 1 if a call or a report failed.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Port, Status};
use amoeba_ipc::interfaces::echo;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{starter, time};

amoeba_rt::entry!(main);

const NULL_CALLS: usize = 2000;
/// Argument bit: null calls only.
const NULL_ONLY: u64 = 1 << 63;

fn micros(ticks: u64) -> u64 {
    ticks * 1_000_000 / time::ticks_per_second()
}

/// Sinks `count` requests of `size` bytes; the ticks of each call.
fn measure(service: &Capability, size: usize, count: usize) -> Option<Vec<u64>> {
    let buf = vec![0x5a; size];
    let mut client = echo::Client::new(Nucleus);
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let start = time::ticks();
        if let Err(status) = client.sink(service, &buf) {
            println!("rpc-bench: trans of {size} bytes failed: {status}");
            return None;
        }
        samples.push(time::ticks() - start);
    }
    Some(samples)
}

/// Says why the starter was not told, and fails.
fn told(result: Result<(), Status>) -> Option<()> {
    result.map_err(|status| println!("rpc-bench: reporting failed: {status}")).ok()
}

fn run(argument: u64) -> Option<()> {
    let service = Capability::for_port(Port::from_u64(argument & 0xffff_ffff_ffff));
    // Warm up: locate the server once.
    measure(&service, 0, 10)?;
    let in_order: Vec<u64> = measure(&service, 0, NULL_CALLS)?.into_iter().map(micros).collect();
    told(starter::report_timing("rpc-bench", "null", &mut in_order.clone()))?;
    if starter::has_starter() {
        told(starter::report_series("samples", &in_order))?;
    }
    if argument & NULL_ONLY != 0 {
        return Some(());
    }
    for (label, size, count) in [("8KiB", 8 << 10, 200usize), ("1MiB", 1 << 20, 8)] {
        let samples = measure(&service, size, count)?;
        let total: u64 = samples.iter().sum();
        let kib_per_second = (size * count) as u64 * time::ticks_per_second() / total.max(1) / 1024;
        println!("rpc-bench {label}-KiB/s {kib_per_second}");
        if starter::has_starter() {
            told(starter::report(&alloc::format!("{label}-KiB/s"), Value::Unsigned(kib_per_second)))?;
        }
    }
    Some(())
}

fn main(argument: u64) -> i32 {
    match run(argument) {
        Some(()) => 0,
        None => 1,
    }
}
