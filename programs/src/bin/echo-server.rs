//! `echo-server`: serves put-port F(G), with the get-port G in the low 48
//! bits of the argument, and answers every request with its own buffer. The
//! argument's top 16 bits tag the replies (header `extra`), so clients can
//! tell which of several servers on one port answered. A request with
//! command [`SINK`] gets an empty reply (for throughput measurements).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec;
use amoeba::user::sys::{get_request, put_reply};
use amoeba::{GetPort, Header, Port, Status, println};

amoeba::entry!(main);

/// Command of a request that is only received, not echoed.
const SINK: u32 = 1;

/// Largest request echoed (the 1 MiB RPC benchmark needs all of it).
const MAX_REQUEST: usize = 1 << 20;

fn main(argument: u64) -> i32 {
    let get = GetPort(Port::from_u64(argument & 0xffff_ffff_ffff));
    let tag = (argument >> 48) as u32;
    let mut buf = vec![0u8; MAX_REQUEST];
    println!("echo-server {tag}: serving put-port {}", get.put_port());
    loop {
        match get_request(&get, &mut buf) {
            Ok((request, len)) => {
                let reply = Header { extra: tag, ..Header::reply(Status::Ok) };
                let echoed = if request.command == SINK { &[][..] } else { &buf[..len] };
                if let Err(status) = put_reply(&reply, echoed) {
                    println!("echo-server {tag}: put_reply failed: {status}");
                }
            }
            Err(status) => {
                println!("echo-server {tag}: get_request failed: {status}");
                return 1;
            }
        }
    }
}
