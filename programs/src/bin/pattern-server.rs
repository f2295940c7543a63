//! `pattern-server`: a file server with one read-only file of `size` bytes
//! (the argument's low 32 bits) whose byte at offset i is
//! `(i * 31 ^ i >> 8) as u8`, served with the read operation of Bullet
//! files on put-port F(G), G = the argument's high 32 bits. It announces the
//! file's capability to its starter (and prints it for people). Tests make
//! segments from it on other boards and check every byte.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Port, Rights, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_ipc::interfaces::{BS_IO_MAX, BulletStats, bullet};
use amoeba_rt::rpc::serve;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

/// The file's object number and random check (a test server: fixed).
const FILE: u32 = 1;
const RANDOM: Check = Check([0x70, 0x61, 0x74, 0x74, 0x65, 0x72]);

/// The byte at `offset` of the pattern file.
pub fn pattern(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8)) as u8
}

struct Patterns {
    port: Port,
    size: u64,
}

impl Objects for Patterns {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == FILE).then_some(RANDOM)
    }
}

impl bullet::Server for Patterns {
    fn create(&mut self, _: &Call<'_>, _: u32, _: &[u8]) -> Result<Capability, Status> {
        Err(Status::Denied)
    }
    fn read(&mut self, _: &Call<'_>, offset: u64, size: u32) -> Result<Vec<u8>, Status> {
        if offset > self.size {
            return Err(Status::ArgBad);
        }
        let end = (offset + u64::from(size).min(BS_IO_MAX as u64)).min(self.size);
        Ok((offset..end).map(pattern).collect())
    }
    fn size(&mut self, _: &Call<'_>) -> Result<u64, Status> {
        Ok(self.size)
    }
    fn modify(&mut self, _: &Call<'_>, _: u64, _: u32, _: &[u8]) -> Result<Capability, Status> {
        Err(Status::Denied)
    }
    fn insert(&mut self, _: &Call<'_>, _: u64, _: u32, _: &[u8]) -> Result<Capability, Status> {
        Err(Status::Denied)
    }
    fn delete(&mut self, _: &Call<'_>, _: u64, _: u32, _: u32) -> Result<Capability, Status> {
        Err(Status::Denied)
    }
    fn sync(&mut self, _: &Call<'_>) -> Result<(), Status> {
        Ok(())
    }
    fn stats(&mut self, _: &Call<'_>) -> Result<BulletStats, Status> {
        Err(Status::ComBad) // no disk behind it
    }
    fn reserve(&mut self, _: &Call<'_>, _: u64) -> Result<Capability, Status> {
        Err(Status::Denied)
    }
    fn write(&mut self, _: &Call<'_>, _: u64, _: &[u8]) -> Result<(), Status> {
        Err(Status::Denied)
    }
    fn commit(&mut self, _: &Call<'_>, _: u32) -> Result<(), Status> {
        Err(Status::Denied)
    }
}

fn main(argument: u64) -> i32 {
    let get = GetPort(Port::from_u64(argument >> 32));
    let mut server = Patterns { port: get.put_port(), size: argument & 0xffff_ffff };
    let file = Capability::owner(server.port, FILE, RANDOM).restrict(Rights::READ).expect("owner restricts");
    println!("pattern-server: capability {file}");
    let _ = starter::announce(&Announcement::Serving(file));
    let status = serve(&get, 4096, |header, buf| bullet::dispatch(&mut server, header, buf));
    println!("pattern-server: get_request failed: {status}");
    1
}
