//! `fault`: writes to an unmapped address; the nucleus must kill it (and
//! only it).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_rt::println;

amoeba_rt::entry!(main);

fn main(_argument: u64) -> i32 {
    println!("fault: about to write to an unmapped address");
    // SAFETY: deliberately not: address 0x8 is never mapped, and the point
    // of this program is that the nucleus kills it for the write.
    unsafe { core::ptr::write_volatile(core::ptr::without_provenance_mut::<u64>(0x8), 0xdead) };
    println!("fault: still alive after writing to 0x8");
    1
}
