//! `group-counter`: a replicated counter. Argument: bits 48..56 the number
//! of members to wait for; bit 63 "create the group" on the put-port of the
//! get-port in bits 0..48 (and announce its capability to its starter:
//! `Group`), else join the group
//! of the capability given at exec. Every member waits until the group has
//! that many members, sends five increments `+<member id>` in the group's order, and
//! applies every delivered increment to its copy. When all increments are
//! in, it prints `group-counter: value <v> order <hash>`, where the hash
//! covers the whole order of operations, reports both to its starter
//! (`value`, `order`) and exits 0. A failure to enter the group or to send is
//! reported too (`enter failed`, `send failed`: the status's code).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_abi::{GetPort, Port};
use amoeba_ipc::interfaces::OrderHash;
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_rt::group::Group;
use amoeba_rt::time;
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

const INCREMENTS: u64 = 5;

fn main(argument: u64) -> i32 {
    let members = (argument >> 48) & 0xff;
    let group = if argument >> 63 == 1 {
        Group::create(GetPort(Port::from_u64(argument & 0xffff_ffff_ffff)), 0).map(|(group, capability)| {
            println!("group-counter: capability {capability}");
            let _ = starter::announce(&Announcement::Group(capability));
            group
        })
    } else {
        Group::join_given()
    };
    let group = match group {
        Ok(group) => group,
        Err(status) => {
            println!("group-counter: cannot enter the group: {status}");
            let _ = starter::report("enter failed", Value::Signed(status as i64));
            return 1;
        }
    };
    while group.info().map(|i| i.members as u64).unwrap_or(0) < members {
        time::sleep_us(20_000);
    }
    let me = group.info().map(|i| i.member_id).unwrap_or(0);
    println!("group-counter: member {me} of {members}");
    let mut value = 0u64;
    let mut applied = 0u64;
    let mut order_hash = OrderHash::default();
    let mut sent = 0;
    let mut buf = [0u8; 64];
    while applied < members * INCREMENTS {
        if sent < INCREMENTS {
            let message = [b'+', me as u8];
            if let Err(status) = group.send(&message) {
                println!("group-counter: send failed: {status}");
                let _ = starter::report("send failed", Value::Signed(status as i64));
                return 1;
            }
            sent += 1;
        }
        let got = match group.receive(&mut buf) {
            Ok(got) => got,
            Err(status) => {
                println!("group-counter: receive failed: {status}");
                return 1;
            }
        };
        order_hash.add(got.sequence, got.sender, &buf[..got.len]);
        if got.len == 2 && buf[0] == b'+' {
            value += 1 + buf[1] as u64;
            applied += 1;
        }
    }
    println!("group-counter: value {value} order {:016x}", order_hash.value());
    let _ = starter::report("value", Value::Unsigned(value));
    let _ = starter::report("order", Value::Unsigned(order_hash.value()));
    // Leaving hands the sequencer's role on if this member holds it.
    if let Err(status) = group.leave() {
        println!("group-counter: leave failed: {status}");
    }
    0
}
