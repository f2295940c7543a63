//! `hello`: prints a greeting and exits with status 7.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba::println;

amoeba::entry!(main);

fn main(_argument: u64) -> i32 {
    println!("hello from the pool");
    7
}
