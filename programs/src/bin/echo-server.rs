//! `echo-server`: serves the echo interface (`amoeba_ipc::interfaces::echo`) on
//! put-port F(G), with the get-port G in the low 48 bits of the argument. The
//! argument's top 16 bits are the server's tag, in every reply, so clients can
//! tell which of several servers on one port answered. It announces that it
//! serves (the port's capability) to its starter, if it has one.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Port, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::echo;
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_rt::rpc::serve;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

/// Largest request echoed and largest reply of `source` (the 1 MiB RPC
/// benchmarks need all of it).
const MAX_REQUEST: usize = 1 << 20;

struct Echo {
    port: Port,
    tag: u32,
    /// What `source` answers with.
    source: Vec<u8>,
}

/// Echo has no objects: every operation is public.
impl Objects for Echo {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, _: u32) -> Option<Check> {
        None
    }
}

impl echo::Server for Echo {
    fn echo(&mut self, _: &Call<'_>, data: &[u8]) -> Result<(u32, Vec<u8>), Status> {
        Ok((self.tag, data.to_vec()))
    }
    fn sink(&mut self, _: &Call<'_>, _: &[u8]) -> Result<u32, Status> {
        Ok(self.tag)
    }
    fn source(&mut self, _: &Call<'_>, size: u32) -> Result<(u32, Vec<u8>), Status> {
        // Copied out of a buffer kept whole, as a file server's cache is.
        let size = (size as usize).min(MAX_REQUEST);
        Ok((self.tag, self.source[..size].to_vec()))
    }
}

fn main(argument: u64) -> i32 {
    let get = GetPort(Port::from_u64(argument & 0xffff_ffff_ffff));
    let mut server =
        Echo { port: get.put_port(), tag: (argument >> 48) as u32, source: alloc::vec![0xa5; MAX_REQUEST] };
    println!("echo-server {}: serving put-port {}", server.tag, server.port);
    let _ = starter::announce(&Announcement::Serving(Capability::for_port(server.port)));
    let status = serve(&get, MAX_REQUEST, |header, buf| echo::dispatch(&mut server, header, buf));
    println!("echo-server {}: get_request failed: {status}", server.tag);
    1
}
