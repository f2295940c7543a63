//! `bystander`: a process that minds its own business while another one
//! attacks the board: it fills 1 MiB of its heap and 1 MiB of a segment of
//! its own with a pattern, then checks both every 50 ms until it gets
//! signal [`STOP`] (or `argument` seconds pass), and checks once more.
//! Exit status 0: its memory stayed intact; 2: something else wrote it (the
//! line `bystander: memory changed at ...` says where).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use amoeba_rt::println;
use amoeba_rt::segment::{Mapping, Segment};
use amoeba_rt::{signal, time};
use core::sync::atomic::{AtomicBool, Ordering};

amoeba_rt::entry!(main);

const BYTES: usize = 1 << 20;
/// Where its segment is mapped.
const SEGMENT_AT: u64 = 0x2000_0000;
const PERIOD_US: u64 = 50_000;
/// The signal that ends the watch.
pub const STOP: u32 = 12;

static STOPPED: AtomicBool = AtomicBool::new(false);

fn on_stop(_: u32) {
    STOPPED.store(true, Ordering::Release);
}

/// Where the memory differs from the pattern, if it does.
fn changed(heap: &[u8], mapped: &Mapping) -> Option<(&'static str, usize)> {
    if let Some(at) = heap.iter().enumerate().position(|(i, byte)| *byte != pattern(i)) {
        return Some(("heap", at));
    }
    let mut chunk = [0u8; 4096];
    for offset in (0..BYTES).step_by(chunk.len()) {
        mapped.read(offset, &mut chunk);
        if let Some(i) = chunk.iter().enumerate().position(|(i, byte)| *byte != pattern(offset + i) ^ 0x5a) {
            return Some(("segment", offset + i));
        }
    }
    None
}

fn pattern(index: usize) -> u8 {
    (index.wrapping_mul(31) ^ (index >> 11)) as u8
}

fn main(seconds: u64) -> i32 {
    let mut heap = alloc::vec![0u8; BYTES];
    heap.iter_mut().enumerate().for_each(|(i, byte)| *byte = pattern(i));
    let Ok(segment) = Segment::create(BYTES as u64) else {
        println!("bystander: no segment");
        return 1;
    };
    let Ok(mapped) = segment.map(SEGMENT_AT, true) else {
        println!("bystander: the segment does not map");
        return 1;
    };
    let mut chunk = [0u8; 4096];
    for offset in (0..BYTES).step_by(chunk.len()) {
        chunk.iter_mut().enumerate().for_each(|(i, byte)| *byte = pattern(offset + i) ^ 0x5a);
        mapped.write(offset, &chunk);
    }
    if signal::catch(STOP, on_stop).is_err() {
        println!("bystander: cannot catch its stop signal");
        return 1;
    }
    println!("bystander: watching 2 MiB for up to {seconds} s");
    let end = time::now_us() + seconds * 1_000_000;
    loop {
        if let Some((place, at)) = changed(&heap, &mapped) {
            println!("bystander: memory changed at {place} offset {at:#x}");
            return 2;
        }
        if STOPPED.load(Ordering::Acquire) || time::now_us() >= end {
            break;
        }
        time::sleep_us(PERIOD_US);
    }
    println!("bystander: memory intact");
    0
}
