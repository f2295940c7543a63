//! `nop`: for the process-creation benchmark. If the argument is nonzero it
//! is the address where the parent's segment is mapped: the first thing
//! `nop` does is write the counter (`cntvct_el0`) there, and after it the
//! board's instruction count (`time::instructions`, for `insn-bench`). Exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_rt::segment::Mapping;
use amoeba_rt::time;

amoeba_rt::entry!(main);

fn main(argument: u64) -> i32 {
    let now = time::ticks();
    let instructions = u64::from(time::instructions());
    if argument != 0 {
        // SAFETY: the parent maps a segment of at least 16 writable bytes at
        // `argument` (the descriptor's extra segment) and reads it only
        // after this process has exited.
        let shared = unsafe { Mapping::from_raw(argument, 16) };
        shared.write(0, &now.to_le_bytes());
        shared.write(8, &instructions.to_le_bytes());
    }
    0
}
