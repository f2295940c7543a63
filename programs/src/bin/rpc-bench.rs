//! `rpc-bench`: measures RPC to the echo service at the put-port in bits
//! 0..48 of the argument: null-call latency (median and 99th percentile) and
//! the throughput of 8 KiB and 1 MiB requests (answered with empty replies).
//! With bit 63 set it measures only the null calls (the unit other
//! benchmarks are reported in). Prints `rpc-bench ...` lines and exits 0,
//! or 1 if a call failed: the summary, then every null call's time in µs
//! in call order (`rpc-bench samples <index of the first> <µs>...`), for
//! the host to draw the distribution.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Port};
use amoeba_ipc::interfaces::echo;
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::time;

amoeba_rt::entry!(main);

const NULL_CALLS: usize = 2000;
/// Argument bit: null calls only.
const NULL_ONLY: u64 = 1 << 63;
/// Samples per `rpc-bench samples` line (well inside one console line).
const SAMPLES_PER_LINE: usize = 40;

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

/// Prints `rpc-bench samples <first> <µs>...` lines, in call order.
fn print_samples(samples: &[u64]) {
    use core::fmt::Write;
    for (line, chunk) in samples.chunks(SAMPLES_PER_LINE).enumerate() {
        let mut text = alloc::string::String::new();
        for &ticks in chunk {
            let _ = write!(text, " {}", micros(ticks));
        }
        println!("rpc-bench samples {}{text}", line * SAMPLES_PER_LINE);
    }
}

fn main(argument: u64) -> i32 {
    let service = Capability::for_port(Port::from_u64(argument & 0xffff_ffff_ffff));
    // Warm up: locate the server once.
    if measure(&service, 0, 10).is_none() {
        return 1;
    }
    let Some(in_order) = measure(&service, 0, NULL_CALLS) else { return 1 };
    let mut null = in_order.clone();
    null.sort_unstable();
    let median = micros(null[null.len() / 2]);
    let p99 = micros(null[null.len() * 99 / 100]);
    let min = micros(null[0]);
    let p10 = micros(null[null.len() / 10]);
    println!("rpc-bench null median-us {median} p99-us {p99} min-us {min} p10-us {p10}");
    print_samples(&in_order);
    if argument & NULL_ONLY != 0 {
        return 0;
    }
    for (label, size, count) in [("8KiB", 8 << 10, 200usize), ("1MiB", 1 << 20, 8)] {
        let Some(samples) = measure(&service, size, count) else { return 1 };
        let total: u64 = samples.iter().sum();
        let kib_per_second = (size * count) as u64 * time::ticks_per_second() / total.max(1) / 1024;
        println!("rpc-bench {label}-KiB/s {kib_per_second}");
    }
    0
}
