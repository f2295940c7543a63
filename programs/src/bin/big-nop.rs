//! `big-nop`: the 64 KiB program of the process-creation benchmarks (`just
//! bench --only processes`, `--only system`): 64 KiB of initialised data,
//! which every creator has to bring to the target board, and nothing to do:
//! it reads one byte of that data (so the data stays in the ELF) and exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::sync::atomic::{AtomicU8, Ordering};

amoeba_rt::entry!(main);

/// Bytes of initialised data: the program's weight.
const DATA_BYTES: usize = 64 << 10;

/// Writable (atomics), so it lands in `.data`, not in the text.
static DATA: [AtomicU8; DATA_BYTES] = [const { AtomicU8::new(0x5a) }; DATA_BYTES];

fn main(argument: u64) -> i32 {
    let byte = DATA[argument as usize % DATA_BYTES].load(Ordering::Relaxed);
    if byte == 0x5a { 0 } else { 1 }
}
