//! `ticker`: prints `tick <n>` every 100 ms (sleeping in between), forever.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_rt::println;
use amoeba_rt::time;

amoeba_rt::entry!(main);

const PERIOD_US: u64 = 100_000;

fn main(_argument: u64) -> i32 {
    let mut next = time::now_us() + PERIOD_US;
    let mut tick = 0u64;
    loop {
        let now = time::now_us();
        if now < next {
            time::sleep_us(next - now);
        }
        tick += 1;
        println!("tick {tick}");
        // Fixed rate: a late wake-up does not shift later ticks.
        next += PERIOD_US;
    }
}
