//! `create-bench`: the board-to-board half of the process-creation benchmark
//! (`just bench --only processes`). It creates `big-nop` (a 64 KiB program)
//! on another board through that board's host capability, `TARGET`, and next
//! to it measures the units: a null RPC to the echo service at the put-port
//! of the argument's low 48 bits (on the target board: the same path), and
//! the creation of the same program here, on this board, by system call.
//!
//! Creation is timed from the first request until the new process's
//! capability is back (the process exists and runs); its exit is waited for
//! outside the timing. The remote creations come in three kinds:
//!
//! * `bytes`: the ELF, read once from the file `PROGRAM` (a boot program of
//!   this board), is written into the target's segments by this program;
//! * `file`: the target board reads the segments from `PROGRAM` itself (after
//!   the first time, from its text cache), and `file-first` is that first time;
//! * `file-cold`: the same from a fresh copy of the ELF in a segment of this
//!   board each time, so the target reads it over the network every time.
//!
//! The kinds take turns, round by round, so drifting load on the host hits
//! them alike. Reports a timing per kind to its starter (`BOOTSTRAP`), prints
//! `create-bench <kind> median-us M p99-us P count N` per kind for people, and
//! exits 0, or 1 with the reason if a step or a report failed.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Port};
use amoeba_client::exec::{Exec, Program, exec};
use amoeba_ipc::interfaces::{bullet, echo, process_server};
use amoeba_rt::println;
use amoeba_rt::process::Builder;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::segment::Segment;
use amoeba_rt::{env, starter, time};

amoeba_rt::entry!(main);

/// The program created.
const PROGRAM: &str = "big-nop";
/// Rounds of creations (each kind once per round).
const ROUNDS: usize = 50;
/// Null calls, half before the creations and half after.
const NULL_CALLS: usize = 500;

fn micros(ticks: u64) -> u64 {
    ticks * 1_000_000 / time::ticks_per_second()
}

/// Reports the timing of `kind` from `samples` (ticks).
fn report(kind: &str, samples: &[u64]) -> Result<(), String> {
    let mut micros: Vec<u64> = samples.iter().map(|&ticks| micros(ticks)).collect();
    starter::report_timing("create-bench", kind, &mut micros)
        .map_err(|status| alloc::format!("reporting {kind}: {status}"))
}

/// Ticks taken by `f`, which must succeed.
fn timed<T>(f: impl FnOnce() -> Result<T, String>) -> Result<(u64, T), String> {
    let start = time::ticks();
    let value = f()?;
    Ok((time::ticks() - start, value))
}

fn null_calls(service: &Capability, count: usize, samples: &mut Vec<u64>) -> Result<(), String> {
    let mut client = echo::Client::new(Nucleus);
    for _ in 0..count {
        let (ticks, _) = timed(|| client.sink(service, &[]).map_err(|s| alloc::format!("null call: {s}")))?;
        samples.push(ticks);
    }
    Ok(())
}

/// Reads a whole file (here: a boot program) into memory.
fn read_file(file: &Capability) -> Result<Vec<u8>, String> {
    let mut files = bullet::Client::new(Nucleus);
    let mut bytes = Vec::new();
    loop {
        let piece = files.read(file, bytes.len() as u64, 1 << 20).map_err(|s| alloc::format!("read: {s}"))?;
        if piece.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&piece);
    }
}

/// Creates the program on the target; the ticks until its capability came
/// back. Its exit (status 0) is waited for untimed.
fn remote(target: &Capability, program: Program<'_>) -> Result<u64, String> {
    let exec_of = Exec::new(PROGRAM, &[PROGRAM]);
    let (ticks, process) =
        timed(|| exec(&mut Nucleus, target, program, &exec_of).map_err(|e| alloc::format!("remote: {e}")))?;
    match process_server::Client::new(Nucleus).wait(&process) {
        Ok(0) => Ok(ticks),
        other => Err(alloc::format!("the remote {PROGRAM} ended with {other:?}")),
    }
}

/// Creates the program here by system call; the ticks until it was created.
fn local() -> Result<u64, String> {
    let builder = Builder::new(PROGRAM);
    let (ticks, process) = timed(|| builder.spawn().map_err(|s| alloc::format!("local: {s}")))?;
    match process.wait() {
        Ok(0) => Ok(ticks),
        other => Err(alloc::format!("the local {PROGRAM} ended with {other:?}")),
    }
}

/// A fresh segment of this board holding `bytes`: a file the target has
/// never read.
fn fresh_copy(bytes: &[u8]) -> Result<Segment, String> {
    let segment = Segment::create(bytes.len() as u64).map_err(|s| alloc::format!("segment: {s}"))?;
    segment.write(0, bytes).map_err(|s| alloc::format!("segment write: {s}"))?;
    Ok(segment)
}

/// Samples of each kind, in ticks.
#[derive(Default)]
struct Samples {
    null: Vec<u64>,
    local: Vec<u64>,
    bytes: Vec<u64>,
    file: Vec<u64>,
    file_cold: Vec<u64>,
}

fn run(echo_port: Port) -> Result<(), String> {
    let (Some(target), Some(file)) = (env::capability("TARGET"), env::capability("PROGRAM")) else {
        return Err(String::from("needs TARGET and PROGRAM capabilities"));
    };
    let service = Capability::for_port(echo_port);
    let elf = read_file(&file)?;
    let mut samples = Samples::default();
    null_calls(&service, 10, &mut Vec::new())?; // locate the server
    null_calls(&service, NULL_CALLS / 2, &mut samples.null)?;
    let first = remote(&target, Program::File(file))?;
    for _ in 0..ROUNDS {
        samples.local.push(local()?);
        samples.bytes.push(remote(&target, Program::Bytes(&elf))?);
        samples.file.push(remote(&target, Program::File(file))?);
        let copy = fresh_copy(&elf)?;
        samples.file_cold.push(remote(&target, Program::File(*copy.capability()))?);
        copy.destroy().map_err(|s| alloc::format!("segment destroy: {s}"))?;
    }
    null_calls(&service, NULL_CALLS - NULL_CALLS / 2, &mut samples.null)?;
    report("null", &samples.null)?;
    report("local", &samples.local)?;
    report("bytes", &samples.bytes)?;
    report("file", &samples.file)?;
    report("file-cold", &samples.file_cold)?;
    report("file-first", &[first])
}

fn main(argument: u64) -> i32 {
    match run(Port::from_u64(argument & 0xffff_ffff_ffff)) {
        Ok(()) => 0,
        Err(why) => {
            println!("create-bench: {why}");
            1
        }
    }
}
