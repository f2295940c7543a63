//! `dir-bench`: the board half of the directory benchmark (`just bench --only
//! directory`, module `pool_bench::directory`). Capabilities: `ROOT` (a
//! directory holding a row `target` and the rows the updates change), `ECHO`
//! (the echo service of the null-RPC unit), `DISK` (a raw disk area on the
//! board with the disk, for the anchor-write part) and `REPLICA0`.. (each
//! replica's own port). Three modes, by the first argument:
//!
//! * `latency <rounds> <row>`: round by round, a null RPC, a lookup of the
//!   one-name path `target`, an update (chmod of `<row>`, masks alternating),
//!   and, given `DISK`, a raw write of one and of eight blocks, each followed
//!   by a flush, timed apart (what a replica's anchor write costs); reports a
//!   timing per kind;
//! * `lookups <start-us> <duration-us> <threads> <replicas>`: from `start-us`
//!   (this board's clock) for `duration-us`, `threads` threads look up
//!   `target` at replicas `0..replicas` by their own ports, each call at the
//!   next replica; `replicas` 0 means through the service's port instead;
//! * `updates <start-us> <duration-us> <threads> <first-row>`: the same with
//!   chmods, thread `t` changing row `row-<first-row + t>`;
//!
//! the last two report `calls`, `from-us` and `to-us` (this board's clock).
//!
//! The figures go to its starter (`BOOTSTRAP`), and to the console for people;
//! it exits 0, or 1 if a call or a report failed.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Rights};
use amoeba_ipc::interfaces::directory::MaskChange;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_ipc::interfaces::{disk, echo, soap};
use amoeba_rt::println;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{env, starter, thread, time};
use directory_server::service::replica_port;

amoeba_rt::entry!(args main);

/// The row every lookup finds.
const TARGET: &str = "target";
/// Blocks of the small and the large raw write (a short anchor, a full one).
const WRITE_BLOCKS: [usize; 2] = [1, 8];
/// Stack of each throughput thread.
const THREAD_STACK: usize = 32 * 1024;

fn micros(ticks: u64) -> u64 {
    ticks * 1_000_000 / time::ticks_per_second()
}

/// Reports the timing of `kind` from `samples` (ticks).
fn report(kind: &str, samples: &[u64]) -> Result<(), String> {
    let mut micros: Vec<u64> = samples.iter().map(|&ticks| micros(ticks)).collect();
    starter::report_timing("dir-bench", kind, &mut micros)
        .map_err(|status| format!("reporting {kind}: {status}"))
}

/// Ticks taken by `f`, which must succeed.
fn timed(what: &str, f: impl FnOnce() -> Result<(), amoeba_abi::Status>) -> Result<u64, String> {
    let start = time::ticks();
    f().map_err(|status| format!("{what}: {status}"))?;
    Ok(time::ticks() - start)
}

fn capability(name: &str) -> Result<Capability, String> {
    env::capability(name).ok_or_else(|| format!("no {name} capability"))
}

/// Column masks for the chmod of call `n` (alternating, so each one changes the row).
fn masks(n: usize) -> Vec<Rights> {
    vec![Rights(0xff), Rights(if n.is_multiple_of(2) { 0x0f } else { 0x07 }), Rights(0x02)]
}

fn lookup(root: &Capability) -> Result<(), amoeba_abi::Status> {
    soap::Client::new(Nucleus).lookup(root, TARGET).map(drop)
}

fn chmod(root: &Capability, row: &str, n: usize) -> Result<(), amoeba_abi::Status> {
    let change = MaskChange { name: String::from(row), masks: masks(n) };
    soap::Client::new(Nucleus).chmod(root, &change)
}

/// The kinds measured in one latency run, and their samples.
struct Samples {
    kinds: Vec<(String, Vec<u64>)>,
}

impl Samples {
    fn push(&mut self, kind: &str, ticks: u64) {
        match self.kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, samples)) => samples.push(ticks),
            None => self.kinds.push((String::from(kind), vec![ticks])),
        }
    }
}

fn latency(rounds: usize, row: &str) -> Result<(), String> {
    let (root, service) = (capability("ROOT")?, capability("ECHO")?);
    let raw = env::capability("DISK");
    let block_size = match &raw {
        Some(raw) => {
            disk::Client::new(Nucleus).geometry(raw).map_err(|s| format!("geometry: {s}"))?.block_size
        }
        None => 0,
    } as usize;
    // Warm up: locate the servers once.
    for n in 0..5 {
        echo::Client::new(Nucleus).sink(&service, &[]).map_err(|s| format!("null call: {s}"))?;
        lookup(&root).map_err(|s| format!("lookup: {s}"))?;
        chmod(&root, row, n).map_err(|s| format!("update: {s}"))?;
    }
    let mut samples = Samples { kinds: Vec::new() };
    for n in 0..rounds {
        samples
            .push("null", timed("null call", || echo::Client::new(Nucleus).sink(&service, &[]).map(drop))?);
        samples.push("lookup", timed("lookup", || lookup(&root))?);
        samples.push("update", timed("update", || chmod(&root, row, n))?);
        if let Some(raw) = &raw {
            for blocks in WRITE_BLOCKS {
                let data = vec![n as u8; blocks * block_size];
                let mut client = disk::Client::new(Nucleus);
                samples.push(&format!("write-{blocks}"), timed("raw write", || client.write(raw, 0, &data))?);
                samples.push(&format!("flush-{blocks}"), timed("flush", || client.flush(raw))?);
            }
        }
    }
    for (kind, samples) in &samples.kinds {
        report(kind, samples)?;
    }
    Ok(())
}

/// What one throughput thread does per call.
#[derive(Clone)]
enum Call {
    /// A lookup at the replicas' own ports, each call at the next one.
    AtReplicas(Vec<Capability>),
    /// A lookup through the service's port.
    Service,
    /// A chmod of this row.
    Update(String),
}

impl Call {
    fn make(&self, root: &Capability, n: usize) -> Result<(), amoeba_abi::Status> {
        match self {
            Call::AtReplicas(ports) => {
                let port = &ports[n % ports.len()];
                replica_port::Client::new(Nucleus).lookup(port, &(*root, String::from(TARGET))).map(drop)
            }
            Call::Service => lookup(root),
            Call::Update(row) => chmod(root, row, n),
        }
    }
}

/// Runs `calls[t]` in thread `t` from `start` (µs, this clock) for
/// `duration` µs; prints the calls made and when they ran.
fn throughput(mode: &str, start: u64, duration: u64, calls: Vec<Call>) -> Result<(), String> {
    let root = capability("ROOT")?;
    let threads: Vec<_> = calls
        .into_iter()
        .enumerate()
        .map(|(t, call)| {
            thread::spawn_with_stack(THREAD_STACK, move || {
                // Locate the server before the clock starts.
                call.make(&root, t).map_err(|s| format!("first call: {s}"))?;
                time::sleep_us(start.saturating_sub(time::now_us()));
                let (from, end) = (time::now_us(), start + duration);
                let mut made = 0usize;
                while time::now_us() < end {
                    call.make(&root, t + made).map_err(|s| format!("call {made}: {s}"))?;
                    made += 1;
                }
                Ok::<_, String>((made, from, time::now_us()))
            })
        })
        .collect();
    let (mut made, mut from, mut to) = (0, u64::MAX, 0);
    for thread in threads {
        let (n, a, b) = thread.join()?;
        made += n;
        from = from.min(a);
        to = to.max(b);
    }
    println!("dir-bench {mode} calls {made} from-us {from} to-us {to}");
    if starter::has_starter() {
        for (name, value) in [("calls", made as u64), ("from-us", from), ("to-us", to)] {
            starter::report(name, Value::Unsigned(value))
                .map_err(|status| format!("reporting {name}: {status}"))?;
        }
    }
    Ok(())
}

fn replica_ports(replicas: usize) -> Result<Vec<Capability>, String> {
    (0..replicas).map(|r| capability(&format!("REPLICA{r}"))).collect()
}

fn run(argv: &[String]) -> Result<(), String> {
    let number = |i: usize| -> Result<u64, String> {
        argv.get(i).and_then(|a| a.parse().ok()).ok_or_else(|| format!("argument {i} is not a number"))
    };
    match argv.get(1).map(String::as_str) {
        Some("latency") => latency(number(2)? as usize, argv.get(3).ok_or("no row")?),
        Some(mode @ ("lookups" | "updates")) => {
            let (start, duration, threads) = (number(2)?, number(3)?, number(4)? as usize);
            let which = number(5)? as usize;
            let calls: Vec<Call> = match mode {
                "lookups" if which == 0 => vec![Call::Service; threads],
                // Thread t's call n goes to replica (t + n) mod replicas: evenly spread.
                "lookups" => vec![Call::AtReplicas(replica_ports(which)?); threads],
                _ => (0..threads).map(|t| Call::Update(format!("row-{}", which + t))).collect(),
            };
            throughput(mode, start, duration, calls)
        }
        _ => Err(String::from(
            "usage: dir-bench latency <rounds> <row> | lookups|updates <start-us> <duration-us> <threads> <n>",
        )),
    }
}

fn main(argv: &[String]) -> i32 {
    match run(argv) {
        Ok(()) => 0,
        Err(why) => {
            println!("dir-bench: {why}");
            1
        }
    }
}
