//! `counter-server`: an object server built on `amoeba::server`: it holds
//! one counter object, prints its owner capability
//! (`counter-server: capability <cap>`), and serves put-port F(G) with G
//! the argument. Commands: 4000 increment (needs the modify right), 4001
//! read (needs read), 4002 slow increment (prints, waits 3 s, then
//! increments), plus the standard commands; the count comes back in the
//! reply header's `extra`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba::server::{Call, ObjectTable, Server, Service};
use amoeba::user::sys::{get_request, put_reply};
use amoeba::user::time;
use amoeba::{GetPort, Header, Port, Rights, Rng, Status, println};

amoeba::entry!(main);

const INCREMENT: u32 = 4000;
const READ: u32 = 4001;
const SLOW_INCREMENT: u32 = 4002;

struct Counter;

impl Service for Counter {
    type Object = u64;

    fn handle(&mut self, table: &mut ObjectTable<u64>, call: Call<'_>) -> Result<(Header, Vec<u8>), Status> {
        let command = call.header.command;
        match command {
            INCREMENT | SLOW_INCREMENT => call.require(Rights::MODIFY)?,
            READ => call.require(Rights::READ)?,
            _ => return Err(Status::ComBad),
        }
        if command == SLOW_INCREMENT {
            println!("counter-server: slow increment");
            time::sleep_us(3_000_000);
        }
        let count = table.get_mut(call.object).ok_or(Status::CapBad)?;
        if command != READ {
            *count += 1;
        }
        Ok((Header { extra: *count as u32, ..Header::reply(Status::Ok) }, Vec::new()))
    }
}

fn main(argument: u64) -> i32 {
    let get = GetPort(Port::from_u64(argument & 0xffff_ffff_ffff));
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&time::ticks().to_le_bytes());
    seed[8..16].copy_from_slice(&argument.to_le_bytes());
    let mut server = Server::new(ObjectTable::new(get.put_port(), Rng::from_seed(seed), 8), Counter);
    let capability = match server.table.create(0) {
        Ok(capability) => capability,
        Err(status) => {
            println!("counter-server: cannot create the counter: {status}");
            return 1;
        }
    };
    println!("counter-server: capability {capability}");
    let mut buf = [0u8; 4096];
    loop {
        let (request, len) = match get_request(&get, &mut buf) {
            Ok(got) => got,
            Err(status) => {
                println!("counter-server: get_request failed: {status}");
                return 1;
            }
        };
        let (reply, data) = server.dispatch(&request, &buf[..len]);
        if let Err(status) = put_reply(&reply, &data) {
            println!("counter-server: put_reply failed: {status}");
        }
    }
}
