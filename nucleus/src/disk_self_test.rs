//! Test only (bootarg `test=disk`): a kernel thread that exercises the
//! disk server through the same queue, driver and interrupts RPC requests
//! use, blocking on each operation until its completion interrupt; then
//! prints a capability for the rest of the disk so that pool tests can
//! call the disk interface from the host. Delete this file and the
//! `test=disk` arm in `startup.rs` once the process server hands out disk
//! capabilities.
//!
//! The first [`AREA_BLOCKS`] blocks are the test's. Each boot checks what
//! the boot before wrote (a marker block names its generation), then
//! writes, reads back and flushes the next generation: a board killed
//! after "passed" must find that generation intact when it comes back.

#![forbid(unsafe_code)]

use crate::disk::{BLOCK_SIZE, DiskOp};
use crate::drivers::timer::uptime_micros;
use crate::process::sched::block_unless;
use crate::process::thread::Wait;
use crate::{println, services};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::Status;

/// Blocks at the start of the disk the self-test owns (4 MiB).
pub const AREA_BLOCKS: u64 = 8192;
const MAGIC: &[u8; 16] = b"amoeba-disk-test";
/// The pieces written each boot (first block, blocks): a megabyte that
/// starts off a chunk boundary, one block, the last blocks of the area.
const PIECES: [(u64, u32); 3] = [(1, 2048), (4000, 1), (AREA_BLOCKS - 3, 3)];

/// The thread's entry (spawned by `startup`).
pub extern "C" fn run(_arg: usize) {
    match self_test() {
        Ok(report) => println!("disk self-test: passed: {report}"),
        Err(why) => println!("disk self-test: FAILED: {why}"),
    }
    match services::with(|s, _| s.disk.as_mut().map(|disk| disk.open(AREA_BLOCKS, 0))) {
        Some(Ok(capability)) => println!("disk: capability {capability}"),
        Some(Err(status)) => println!("disk: no capability for the rest of the disk: {status}"),
        None => println!("disk: the board has no disk"),
    }
}

fn self_test() -> Result<String, String> {
    let blocks = services::with(|s, _| s.disk.as_ref().map(|disk| disk.geometry().block_count))
        .ok_or("the board has no disk")?;
    if blocks <= AREA_BLOCKS {
        return Err(format!("the disk has {blocks} blocks, the test needs more than {AREA_BLOCKS}"));
    }
    let marker = call_ok("reading the marker", DiskOp::Read { first: 0, count: 1 })?;
    let previous = generation_in(&marker);
    match previous {
        Some(generation) => {
            check_pieces(generation)
                .map_err(|why| format!("generation {generation} from an earlier boot: {why}"))?;
            println!("disk self-test: generation {generation} from an earlier boot is intact");
        }
        None => println!("disk self-test: no earlier self-test data"),
    }
    let generation = previous.unwrap_or(0) + 1;
    let mut timings = String::new();
    for (first, count) in PIECES {
        let data = pattern(generation, first, count);
        let started = uptime_micros();
        call_ok("writing", DiskOp::Write { first, data: data.clone() })?;
        let written = uptime_micros();
        let read = call_ok("reading back", DiskOp::Read { first, count })?;
        let elapsed = (written - started, uptime_micros() - written);
        if read != data {
            return Err(format!("blocks {first}..+{count} read back differ from what was written"));
        }
        timings += &format!("{count} blocks: write {} µs, read {} µs; ", elapsed.0, elapsed.1);
    }
    match call(DiskOp::Read { first: blocks, count: 1 }) {
        Err(Status::ArgBad) => {}
        other => return Err(format!("a read past the end gave {other:?}, not {:?}", Status::ArgBad)),
    }
    let started = uptime_micros();
    call_ok("flushing", DiskOp::Flush)?;
    let flushed = uptime_micros() - started;
    call_ok("writing the marker", DiskOp::Write { first: 0, data: marker_block(generation) })?;
    call_ok("flushing the marker", DiskOp::Flush)?;
    Ok(format!("generation {generation} written, read back and flushed; {timings}flush {flushed} µs"))
}

/// Whether every piece holds `generation`'s pattern.
fn check_pieces(generation: u64) -> Result<(), String> {
    for (first, count) in PIECES {
        if call_ok("reading", DiskOp::Read { first, count })? != pattern(generation, first, count) {
            return Err(format!("blocks {first}..+{count} are damaged"));
        }
    }
    Ok(())
}

/// One operation that must succeed; the error says `what` failed.
fn call_ok(what: &str, op: DiskOp) -> Result<Vec<u8>, String> {
    call(op).map_err(|status| format!("{what}: {status}"))
}

/// One operation through the disk server: queued, then this thread
/// blocks until the completion interrupt has finished it.
fn call(op: DiskOp) -> Result<Vec<u8>, Status> {
    let tag = services::with(|s, core| {
        let tid = core.current();
        s.disk.as_mut().map(|disk| disk.submit(core, tid, op))
    })
    .ok_or(Status::NoMedium)?;
    loop {
        let result = services::with(|s, _| s.disk.as_mut().and_then(|disk| disk.take_finished(tag)));
        if let Some(result) = result {
            return result;
        }
        block_unless(Wait::Disk(tag), || {
            services::with(|s, _| s.disk.as_ref().is_some_and(|disk| disk.is_finished(tag)))
        });
    }
}

/// The generation a marker block names, if it is one.
fn generation_in(block: &[u8]) -> Option<u64> {
    if block.get(..MAGIC.len())? != MAGIC {
        return None;
    }
    let bytes = block.get(MAGIC.len()..MAGIC.len() + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn marker_block(generation: u64) -> Vec<u8> {
    let mut block = alloc::vec![0u8; BLOCK_SIZE];
    block[..MAGIC.len()].copy_from_slice(MAGIC);
    block[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&generation.to_le_bytes());
    block
}

/// What `generation` writes to blocks `first..first + count`: every
/// 8-byte word depends on the generation and its place on the disk.
fn pattern(generation: u64, first: u64, count: u32) -> Vec<u8> {
    let start = first * BLOCK_SIZE as u64 / 8;
    let words = count as u64 * BLOCK_SIZE as u64 / 8;
    pool_control::pattern::words(generation.wrapping_mul(0x9E37_79B9_7F4A_7C15), start)
        .take(words as usize)
        .flatten()
        .collect()
}
