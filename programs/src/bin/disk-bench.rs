//! `disk-bench`: where an uncached Bullet read spends its time on the board
//! (`just bench --only bullet`). Run on the board with the disk, it times
//! what the Bullet server does there besides what a raw read from the host
//! does too: a 1 MiB read of the disk object `DISK` by local RPC (as the
//! server reads a file), a 1 MiB reply by local RPC from the echo service at
//! the put-port in the argument's low 48 bits (the same without the disk), a
//! 1 MiB copy and a zeroed 1 MiB allocation (the server's and the RPC
//! library's buffer work). Reports a timing per kind to its starter
//! (`BOOTSTRAP`), prints `disk-bench <kind> median-us M p99-us P count N` per
//! kind for people, and exits 0, or 1 if a read or a report failed.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Port};
use amoeba_ipc::interfaces::{disk, echo};
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{env, starter, time};

amoeba_rt::entry!(main);

/// Bytes of each transfer.
const MIB: usize = 1 << 20;
/// Samples of each kind.
const ROUNDS: usize = 30;

fn micros(ticks: u64) -> u64 {
    ticks * 1_000_000 / time::ticks_per_second()
}

/// Reports the timing of `kind` from `samples` (ticks); whether it was told.
fn report(kind: &str, samples: &[u64]) -> bool {
    let mut micros: Vec<u64> = samples.iter().map(|&ticks| micros(ticks)).collect();
    let told = starter::report_timing("disk-bench", kind, &mut micros);
    if let Err(status) = told {
        println!("disk-bench: reporting {kind} failed: {status}");
    }
    told.is_ok()
}

fn ticks_of(f: impl FnOnce()) -> u64 {
    let start = time::ticks();
    f();
    time::ticks() - start
}

/// Ticks taken by `f`, which must give 1 MiB (else it says so and gives none).
fn timed_mib(kind: &str, f: impl FnOnce() -> Vec<u8>) -> Option<(u64, Vec<u8>)> {
    let start = time::ticks();
    let data = f();
    let ticks = time::ticks() - start;
    if data.len() != MIB {
        println!("disk-bench: a 1 MiB {kind} gave {} bytes", data.len());
        return None;
    }
    Some((ticks, data))
}

fn main(argument: u64) -> i32 {
    let service = Capability::for_port(Port::from_u64(argument & 0xffff_ffff_ffff));
    let Some(raw) = env::capability("DISK") else {
        println!("disk-bench: needs a DISK capability");
        return 1;
    };
    let mut disks = disk::Client::new(Nucleus);
    let blocks = match disks.geometry(&raw) {
        Ok(geometry) => (MIB / geometry.block_size as usize) as u32,
        Err(status) => {
            println!("disk-bench: geometry: {status}");
            return 1;
        }
    };
    let (mut reads, mut replies, mut copies, mut zeroed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut echoes = echo::Client::new(Nucleus);
    let mut target = vec![0u8; MIB];
    for _ in 0..ROUNDS {
        let Some((ticks, _)) = timed_mib("read", || disks.read(&raw, 0, blocks).unwrap_or_default()) else {
            return 1;
        };
        reads.push(ticks);
        let source = || echoes.source(&service, MIB as u32).map(|(_, d)| d).unwrap_or_default();
        let Some((ticks, data)) = timed_mib("reply", source) else { return 1 };
        replies.push(ticks);
        copies.push(ticks_of(|| target.copy_from_slice(core::hint::black_box(&data))));
        zeroed.push(ticks_of(|| drop(core::hint::black_box(vec![0u8; MIB]))));
    }
    let kinds = [("local-read", reads), ("local-reply", replies), ("copy", copies), ("zeroed", zeroed)];
    if kinds.iter().all(|(kind, samples)| report(kind, samples)) { 0 } else { 1 }
}
