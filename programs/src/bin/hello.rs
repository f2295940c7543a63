//! `hello`: prints a greeting and its arguments, and exits with status 7.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use amoeba_rt::println;

amoeba_rt::entry!(args main);

fn main(argv: &[String]) -> i32 {
    println!("hello from the pool");
    if argv.len() > 1 {
        let words: alloc::vec::Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        println!("hello: {}", words.join(" "));
    }
    7
}
