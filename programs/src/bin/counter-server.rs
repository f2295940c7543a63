//! `counter-server`: serves the counter interface (`amoeba_ipc::interfaces::counter`)
//! on put-port F(G), with G the argument: it holds one counter object and
//! announces its owner capability to its starter (`BOOTSTRAP`; the console
//! line `counter-server: capability <cap>` is for people). Slow increment
//! reports `slow increment` to the starter and
//! prints, waits 3 s, then increments (for tests that kill the server meanwhile).
//! Bits 48 to 55 of the argument, if set, are seconds to wait between announcing
//! and serving: a server slow to start, whose clients call before it serves.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_abi::{GetPort, Port, Rng, Status};
use amoeba_ipc::interface::Call;
use amoeba_ipc::interfaces::counter;
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_ipc::server::{ObjectTable, TableServer};
use amoeba_rt::rpc::serve;
use amoeba_rt::time;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

struct Counters(ObjectTable<u32>);

impl TableServer for Counters {
    type Object = u32;
    fn table(&self) -> &ObjectTable<u32> {
        &self.0
    }
    fn table_mut(&mut self) -> &mut ObjectTable<u32> {
        &mut self.0
    }
}

impl counter::Server for Counters {
    fn increment(&mut self, call: &Call<'_>) -> Result<u32, Status> {
        let count = self.0.get_mut(call.object).ok_or(Status::CapBad)?;
        *count += 1;
        Ok(*count)
    }
    fn read(&mut self, call: &Call<'_>) -> Result<u32, Status> {
        self.0.get(call.object).copied().ok_or(Status::CapBad)
    }
    fn slow_increment(&mut self, call: &Call<'_>) -> Result<u32, Status> {
        println!("counter-server: slow increment");
        // Told before the wait, so a test may kill the server meanwhile.
        let _ = starter::report("slow increment", Value::Flag(true));
        time::sleep_us(3_000_000);
        self.increment(call)
    }
}

fn main(argument: u64) -> i32 {
    let get = GetPort(Port::from_u64(argument & 0xffff_ffff_ffff));
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&time::ticks().to_le_bytes());
    seed[8..16].copy_from_slice(&argument.to_le_bytes());
    let mut server = Counters(ObjectTable::new(get.put_port(), Rng::from_seed(seed), 8));
    let capability = match server.0.create(0) {
        Ok(capability) => capability,
        Err(status) => {
            println!("counter-server: cannot create the counter: {status}");
            return 1;
        }
    };
    println!("counter-server: capability {capability}");
    let _ = starter::announce(&Announcement::Serving(capability));
    let start_delay_s = (argument >> 48) & 0xff;
    if start_delay_s > 0 {
        time::sleep_us(start_delay_s * 1_000_000);
    }
    let status = serve(&get, 4096, |header, buf| counter::dispatch(&mut server, header, buf));
    println!("counter-server: get_request failed: {status}");
    1
}
