//! `show-env`: prints what it started with — its arguments, its environment
//! strings and the names and ports of its capabilities — one line each
//! (`show-env: argv ...`, `show-env: env ...`, `show-env: cap NAME PORT`), and
//! exits with the number of its arguments plus 40 (so a starter can check the
//! status it gets back).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use amoeba_rt::env;
use amoeba_rt::println;

amoeba_rt::entry!(args main);

fn main(argv: &[String]) -> i32 {
    let startup = env::startup();
    for arg in argv {
        println!("show-env: argv {arg}");
    }
    for entry in &startup.environment {
        println!("show-env: env {entry}");
    }
    for (name, capability) in &startup.capabilities {
        println!("show-env: cap {name} {}", capability.port);
    }
    40 + argv.len() as i32
}
