//! `bullet-client`: a program that stores files on the Bullet server named by
//! its `BULLET` capability and reads them back, for every size in its
//! arguments (`bullet-client 0 1 1048577`). Each file's byte i is
//! `(i * 7 + size) as u8`. Prints `bullet-client: SIZE ok CAPABILITY` per file
//! and exits 0 if every file came back byte for byte.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use amoeba::files;
use amoeba::user::env;
use amoeba::user::rpc::Nucleus;
use amoeba::{Capability, println};

amoeba::entry!(args main);

fn round_trip(server: &Capability, size: usize) -> Result<Capability, String> {
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
    let file = files::put(&mut Nucleus, server, &data, |_| {}).map_err(|s| alloc::format!("put: {s}"))?;
    let back = files::get(&mut Nucleus, &file, |_| {}).map_err(|s| alloc::format!("get: {s}"))?;
    if back != data {
        return Err(alloc::format!("{} bytes came back changed", size));
    }
    Ok(file)
}

fn main(argv: &[String]) -> i32 {
    let Some(server) = env::capability("BULLET") else {
        println!("bullet-client: no BULLET capability");
        return 1;
    };
    let mut failed = 0;
    for size in argv.iter().skip(1).filter_map(|a| a.parse::<usize>().ok()) {
        match round_trip(&server, size) {
            Ok(file) => println!("bullet-client: {size} ok {file}"),
            Err(why) => {
                println!("bullet-client: {size} failed: {why}");
                failed += 1;
            }
        }
    }
    if failed == 0 { 0 } else { 1 }
}
