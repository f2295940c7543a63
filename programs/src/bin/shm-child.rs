//! `shm-child`: the argument is the address where `shm-parent` mapped their
//! shared segment into this process. Reads the parent's message (offset 0),
//! prints it, writes a reply at offset 64, exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_rt::println;
use amoeba_rt::segment::Mapping;

amoeba_rt::entry!(main);

/// Where the message and the reply sit in the segment, and their room.
const MESSAGE: usize = 0;
const REPLY: usize = 64;
const ROOM: usize = 64;
const REPLY_TEXT: &[u8] = b"hello parent, this is shm-child";

fn main(argument: u64) -> i32 {
    if argument == 0 {
        println!("shm-child: no shared segment (argument 0)");
        return 2;
    }
    // SAFETY: shm-parent maps a writable segment of at least 4 KiB at
    // `argument` through the process descriptor; nothing else in this
    // process uses that range.
    let shared = unsafe { Mapping::from_raw(argument, REPLY + ROOM) };
    let mut message = [0u8; ROOM];
    shared.read(MESSAGE, &mut message);
    let len = message.iter().position(|&b| b == 0).unwrap_or(ROOM);
    let text = core::str::from_utf8(&message[..len]).unwrap_or("<not utf-8>");
    println!("shm-child: got \"{text}\" at {argument:#x}");
    shared.write(REPLY, REPLY_TEXT);
    0
}
