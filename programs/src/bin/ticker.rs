//! `ticker`: prints `tick <n>` every 100 ms (sleeping in between), forever,
//! and reports each tick to its starter (`tick`), if it has one, so that a
//! test sees it make progress (or not, while stunned).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::time;
use amoeba_rt::{println, starter};

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
        if starter::has_starter() {
            let _ = starter::report("tick", Value::Unsigned(tick));
        }
        // Fixed rate: a late wake-up does not shift later ticks.
        next += PERIOD_US;
    }
}
