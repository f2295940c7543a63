//! `attack`: one attack on its own board's nucleus per argument, each the
//! way a careless or hostile program would do it, to show that the nucleus
//! refuses it cleanly and that nobody else on the board is hurt (the pool
//! tests in `tests/tests/hostile.rs` check the board afterwards).
//!
//! | argument | attack |
//! |---|---|
//! | 1 | thread bomb: threads that sleep, until refused |
//! | 2 | fork bomb: copies of itself that start copies, until refused |
//! | 3 | segment bomb: 4 KiB segments, until refused |
//! | 4 | translation tables: small mappings 2 MiB apart until refused, then one mapping across two 2 MiB regions, then a write where it was refused |
//! | 5 | a large `segment_create_from`: the process server copies a 48 MiB segment of this board |
//! | 6 | 64 threads, each with a 1 MiB `trans` outstanding at once |
//! | 7 | starting a process with no host capability (must be `Denied`) |
//!
//! Exit status 0: the nucleus refused what it had to, with the status it
//! should. Any other status names what went wrong (see [`Outcome`]); attack
//! 4 ends in a fault (the write must find no translation). A line
//! `attack <n>: ...` tells people how far the attack got.
//!
//! Attacks 2 and 5 need the board's host capability (create right) as
//! `HOST`, as every program started by `ax` has through ROOT → `/hosts`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_abi::syscall::{HOST_CAPABILITY_NAME, MAP_WRITE};
use amoeba_abi::{Header, Port, Status};
use amoeba_ipc::interfaces::process::{SegmentSource, process_server};
use amoeba_ipc::interfaces::standard;
use amoeba_rt::println;
use amoeba_rt::process::Builder;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{env, sys, thread, time};
use core::sync::atomic::{AtomicU32, Ordering};

amoeba_rt::entry!(main);

/// What the attack found, as the exit status.
#[repr(i32)]
enum Outcome {
    /// Refused cleanly.
    Refused = 0,
    /// Never refused: the nucleus let it go on past any sane bound.
    NeverRefused = 2,
    /// Refused, but with the wrong status.
    WrongStatus = 3,
    /// A translation was left where a mapping was refused.
    TranslationLeft = 4,
    /// Something the attack needs was missing (a capability, a first step).
    Setup = 5,
}

/// A fork-bomb child: start copies of itself until refused, then linger.
const FORK_CHILD: u64 = 100;
/// How long a fork-bomb child lingers before it exits (µs).
const FORK_LINGER_US: u64 = 3_000_000;

fn main(argument: u64) -> i32 {
    let outcome = match argument {
        1 => thread_bomb(),
        2 => fork_bomb(),
        FORK_CHILD => fork_child(),
        3 => segment_bomb(),
        4 => translation_tables(),
        5 => large_create_from(),
        6 => concurrent_transactions(),
        7 => spawn_without_host(),
        _ => {
            println!("attack: unknown attack {argument}");
            Outcome::Setup
        }
    };
    outcome as i32
}

fn refused_with(what: &str, reached: usize, status: Status, expected: Status) -> Outcome {
    println!("attack {what}: refused after {reached} with \"{status}\"");
    if status == expected { Outcome::Refused } else { Outcome::WrongStatus }
}

/// Threads that sleep for ever, until `thread_create` says no.
fn thread_bomb() -> Outcome {
    let mut threads = 0usize;
    loop {
        let started = thread::try_spawn_with_stack(thread::MIN_STACK_SIZE, || {
            loop {
                time::sleep_us(60_000_000);
            }
        });
        match started {
            Ok(_) => threads += 1,
            Err(status) => return refused_with("thread bomb", threads, status, Status::NoSpace),
        }
        if threads > 100_000 {
            return Outcome::NeverRefused;
        }
    }
}

/// Copies of itself, each passing the host capability on, until refused.
fn fork_bomb() -> Outcome {
    if env::capability(HOST_CAPABILITY_NAME).is_none() {
        println!("attack fork bomb: no HOST capability");
        return Outcome::Setup;
    }
    match spawn_copies() {
        (0, status) => {
            println!("attack fork bomb: not even one copy started ({status})");
            Outcome::Setup
        }
        (copies, status) => refused_with("fork bomb", copies, status, Status::NoSpace),
    }
}

/// Starts copies until refused (or 10,000); how many, and the refusal.
fn spawn_copies() -> (usize, Status) {
    let mut copies = 0;
    while copies < 10_000 {
        match Builder::new("attack").argument(FORK_CHILD).pass_host(true).spawn() {
            Ok(_) => copies += 1,
            Err(status) => return (copies, status),
        }
    }
    (copies, Status::Ok)
}

fn fork_child() -> Outcome {
    // Every copy tries to multiply; once the board says no, they linger a
    // while (holding what they took) and end.
    let _ = spawn_copies();
    time::sleep_us(FORK_LINGER_US);
    Outcome::Refused
}

/// A process started with no host capability at all.
fn spawn_without_host() -> Outcome {
    match Builder::new("hello").host(None).spawn() {
        Ok(_) => {
            println!("attack no host: a process started without a host capability");
            Outcome::NeverRefused
        }
        Err(status) => refused_with("no host", 0, status, Status::Denied),
    }
}

/// 4 KiB segments until `segment_create` says no.
fn segment_bomb() -> Outcome {
    let mut segments = Vec::new();
    loop {
        match sys::segment_create(4096) {
            Ok(segment) => {
                if segments.try_reserve(1).is_err() {
                    println!("attack segment bomb: own heap full after {} segments", segments.len());
                    return Outcome::NeverRefused;
                }
                segments.push(segment);
            }
            Err(status) => return refused_with("segment bomb", segments.len(), status, Status::NoSpace),
        }
        if segments.len() > 1_000_000 {
            return Outcome::NeverRefused;
        }
    }
}

/// Where the small mappings of attack 4 start (far from the program).
const TABLES_BASE: u64 = 0x40_0000_0000;
const REGION: u64 = 2 << 20;

/// Mappings 2 MiB apart (a translation table each) until refused, then a
/// mapping that starts in the last region's table and runs into a region
/// without one: it must be refused whole, so the write after it faults.
fn translation_tables() -> Outcome {
    let Ok(small) = sys::segment_create(4096) else { return Outcome::Setup };
    let mut regions = 0u64;
    let status = loop {
        match sys::segment_map(&small, TABLES_BASE + regions * REGION, MAP_WRITE) {
            Ok(()) => regions += 1,
            Err(status) => break status,
        }
        if regions > 1_000_000 {
            return Outcome::NeverRefused;
        }
    };
    println!("attack translation tables: refused after {regions} mappings with \"{status}\"");
    if regions == 0 {
        return Outcome::Setup;
    }
    // 2 MiB starting halfway into the last mapped region's table.
    let Ok(across) = sys::segment_create(REGION) else { return Outcome::Setup };
    let start = TABLES_BASE + (regions - 1) * REGION + REGION / 2;
    match sys::segment_map(&across, start, MAP_WRITE) {
        Ok(()) => {
            println!("attack translation tables: the mapping across two regions was made");
            return Outcome::NeverRefused;
        }
        Err(status) => println!("attack translation tables: across two regions refused with \"{status}\""),
    }
    // Its memory goes back to the board; a translation left behind would
    // now reach memory that is no longer this process's.
    let _ = sys::segment_destroy(&across);
    println!("attack translation tables: writing where the mapping was refused");
    // SAFETY: deliberately writes an address whose mapping the nucleus
    // refused: with no translation there the process faults and dies, which
    // is what the test expects; it is never memory this program relies on.
    unsafe { core::ptr::write_volatile(start as usize as *mut u64, 0x5eed_5eed_5eed_5eed) };
    println!("attack translation tables: the write went through: a translation was left");
    Outcome::TranslationLeft
}

/// Bytes of the segment attack 5 has copied.
const LARGE: u64 = 48 << 20;

/// Asks the board's process server to make a segment from a 48 MiB segment
/// of the same board (the nucleus once copied it whole into its heap).
fn large_create_from() -> Outcome {
    let Some(host) = env::capability(HOST_CAPABILITY_NAME) else {
        println!("attack large copy: no HOST capability");
        return Outcome::Setup;
    };
    let mut server = process_server::Client::new(Nucleus);
    let source = match server.segment_create(&host, LARGE) {
        Ok(source) => source,
        Err(status) => {
            println!("attack large copy: no 48 MiB segment to copy ({status})");
            return Outcome::Setup;
        }
    };
    let request = SegmentSource { source, offset: 0, length: LARGE, size: LARGE };
    let copy = server.segment_create_from(&host, &request);
    let _ = standard::Client::new(Nucleus).destroy(&source);
    match copy {
        Ok(copy) => {
            println!("attack large copy: the 48 MiB copy was made, without the kernel heap");
            let _ = standard::Client::new(Nucleus).destroy(&copy);
            Outcome::Refused
        }
        Err(status) => refused_with("large copy", 0, status, Status::NoSpace),
    }
}

/// 1 MiB requests, each on a thread of its own, all at once, to a port that
/// nobody serves (so that they stay outstanding while the nucleus looks
/// for a server).
fn concurrent_transactions() -> Outcome {
    const THREADS: usize = 64;
    static REFUSED: AtomicU32 = AtomicU32::new(0);
    static OTHER: AtomicU32 = AtomicU32::new(0);
    // One request buffer for all: the threads' own memory is not the point.
    let request: &'static [u8] = alloc::vec![0xa5u8; 1 << 20].leak();
    let mut handles = Vec::new();
    for index in 0..THREADS {
        let spawned = thread::try_spawn_with_stack(thread::MIN_STACK_SIZE * 2, move || {
            let header =
                Header { port: Port::from_u64(0x0bad_0000_0000 + index as u64), ..Header::default() };
            let mut reply = [0u8; 16];
            match sys::trans(&header, request, &mut reply) {
                Err(Status::NoSpace) => REFUSED.fetch_add(1, Ordering::SeqCst),
                _ => OTHER.fetch_add(1, Ordering::SeqCst),
            };
        });
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(status) => {
                println!("attack transactions: only {index} threads ({status})");
                return Outcome::Setup;
            }
        }
    }
    for handle in handles {
        handle.join();
    }
    let (refused, other) = (REFUSED.load(Ordering::SeqCst), OTHER.load(Ordering::SeqCst));
    println!("attack transactions: {refused} of {THREADS} refused with \"no space\", {other} went out");
    if refused == 0 { Outcome::NeverRefused } else { Outcome::Refused }
}
