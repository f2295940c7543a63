//! `insn-bench`: what operations cost in instructions the board executed
//! (the PMU's count, which QEMU gives under `-icount`) and in generic-timer
//! ticks, driven by `just bench --instructions` (`pool_bench::instructions`).
//! Every figure goes to the host by RPC (the `costs` interface, at the
//! put-port in bits 0..48 of the argument), never through the console.
//!
//! Each figure is the whole board's count between two readings taken around
//! many repetitions (other boards' work is theirs): a board runs nothing else
//! meanwhile, so it is what one operation costs that board, the nucleus, its
//! driver and this program together.
//!
//! Mode in bits 56..64 of the argument:
//! * `NUCLEUS`: a null system call (`time`), a thread switch (two threads
//!   handing a turn over through futexes, per switch), and process creation
//!   (from before `process_create` to the first instruction of `nop`, which
//!   writes its readings into a segment shared with this process); started
//!   with the board's host capability to create `nop`;
//! * `RPC`: null calls (echo `sink`) to the put-port of the capability given
//!   at exec; with `REMOTE` the server is on another board;
//! * `BULLET`: a 1 MiB file made on the Bullet server of the capability given
//!   at exec, read whole once (into the server's cache), then read whole again
//!   and again (the cached read);
//! * `GROUP_SEQUENCER`, `GROUP_SENDER`, `GROUP_MEMBER`: one member each of a
//!   group of `GROUP_MEMBERS`. The sequencer creates the group and announces
//!   its capability to the host (which starts the others with it); the sender
//!   sends a start message and `BROADCASTS` more; every member counts from
//!   its delivery of the start message to its delivery of the last.
//!
//! Exits 0 once its figures are reported, 1 if anything failed (and says why
//! on the console, for people).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use amoeba_abi::syscall::MAP_WRITE;
use amoeba_abi::{Capability, GetPort, Port, Status};
use amoeba_ipc::interfaces::bullet::Client as Bullet;
use amoeba_ipc::interfaces::{BS_COMMIT, Cost, costs, echo};
use amoeba_rt::group::Group;
use amoeba_rt::println;
use amoeba_rt::process::{Builder, Process};
use amoeba_rt::rpc::Nucleus;
use amoeba_rt::segment::Segment;
use amoeba_rt::{exec_capability, sys, thread, time};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

amoeba_rt::entry!(main);

pub const NUCLEUS: u64 = 0;
pub const RPC: u64 = 1;
pub const BULLET: u64 = 2;
pub const GROUP_SEQUENCER: u64 = 3;
pub const GROUP_SENDER: u64 = 4;
pub const GROUP_MEMBER: u64 = 5;
/// Argument bit (with `RPC`): the server is on another board.
pub const REMOTE: u64 = 1 << 48;

const NULL_CALLS: u64 = 2000;
const SWITCH_ROUND_TRIPS: u64 = 500;
const CREATES: u64 = 5;
const RPC_CALLS: u64 = 2000;
const RPC_WARM_UP: u64 = 10;
const FILE_BYTES: usize = 1 << 20;
const CACHED_READS: u64 = 8;
const GROUP_MEMBERS: u32 = 3;
const BROADCASTS: u64 = 1000;
const MESSAGE_BYTES: usize = 16;
/// The group's get-port (any value nobody else uses in the bench's pool).
const GROUP_GET_SEED: u64 = 0x1c0_0575_0001;
/// Longest wait for the group to fill or to empty.
const MEMBERSHIP_TIMEOUT_US: u64 = 60_000_000;
/// Where the segment `nop` writes to is mapped, here and in `nop`.
const SHARED: u64 = 0x2000_0000;

/// Readings of the board's two counters.
#[derive(Clone, Copy)]
struct Reading {
    instructions: u32,
    ticks: u64,
}

impl Reading {
    fn now() -> Reading {
        Reading { instructions: time::instructions(), ticks: time::ticks() }
    }

    /// The cost of `repetitions` of `operation` from `self` to `end`.
    fn until(self, end: Reading, operation: &str, repetitions: u64) -> Cost {
        Cost {
            operation: String::from(operation),
            repetitions,
            instructions: u64::from(end.instructions.wrapping_sub(self.instructions)),
            ticks: end.ticks.saturating_sub(self.ticks),
            ticks_per_second: time::ticks_per_second(),
        }
    }
}

/// Sends one figure to the host.
fn report(host: &Capability, cost: Cost) -> Result<(), Status> {
    costs::Client::new(Nucleus).report(host, &cost)
}

fn main(argument: u64) -> i32 {
    let host = Capability::for_port(Port::from_u64(argument & 0xffff_ffff_ffff));
    let result = match argument >> 56 {
        NUCLEUS => nucleus(&host),
        RPC => null_rpc(&host, argument & REMOTE != 0),
        BULLET => cached_read(&host),
        GROUP_SEQUENCER | GROUP_SENDER | GROUP_MEMBER => broadcast(&host, argument >> 56),
        _ => Err(Status::ArgBad),
    };
    match result {
        Ok(()) => 0,
        Err(status) => {
            println!("insn-bench: mode {} failed: {status}", argument >> 56);
            1
        }
    }
}

fn nucleus(host: &Capability) -> Result<(), Status> {
    let start = Reading::now();
    for _ in 0..NULL_CALLS {
        core::hint::black_box(sys::time());
    }
    report(host, start.until(Reading::now(), "null system call", NULL_CALLS))?;
    report(host, context_switch())?;
    report(host, process_create()?)
}

const MAIN: u32 = 0;
const PARTNER: u32 = 1;

/// Two threads hand a turn word back and forth through futexes; the cost of
/// one switch (the wake and wait calls included).
fn context_switch() -> Cost {
    let turn = Arc::new(AtomicU32::new(MAIN));
    let stop = Arc::new(AtomicBool::new(false));
    let partner = {
        let (turn, stop) = (turn.clone(), stop.clone());
        thread::spawn(move || {
            loop {
                while turn.load(Ordering::Acquire) != PARTNER {
                    let _ = sys::futex_wait(&turn, MAIN);
                }
                if stop.load(Ordering::Acquire) {
                    return;
                }
                turn.store(MAIN, Ordering::Release);
                let _ = sys::futex_wake(&turn, 1);
            }
        })
    };
    let hand_over = |rounds: u64| {
        for _ in 0..rounds {
            turn.store(PARTNER, Ordering::Release);
            let _ = sys::futex_wake(&turn, 1);
            while turn.load(Ordering::Acquire) != MAIN {
                let _ = sys::futex_wait(&turn, PARTNER);
            }
        }
    };
    hand_over(10); // both threads running and their stacks touched
    let start = Reading::now();
    hand_over(SWITCH_ROUND_TRIPS);
    let cost = start.until(Reading::now(), "context switch", 2 * SWITCH_ROUND_TRIPS);
    stop.store(true, Ordering::Release);
    turn.store(PARTNER, Ordering::Release);
    let _ = sys::futex_wake(&turn, 1);
    partner.join();
    cost
}

/// From before `process_create` to `nop`'s first readings, summed over `CREATES`.
fn process_create() -> Result<Cost, Status> {
    let segment = Segment::create(4096)?;
    let shared = segment.map(SHARED, true)?;
    let host = amoeba_rt::env::capability(amoeba_abi::syscall::HOST_CAPABILITY_NAME);
    let mut total = Cost { operation: String::from("process creation"), ..Cost::default() };
    for _ in 0..CREATES {
        shared.atomic_u64(0).store(0, Ordering::SeqCst);
        let nop = Builder::new("nop").argument(SHARED).map_segment(segment.capability(), SHARED, MAP_WRITE);
        let descriptor = nop.descriptor();
        let start = Reading::now();
        let (pid, cap) = sys::process_create(&descriptor, host.as_ref())?;
        let status = Process { pid, cap }.wait()?;
        let ticks = shared.atomic_u64(0).load(Ordering::SeqCst);
        let instructions = shared.atomic_u64(8).load(Ordering::SeqCst) as u32;
        if status != 0 || ticks == 0 {
            println!("insn-bench: nop exited with {status}, wrote {ticks}");
            return Err(Status::SysErr);
        }
        let cost = start.until(Reading { instructions, ticks }, "", 1);
        total.repetitions += 1;
        total.instructions += cost.instructions;
        total.ticks += cost.ticks;
        total.ticks_per_second = cost.ticks_per_second;
    }
    Ok(total)
}

/// Null calls to the server of the capability given at exec.
fn null_rpc(host: &Capability, remote: bool) -> Result<(), Status> {
    let service = exec_capability().ok_or(Status::ArgBad)?;
    let mut client = echo::Client::new(Nucleus);
    // Locates the server and warms every path up.
    for _ in 0..RPC_WARM_UP {
        client.sink(&service, &[])?;
    }
    let start = Reading::now();
    for _ in 0..RPC_CALLS {
        client.sink(&service, &[])?;
    }
    let name = if remote { "remote null RPC, client board" } else { "local null RPC" };
    report(host, start.until(Reading::now(), name, RPC_CALLS))
}

/// A cached 1 MiB read from the Bullet server of the capability given at exec.
fn cached_read(host: &Capability) -> Result<(), Status> {
    let server = exec_capability().ok_or(Status::ArgBad)?;
    let mut bullet = Bullet::new(Nucleus);
    let data = vec![0x5a; FILE_BYTES];
    let file = bullet.create(&server, BS_COMMIT, &data)?;
    drop(data);
    let read_whole = |bullet: &mut Bullet<Nucleus>| -> Result<(), Status> {
        let data = bullet.read(&file, 0, FILE_BYTES as u32)?;
        if data.len() == FILE_BYTES { Ok(()) } else { Err(Status::SysErr) }
    };
    read_whole(&mut bullet)?; // into the server's cache
    let start = Reading::now();
    for _ in 0..CACHED_READS {
        read_whole(&mut bullet)?;
    }
    let cost = start.until(Reading::now(), "Bullet cached 1 MiB read", CACHED_READS);
    let _ = amoeba_ipc::interfaces::standard::Client::new(Nucleus).destroy(&file);
    report(host, cost)
}

const KIND_START: u8 = b'S';
const KIND_MESSAGE: u8 = b'M';

/// One member of the broadcast measurement (see the module's notes).
fn broadcast(host: &Capability, role: u64) -> Result<(), Status> {
    let group = Arc::new(if role == GROUP_SEQUENCER {
        let (group, capability) = Group::create(GetPort(Port::from_u64(GROUP_GET_SEED)), 0)?;
        costs::Client::new(Nucleus).announce(host, &capability.encode())?;
        group
    } else {
        Group::join_given()?
    });
    wait_for_members(&group, |members| members >= GROUP_MEMBERS)?;
    let sender = (role == GROUP_SENDER).then(|| {
        // Sends from a thread of its own, so that this one goes on delivering.
        let group = group.clone();
        thread::spawn(move || {
            let mut message = [0u8; MESSAGE_BYTES];
            message[0] = KIND_START;
            group.send(&message)?;
            message[0] = KIND_MESSAGE;
            for _ in 0..BROADCASTS {
                group.send(&message)?;
            }
            Ok::<(), Status>(())
        })
    });
    let mut buf = [0u8; MESSAGE_BYTES];
    let mut start = None;
    let mut delivered = 0;
    while delivered < BROADCASTS {
        let got = group.receive(&mut buf)?;
        match (got.len, buf[0]) {
            (MESSAGE_BYTES, KIND_START) => start = Some(Reading::now()),
            (MESSAGE_BYTES, KIND_MESSAGE) if start.is_some() => delivered += 1,
            _ => {}
        }
    }
    let end = Reading::now();
    if let Some(sender) = sender {
        sender.join()?;
    }
    let name = match role {
        GROUP_SEQUENCER => "broadcast at the sequencer",
        GROUP_SENDER => "broadcast at the sender",
        _ => "broadcast at a member",
    };
    report(host, start.ok_or(Status::SysErr)?.until(end, name, BROADCASTS))?;
    if role == GROUP_SEQUENCER {
        // The others leave first, so that the group ends without a hand-over.
        wait_for_members(&group, |members| members <= 1)?;
    }
    Arc::into_inner(group).ok_or(Status::SysErr)?.leave()
}

/// Waits until the group's membership satisfies `done`.
fn wait_for_members(group: &Group, done: impl Fn(u32) -> bool) -> Result<(), Status> {
    let deadline = time::now_us() + MEMBERSHIP_TIMEOUT_US;
    while !done(group.info()?.members) {
        if time::now_us() > deadline {
            return Err(Status::NotNow);
        }
        time::sleep_us(10_000);
    }
    Ok(())
}
