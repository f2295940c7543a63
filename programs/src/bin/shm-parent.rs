//! `shm-parent`: shares a segment with `shm-child`. Creates and maps a
//! segment, writes a message into it, starts `shm-child` with the same
//! segment mapped at another address (passed as the argument), waits for
//! it, and checks the reply it wrote. Prints `shared memory: ok` and exits
//! 0, or prints what it saw and exits 1; reports to its starter whether it
//! was ok (`ok`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use amoeba_abi::syscall::MAP_WRITE;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::process::Builder;
use amoeba_rt::segment::Segment;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

const SIZE: u64 = 4096;
/// Where the parent maps the segment.
const HERE: u64 = 0x2000_0000;
/// Where the child gets it (different on purpose).
const THERE: u64 = 0x3000_0000;
const MESSAGE: usize = 0;
const REPLY: usize = 64;
const ROOM: usize = 64;
const MESSAGE_TEXT: &[u8] = b"hello child, this is shm-parent";
const REPLY_TEXT: &[u8] = b"hello parent, this is shm-child";

fn main(_argument: u64) -> i32 {
    let outcome = run();
    let _ = starter::report("ok", Value::Flag(outcome.is_ok()));
    match outcome {
        Ok(()) => {
            println!("shared memory: ok");
            0
        }
        Err(what) => {
            println!("shared memory: FAILED: {what}");
            1
        }
    }
}

fn run() -> Result<(), String> {
    let segment = Segment::create(SIZE).map_err(|s| format!("segment_create: {s}"))?;
    let shared = segment.map(HERE, true).map_err(|s| format!("segment_map: {s}"))?;
    shared.write(MESSAGE, MESSAGE_TEXT);
    let child = Builder::new("shm-child")
        .argument(THERE)
        .map_segment(segment.capability(), THERE, MAP_WRITE)
        .spawn()
        .map_err(|s| format!("process_create(shm-child): {s}"))?;
    let status = child.wait().map_err(|s| format!("process_wait: {s}"))?;
    let mut reply = [0u8; ROOM];
    shared.read(REPLY, &mut reply);
    let len = reply.iter().position(|&b| b == 0).unwrap_or(ROOM);
    if status != 0 || &reply[..len] != REPLY_TEXT {
        return Err(format!(
            "child exited with {status}, reply was \"{}\"",
            String::from_utf8_lossy(&reply[..len])
        ));
    }
    // Also through the nucleus's copy path.
    let mut copy = [0u8; REPLY_TEXT.len()];
    segment.read(REPLY as u64, &mut copy).map_err(|s| format!("segment_read: {s}"))?;
    if copy != REPLY_TEXT {
        return Err(format!("segment_read saw {:?}", &copy[..]));
    }
    Ok(())
}
