//! `upper`: copies its standard input to its standard output in capitals,
//! line by line, until the end of input (`echo hi | just ax upper` prints
//! `HI`); exits 0, or 1 if the input could not be read.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use amoeba_rt::println;
use amoeba_rt::stdin;

amoeba_rt::entry!(main);

fn main(_argument: u64) -> i32 {
    for line in stdin::lines() {
        match line {
            Ok(line) => println!("{}", line.to_uppercase()),
            Err(status) => {
                println!("upper: reading standard input: {status}");
                return 1;
            }
        }
    }
    0
}
