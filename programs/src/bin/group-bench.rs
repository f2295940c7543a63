//! `group-bench`: one member of a group-broadcast benchmark (driven by
//! `boot bench`, module `pool_bench::group`).
//!
//! Argument bits:
//! * 63: create the group (this member is the sequencer) and announce its
//!   capability to the starter (`Announcement::Group`); else join the group
//!   of the capability given at exec;
//! * 62 (creator only): every message goes by the BB method (the sender
//!   broadcasts it, the sequencer only an accept); else every message by PB;
//! * 61: this member is the latency sender (must not be the sequencer);
//! * 56..60 (creator only): the group's resilience (members besides the
//!   sequencer that hold a message before anyone delivers it);
//! * 48..56: members to wait for; 40..48: a tag naming the run in the
//!   output; 24..40: latency rounds; 12..24: messages each member sends in
//!   the throughput phase; 0..12: message size in bytes (8..=1024).
//!
//! Latency phase: the sender sends message i, waits until it has delivered
//! it, sleeps a little so that every member has delivered it too, and sends
//! i + 1. Every member notes the time (`time::now_us`) it delivered each
//! message; the sender also notes each send. Throughput phase: every member
//! sends a "ready" message; once a member has delivered all of them (the
//! same point of the order everywhere) it sends its messages as fast as the
//! group takes them, from a second thread, and notes when it delivered the
//! last of everyone's. Then it reports its times to its starter as typed
//! figures (see `report`) and exits;
//! the creator waits for the others to leave first, so that the group ends
//! without a sequencer hand-over.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::{GetPort, Port, Status};
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_rt::group::Group;
use amoeba_rt::println;
use amoeba_rt::starter;
use amoeba_rt::{thread, time};

amoeba_rt::entry!(main);

const CREATE: u64 = 1 << 63;
const BY_BB: u64 = 1 << 62;
const LATENCY_SENDER: u64 = 1 << 61;
/// Pause between latency rounds, so that each round finds a quiet group.
const ROUND_PAUSE_US: u64 = 2_000;
/// Longest wait for the group to fill or to empty at the end.
const MEMBERSHIP_TIMEOUT_US: u64 = 60_000_000;

const KIND_LATENCY: u8 = b'L';
const KIND_READY: u8 = b'R';
const KIND_THROUGHPUT: u8 = b'T';

struct Plan {
    create: bool,
    by_bb: bool,
    latency_sender: bool,
    resilience: u16,
    members: u32,
    tag: u8,
    rounds: usize,
    throughput_messages: usize,
    size: usize,
}

impl Plan {
    fn decode(argument: u64) -> Option<Plan> {
        let plan = Plan {
            create: argument & CREATE != 0,
            by_bb: argument & BY_BB != 0,
            latency_sender: argument & LATENCY_SENDER != 0,
            resilience: ((argument >> 56) & 0xf) as u16,
            members: ((argument >> 48) & 0xff) as u32,
            tag: (argument >> 40) as u8,
            rounds: ((argument >> 24) & 0xffff) as usize,
            throughput_messages: ((argument >> 12) & 0xfff) as usize,
            size: (argument & 0xfff) as usize,
        };
        let valid = plan.members >= 2
            && plan.rounds > 0
            && (8..=1024).contains(&plan.size)
            && u32::from(plan.resilience) < plan.members
            && !(plan.create && plan.latency_sender);
        valid.then_some(plan)
    }
}

/// A message: kind, index (little endian), padding up to the plan's size.
fn message(kind: u8, index: u32, size: usize) -> Vec<u8> {
    let mut bytes = vec![0x5a; size];
    bytes[0] = kind;
    bytes[1..5].copy_from_slice(&index.to_le_bytes());
    bytes
}

/// The next message: (kind, index, local delivery time).
fn next(group: &Group, buf: &mut [u8]) -> Result<(u8, usize, u64), Status> {
    let got = group.receive(buf)?;
    let at = time::now_us();
    if got.len < 5 {
        return Ok((0, 0, at));
    }
    let index = u32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
    Ok((buf[0], index, at))
}

fn enter(plan: &Plan) -> Result<Group, Status> {
    if plan.create {
        // BB for everything longer than one byte, or PB for everything.
        let bb_threshold = if plan.by_bb { 1 } else { u32::MAX };
        let get_port = GetPort(Port::from_u64(0x6762_0000_0000 | (plan.tag as u64) << 8 | 1));
        let (group, capability) = Group::create_with_bb_threshold(get_port, plan.resilience, bb_threshold)?;
        // The starter hands the capability to the other members; without a
        // starter (started by hand) they get it some other way.
        match starter::announce(&Announcement::Group(capability)) {
            Ok(()) | Err(Status::NotFound) => Ok(group),
            Err(status) => {
                println!("group-bench {}: announcing the group failed: {status}", plan.tag);
                Err(status)
            }
        }
    } else {
        Group::join_given()
    }
}

/// Waits until the group has as many members as `done` accepts.
fn wait_for_members(group: &Group, tag: u8, done: impl Fn(u32) -> bool) -> Result<(), Status> {
    let deadline = time::now_us() + MEMBERSHIP_TIMEOUT_US;
    while !done(group.info()?.members) {
        if time::now_us() > deadline {
            println!("group-bench {tag}: timed out waiting for members ({})", group.info()?.members);
            return Err(Status::NotNow);
        }
        time::sleep_us(10_000);
    }
    Ok(())
}

/// Local times of one member's run.
struct Times {
    /// Delivery of latency message i, per round.
    delivered: Vec<u64>,
    /// Send of latency message i (the latency sender only).
    sent: Vec<u64>,
    /// Delivery of the last "ready", where the throughput phase starts.
    throughput_start: u64,
    /// Delivery of the last throughput message.
    throughput_end: u64,
    throughput_count: usize,
}

/// Notes the delivery of a latency message; whether it was a new one.
fn note_latency(times: &mut Times, rounds: usize, (kind, index, at): (u8, usize, u64)) -> bool {
    let new = kind == KIND_LATENCY && index < rounds && times.delivered[index] == 0;
    if new {
        times.delivered[index] = at;
    }
    new
}

fn latency_phase(group: &Group, plan: &Plan, times: &mut Times) -> Result<(), Status> {
    let mut buf = [0u8; 1024];
    if plan.latency_sender {
        for round in 0..plan.rounds {
            let bytes = message(KIND_LATENCY, round as u32, plan.size);
            times.sent[round] = time::now_us();
            group.send(&bytes)?;
            while times.delivered[round] == 0 {
                note_latency(times, plan.rounds, next(group, &mut buf)?);
            }
            time::sleep_us(ROUND_PAUSE_US);
        }
    } else {
        let mut delivered = 0;
        while delivered < plan.rounds {
            if note_latency(times, plan.rounds, next(group, &mut buf)?) {
                delivered += 1;
            }
        }
    }
    Ok(())
}

fn throughput_phase(group: &Arc<Group>, plan: &Plan, times: &mut Times) -> Result<(), Status> {
    let mut buf = [0u8; 1024];
    group.send(&message(KIND_READY, 0, plan.size))?;
    let mut ready = 0;
    while ready < plan.members {
        let (kind, _, at) = next(group, &mut buf)?;
        if kind == KIND_READY {
            ready += 1;
            times.throughput_start = at;
        }
    }
    let sender_group = group.clone();
    let (count, size) = (plan.throughput_messages, plan.size);
    let sender = thread::spawn(move || {
        for index in 0..count {
            sender_group.send(&message(KIND_THROUGHPUT, index as u32, size))?;
        }
        Ok::<(), Status>(())
    });
    let expected = plan.members as usize * plan.throughput_messages;
    while times.throughput_count < expected {
        let (kind, _, at) = next(group, &mut buf)?;
        if kind == KIND_THROUGHPUT {
            times.throughput_count += 1;
            times.throughput_end = at;
        }
    }
    sender.join()
}

/// Reports the times to the starter (this board's clock, µs): the series
/// `delivered` and `sent` (by round), `throughput` as start, end and count,
/// and last the flag `done`. Without a starter there is nobody to tell.
fn report(tag: u8, member: u32, times: &Times) -> Result<(), Status> {
    if starter::has_starter() {
        starter::report_series("delivered", &times.delivered)?;
        starter::report_series("sent", &times.sent)?;
        let throughput = [times.throughput_start, times.throughput_end, times.throughput_count as u64];
        starter::report_series("throughput", &throughput)?;
        starter::report("done", Value::Flag(true))?;
    }
    println!("group-bench {tag} member {member} done");
    Ok(())
}

fn run(plan: &Plan) -> Result<(), Status> {
    let group = Arc::new(enter(plan)?);
    wait_for_members(&group, plan.tag, |members| members >= plan.members)?;
    let info = group.info()?;
    println!(
        "group-bench {} member {} of {}, sequencer {}",
        plan.tag, info.member_id, info.members, info.sequencer_id
    );
    if plan.latency_sender && info.member_id == info.sequencer_id {
        println!("group-bench {}: the latency sender must not be the sequencer", plan.tag);
        return Err(Status::ArgBad);
    }
    let mut times = Times {
        delivered: vec![0; plan.rounds],
        sent: if plan.latency_sender { vec![0; plan.rounds] } else { Vec::new() },
        throughput_start: 0,
        throughput_end: 0,
        throughput_count: 0,
    };
    latency_phase(&group, plan, &mut times)?;
    throughput_phase(&group, plan, &mut times)?;
    report(plan.tag, info.member_id, &times)?;
    if plan.create {
        // The sequencer goes last; members of ended processes leave by
        // themselves (the nucleus leaves for them).
        wait_for_members(&group, plan.tag, |members| members <= 1)?;
    }
    Ok(())
}

fn main(argument: u64) -> i32 {
    let Some(plan) = Plan::decode(argument) else {
        println!("group-bench: bad argument {argument:#x}");
        return 2;
    };
    match run(&plan) {
        Ok(()) => 0,
        Err(status) => {
            println!("group-bench {}: failed: {status}", plan.tag);
            1
        }
    }
}
