//! `bullet-client`: a program that stores files on the Bullet server named by
//! its `BULLET` capability and reads them back, for every size in its
//! arguments (`bullet-client 0 1 1048577`). Each file's byte i is
//! `(i * 7 + size) as u8`. Files are streamed a piece at a time both ways
//! (`amoeba_client::files::put_from`, `get_into`), so a file may be far larger than
//! the program's heap. Prints `bullet-client: SIZE ok CAPABILITY` per file,
//! reports each file to its starter (`file SIZE`: its capability), and exits
//! 0 if every file came back byte for byte.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use amoeba_abi::Capability;
use amoeba_client::files::{self, StreamError};
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::env;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(args main);

/// Byte `at` of the file of `size` bytes.
fn pattern(at: u64, size: u64) -> u8 {
    (at * 7 + size) as u8
}

fn round_trip(server: &Capability, size: u64) -> Result<Capability, String> {
    let mut made = 0;
    let fill = |piece: &mut [u8]| {
        for byte in piece.iter_mut() {
            *byte = pattern(made, size);
            made += 1;
        }
        Ok::<(), ()>(())
    };
    let file = files::put_from(&mut Nucleus, server, size, fill, |_| {})
        .map_err(|e: StreamError<()>| alloc::format!("put: {e:?}"))?;
    let mut checked = 0;
    let check = |piece: &[u8]| {
        for &byte in piece {
            if byte != pattern(checked, size) {
                return Err(checked);
            }
            checked += 1;
        }
        Ok(())
    };
    match files::get_into(&mut Nucleus, &file, check, |_| {}) {
        Ok(got) if got == size => Ok(file),
        Ok(got) => Err(alloc::format!("{got} bytes came back, {size} stored")),
        Err(StreamError::Local(at)) => Err(alloc::format!("byte {at} of {size} came back changed")),
        Err(StreamError::Server(status)) => Err(alloc::format!("get: {status}")),
    }
}

fn main(argv: &[String]) -> i32 {
    let Some(server) = env::capability("BULLET") else {
        println!("bullet-client: no BULLET capability");
        return 1;
    };
    let mut failed = 0;
    for size in argv.iter().skip(1).filter_map(|a| a.parse::<u64>().ok()) {
        match round_trip(&server, size) {
            Ok(file) => {
                println!("bullet-client: {size} ok {file}");
                let _ = starter::report(&alloc::format!("file {size}"), Value::Capability(file));
            }
            Err(why) => {
                println!("bullet-client: {size} failed: {why}");
                failed += 1;
            }
        }
    }
    if failed == 0 { 0 } else { 1 }
}
