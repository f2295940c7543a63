//! `dir-client`: a client of the directory service for the pool tests. It
//! makes random calls ([`directory_server::workload`]) on the directories its
//! capability environment names `ROOT`, `SUB` and `NOTES` until it has made
//! the number of updates in its arguments (`dir-client <client> <updates>
//! <seed>`), then prints every call it made with its times on this board's
//! clock (`dir-client <client>: record <hex>`) and `dir-client <client>: done`.
//! It reports every record to its starter as well (`record`: the record's
//! `Record::to_hex` form), which is where the tests read them; a record it
//! cannot report makes it exit 1.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use amoeba_abi::Capability;
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::{env, time};
use amoeba_rt::{println, starter};
use directory_server::workload::{Directories, run};

amoeba_rt::entry!(args main);

fn directories() -> Option<Directories> {
    let cap = |name: &str| -> Option<Capability> { env::capability(name) };
    Some(Directories { root: cap("ROOT")?, sub: cap("SUB")?, notes: cap("NOTES")? })
}

fn main(argv: &[String]) -> i32 {
    let number = |i: usize| argv.get(i).and_then(|a| a.parse::<u64>().ok());
    let (Some(client), Some(updates), Some(seed)) = (number(1), number(2), number(3)) else {
        println!("dir-client: usage: dir-client <client> <updates> <seed>");
        return 2;
    };
    let Some(dirs) = directories() else {
        println!("dir-client {client}: needs ROOT, SUB and NOTES capabilities");
        return 2;
    };
    let records = run(&mut Nucleus, &dirs, client as u32, updates as usize, seed, time::now_us);
    let mut unreported = 0;
    for record in &records {
        let hex = record.to_hex();
        println!("dir-client {client}: record {hex}");
        if starter::has_starter() && starter::report("record", Value::Text(hex)).is_err() {
            unreported += 1;
        }
    }
    println!("dir-client {client}: done, {} calls", records.len());
    if unreported > 0 {
        println!("dir-client {client}: {unreported} records not reported");
        return 1;
    }
    0
}
