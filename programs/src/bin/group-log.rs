//! `group-log`: an ordered chat. Every member sends its lines to the group
//! while it prints every line the group delivers, in the group's order, as
//! `group-log: <sequence> <sender> <text>`, and membership changes as
//! `group-log: <sequence> <member> [joined|left|reset, dropped <ids>]`.
//! From the first line on, every member's log is the same.
//!
//! Argument:
//! * bits 0..32: the get-port to create the group on (creator only);
//! * bits 32..48: how many lines this member sends;
//! * bits 48..56: how many members to wait for before sending;
//! * bits 56..60: pause between lines, in units of 10 ms;
//! * bits 60..63: the group's resilience degree (creator only);
//! * bit 63: create the group (and announce its capability to the starter:
//!   `Group`; the console shows it too),
//!   else join the group of the capability given at exec.
//!
//! Environment (creator only): `MIN_RESET=n`, the members a reset needs
//! (default: a majority).
//!
//! A member's last line is `bye`. A member stops once each of the members
//! it waited for has said bye or left the group (a crashed member leaves at
//! the group's reset), at the same place in the order for everyone; it
//! prints `group-log: done <lines> order <hash>` and leaves.
//!
//! What tests read goes to the starter as figures (the console lines are for
//! people): `heard` (messages from other members, each time ten more came),
//! `reset-dropped` and `own-at-reset` (the members a reset dropped, and how
//! many of its own messages it had delivered by then), and at the end
//! `delivered`, `own-delivered` and `order` (the FNV-1a hash of every
//! message's sequence number, sender and bytes, in its order). With
//! `REPORT_ENTRIES=1` in its environment it also reports every entry it
//! delivers, as it delivers it (`amoeba_ipc::interfaces::demo::GroupLogEntry`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use amoeba_abi::{GetPort, Port};
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_ipc::interfaces::{GROUP_LOG_ENTRY, GroupLogEntry, GroupLogWhat, OrderHash};
use amoeba_rt::group::{EntryKind, Group, GroupOptions};
use amoeba_rt::{env, thread, time};
use amoeba_rt::{println, starter};

amoeba_rt::entry!(main);

struct Arguments {
    get_port: u64,
    lines: u64,
    members: u32,
    pause_us: u64,
    resilience: u16,
    create: bool,
}

impl Arguments {
    fn parse(argument: u64) -> Self {
        Arguments {
            get_port: argument & 0xffff_ffff,
            lines: (argument >> 32) & 0xffff,
            members: ((argument >> 48) & 0xff) as u32,
            pause_us: ((argument >> 56) & 0xf) * 10_000,
            resilience: ((argument >> 60) & 0x7) as u16,
            create: argument >> 63 == 1,
        }
    }
}

fn enter(arguments: &Arguments) -> Result<Group, amoeba_abi::Status> {
    if arguments.create {
        let get_port = GetPort(Port::from_u64(arguments.get_port));
        let min_reset_members = env::var("MIN_RESET").and_then(|v| v.parse().ok()).unwrap_or(0);
        let options = GroupOptions { resilience: arguments.resilience, bb_threshold: 0, min_reset_members };
        let (group, capability) = Group::create_with(get_port, &options)?;
        println!("group-log: capability {capability}");
        let _ = starter::announce(&Announcement::Group(capability));
        return Ok(group);
    }
    Group::join_given()
}

/// Bit i: a reset's entry `data` names member i as dropped (members 0 to 63).
fn dropped_mask(data: &[u8]) -> u64 {
    let ids = data.chunks_exact(4).map(|id| u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
    ids.filter(|id| *id < 64).fold(0, |mask, id| mask | 1 << id)
}

fn main(argument: u64) -> i32 {
    let arguments = Arguments::parse(argument);
    let group = match enter(&arguments) {
        Ok(group) => Arc::new(group),
        Err(status) => {
            println!("group-log: cannot enter the group: {status}");
            return 1;
        }
    };
    while group.info().map(|i| i.members).unwrap_or(0) < arguments.members {
        time::sleep_us(20_000);
    }
    let me = group.info().map(|i| i.member_id).unwrap_or(u32::MAX);
    println!("group-log: member {me}, {} lines to send", arguments.lines);

    let sender = {
        let group = group.clone();
        let (lines, pause_us) = (arguments.lines, arguments.pause_us);
        thread::spawn(move || {
            for line in 0..lines {
                if let Err(status) = group.send(format!("line {line} from member {me}").as_bytes()) {
                    println!("group-log: send failed: {status}");
                    return false;
                }
                if pause_us > 0 {
                    time::sleep_us(pause_us);
                }
            }
            group.send(b"bye").is_ok()
        })
    };

    let mut finished = BTreeSet::new(); // members that said bye or left
    let mut delivered = 0u64;
    let (mut heard, mut own) = (0u64, 0u64); // messages from the others, from itself
    let mut order_hash = OrderHash::default();
    let mut buf = [0u8; 256];
    let mut said_bye = false;
    let report_entries = env::var("REPORT_ENTRIES").is_some_and(|v| v == "1");
    while !(said_bye && finished.len() >= arguments.members as usize) {
        let got = match group.receive_entry(&mut buf) {
            Ok(got) => got,
            Err(status) => {
                println!("group-log: receive failed: {status}");
                return 1;
            }
        };
        let data = &buf[..got.len];
        let text = match got.kind {
            EntryKind::Message => {
                delivered += 1;
                order_hash.add(got.sequence, got.sender, data);
                if got.sender == me {
                    own += 1;
                } else {
                    heard += 1;
                    if heard.is_multiple_of(10) {
                        let _ = starter::report("heard", Value::Unsigned(heard));
                    }
                }
                if data == b"bye" {
                    finished.insert(got.sender);
                    said_bye |= got.sender == me;
                }
                String::from(core::str::from_utf8(data).unwrap_or("<not text>"))
            }
            EntryKind::MemberJoined => String::from("[joined]"),
            EntryKind::MemberLeft => {
                finished.insert(got.sender);
                String::from("[left]")
            }
            EntryKind::Reset => {
                let dropped: Vec<u32> =
                    data.chunks_exact(4).map(|id| u32::from_le_bytes([id[0], id[1], id[2], id[3]])).collect();
                finished.extend(dropped.iter().copied());
                let dropped_ids: Vec<u64> = dropped.iter().map(|id| u64::from(*id)).collect();
                let _ = starter::report("own-at-reset", Value::Unsigned(own));
                let _ = starter::report_series("reset-dropped", &dropped_ids);
                format!("[reset, dropped {dropped:?}]")
            }
        };
        if report_entries {
            let entry = match got.kind {
                EntryKind::Message => GroupLogEntry::message(got.sequence, got.sender, data),
                kind => {
                    let what = match kind {
                        EntryKind::MemberJoined => GroupLogWhat::Joined,
                        EntryKind::MemberLeft => GroupLogWhat::Left,
                        _ => GroupLogWhat::Reset(dropped_mask(data)),
                    };
                    GroupLogEntry { sequence: got.sequence, sender: got.sender, what }
                }
            };
            let _ = starter::report_series(GROUP_LOG_ENTRY, &entry.to_numbers());
        }
        println!("group-log: {} {} {text}", got.sequence, got.sender);
    }
    let sent_all = sender.join();
    println!("group-log: done {delivered} order {:016x}", order_hash.value());
    let _ = starter::report("delivered", Value::Unsigned(delivered));
    let _ = starter::report("own-delivered", Value::Unsigned(own));
    let _ = starter::report("order", Value::Unsigned(order_hash.value()));
    if let Err(status) = Arc::into_inner(group).map_or(Ok(()), |group| group.leave()) {
        println!("group-log: leave failed: {status}");
    }
    if sent_all { 0 } else { 1 }
}
