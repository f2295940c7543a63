//! `hog`: busy-loops forever, printing `hog <argument> progress <n>` about
//! every 200 ms (by the `time` system call).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_rt::println;
use amoeba_rt::time;

amoeba_rt::entry!(main);

const PERIOD_US: u64 = 200_000;

fn main(argument: u64) -> i32 {
    let mut next = time::now_us() + PERIOD_US;
    let mut progress = 0u64;
    loop {
        // Some work between clock reads.
        let mut x = progress;
        for i in 0..1000u64 {
            x = core::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        let now = time::now_us();
        if now >= next {
            progress += 1;
            println!("hog {argument} progress {progress}");
            next = now + PERIOD_US;
        }
    }
}
