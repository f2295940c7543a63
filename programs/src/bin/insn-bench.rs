//! `insn-bench`: what operations cost in instructions the board executed
//! (the PMU's count, which QEMU gives under `-icount`) and in generic-timer
//! ticks, driven by `just bench --instructions` (`pool_bench::instructions`).
//! Every figure goes to the host by RPC (the `costs` interface, at the
//! put-port in bits 0..48 of the argument), never through the console.
//!
//! Each figure is the whole board's count between two readings taken around
//! a batch of repetitions (other boards' work is theirs): a board runs nothing
//! else meanwhile, so it is what one operation costs that board, the nucleus,
//! its driver and this program together. Of several batches the median
//! counts (see `Batches`).
//!
//! Mode in bits 56..64 of the argument:
//! * `NUCLEUS`: a null system call (`time`), a thread switch (two threads
//!   handing a turn over through futexes, per switch), and process creation
//!   (from before `process_create` to the first instruction of `nop`, which
//!   writes its readings into a segment shared with this process); started
//!   with the board's host capability to create `nop`;
//! * `SERVER`: serves `costs` `null` and `instructions` at the get-port in
//!   bits 0..48 (the other side of `RPC`);
//! * `RPC`: null calls to the `SERVER` of the capability given at exec; with
//!   `REMOTE` it is on another board, the calls go one at a time with a pause
//!   between them (see `null_rpc`), and around each batch the client asks the
//!   server for its board's count (the server side);
//! * `BULLET`: a 1 MiB file made on the Bullet server of the capability given
//!   at exec, read whole once (into the server's cache), then read whole again
//!   and again (the cached read);
//! * `GROUP_SEQUENCER`, `GROUP_SENDER`, `GROUP_MEMBER`: one member each of a
//!   group of `GROUP_MEMBERS`. The sequencer creates the group and announces
//!   its capability to the host (which starts the others with it); the sender
//!   sends a start message and then one message at a time, each once it has
//!   delivered the one before and paused (so that every board has handled
//!   one broadcast's frames before the next comes; its own pauses are left
//!   out of its count); every member counts batches of deliveries from its
//!   delivery of the start message on.
//!
//! Exits 0 once its figures are reported, 1 if anything failed (and says why
//! on the console, for people, and by `costs` `failed` to the host, which
//! waits for reports rather than asking the board about the process).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use amoeba_abi::syscall::MAP_WRITE;
use amoeba_abi::{Capability, GetPort, Port, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::bullet::Client as Bullet;
use amoeba_ipc::interfaces::{BS_COMMIT, Cost, costs};
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
pub const SERVER: u64 = 6;
/// Argument bit (with `RPC`): the server is on another board.
pub const REMOTE: u64 = 1 << 48;
/// Argument bit (with `RPC` and the group modes): pause between remote calls
/// and between broadcasts, for instruction counts (see `null_rpc`); without
/// it they go back to back, for wall-clock figures.
pub const PACED: u64 = 1 << 49;

/// Batches of each measurement, and repetitions in a batch.
const BATCHES: u64 = 20;
const NULL_CALLS: u64 = 200;
const SWITCH_ROUND_TRIPS: u64 = 50;
/// Pause before each batch of switches (see `context_switch`), µs.
const SWITCH_SETTLE_US: u64 = 100;
const CREATES: u64 = 5;
const RPC_CALLS: u64 = 200;
const RPC_WARM_UP: u64 = 10;
/// Pause before each remote call (see `null_rpc`), µs.
const REMOTE_PAUSE_US: u64 = 3_000;
const FILE_BYTES: usize = 1 << 20;
const CACHED_READS: u64 = 8;
const GROUP_MEMBERS: u32 = 3;
const BROADCASTS: u64 = 100;
/// The sender's pause before each message (see `broadcast`), µs. Short
/// enough that a member's acknowledgements, one per 32 deliveries, come
/// well within the sequencer's probe interval (125 ms): at 3 ms, 32
/// messages took about that long, and the probes a member was sent (and
/// answered) landed in the counts by the host's speed; at 1 ms one run in
/// eight still had the sequencer 0.82 % apart. Long enough that each board
/// has handled one broadcast's frames before the next come.
const BROADCAST_PAUSE_US: u64 = 500;
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

/// Costs of batches of one operation; the median batch is the figure: a
/// timer tick, an owner check or a frame that happens to land in a batch
/// (their number follows the host's timing, not the operation) moves a few
/// batches, not the median.
#[derive(Default)]
struct Batches(Vec<Cost>);

impl Batches {
    fn add(&mut self, cost: Cost) {
        self.0.push(cost);
    }

    fn median(mut self) -> Result<Cost, Status> {
        // Per repetition, compared without division.
        self.0.sort_by(|a, b| (a.instructions * b.repetitions).cmp(&(b.instructions * a.repetitions)));
        let middle = self.0.len() / 2;
        self.0.into_iter().nth(middle).ok_or(Status::SysErr)
    }
}

/// Runs `batch` `BATCHES` times (each returns its readings around
/// `repetitions`); the median batch.
fn median_of(
    operation: &str,
    repetitions: u64,
    mut batch: impl FnMut() -> Result<(Reading, Reading), Status>,
) -> Result<Cost, Status> {
    let mut batches = Batches::default();
    for _ in 0..BATCHES {
        let (start, end) = batch()?;
        batches.add(start.until(end, operation, repetitions));
    }
    batches.median()
}

/// Sends one figure to the host.
fn report(host: &Capability, cost: Cost) -> Result<(), Status> {
    costs::Client::new(Nucleus).report(host, &cost)
}

fn main(argument: u64) -> i32 {
    let host = Capability::for_port(Port::from_u64(argument & 0xffff_ffff_ffff));
    let result = match argument >> 56 {
        NUCLEUS => nucleus(&host),
        RPC => null_rpc(&host, argument & REMOTE != 0, argument & PACED != 0),
        BULLET => cached_read(&host),
        GROUP_SEQUENCER | GROUP_SENDER | GROUP_MEMBER => {
            broadcast(&host, argument >> 56, argument & PACED != 0)
        }
        SERVER => serve(GetPort(Port::from_u64(argument & 0xffff_ffff_ffff))),
        _ => Err(Status::ArgBad),
    };
    match result {
        Ok(()) => 0,
        Err(status) => {
            println!("insn-bench: mode {} failed: {status}", argument >> 56);
            // The host waits for reports rather than for the process (so
            // that it asks the boards nothing while they count): say so.
            if argument >> 56 != SERVER {
                let _ = costs::Client::new(Nucleus).failed(&host, i32::from(status) as u32);
            }
            1
        }
    }
}

fn nucleus(host: &Capability) -> Result<(), Status> {
    let null = median_of("null system call", NULL_CALLS, || {
        let start = Reading::now();
        for _ in 0..NULL_CALLS {
            core::hint::black_box(sys::time());
        }
        Ok((start, Reading::now()))
    })?;
    report(host, null)?;
    report(host, context_switch()?)?;
    report(host, process_create()?)
}

const MAIN: u32 = 0;
const PARTNER: u32 = 1;

/// Two threads hand a turn word back and forth through futexes; the cost of
/// one switch (the wake and wait calls included).
fn context_switch() -> Result<Cost, Status> {
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
    let cost = median_of("context switch", 2 * SWITCH_ROUND_TRIPS, || {
        // Each batch from the same start: the partner blocked in its wait.
        // A wake-up takes the processor at once, so in turn one thread
        // blocks and the other is preempted at its wake; a tick can swap
        // their roles, and the two ways cost different amounts (a wake-up
        // looks for its waiter from the lowest thread id up). The pause
        // lets the partner run into its wait.
        time::sleep_us(SWITCH_SETTLE_US);
        let start = Reading::now();
        hand_over(SWITCH_ROUND_TRIPS);
        Ok((start, Reading::now()))
    });
    stop.store(true, Ordering::Release);
    turn.store(PARTNER, Ordering::Release);
    let _ = sys::futex_wake(&turn, 1);
    partner.join();
    cost
}

/// From before `process_create` to `nop`'s first readings, the median of `CREATES`.
fn process_create() -> Result<Cost, Status> {
    let segment = Segment::create(4096)?;
    let shared = segment.map(SHARED, true)?;
    let host = amoeba_rt::env::capability(amoeba_abi::syscall::HOST_CAPABILITY_NAME);
    let mut batches = Batches::default();
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
        batches.add(start.until(Reading { instructions, ticks }, "process creation", 1));
    }
    batches.median()
}

/// Serves `costs` `null` and `instructions` for `RPC` clients.
struct Server {
    port: Port,
}

impl Objects for Server {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, _: u32) -> Option<amoeba_abi::Check> {
        None
    }
}

impl costs::Server for Server {
    fn report(&mut self, _: &Call<'_>, _: Cost) -> Result<(), Status> {
        Err(Status::ComBad)
    }
    fn announce(&mut self, _: &Call<'_>, _: &[u8]) -> Result<(), Status> {
        Err(Status::ComBad)
    }
    fn null(&mut self, _: &Call<'_>) -> Result<(), Status> {
        Ok(())
    }
    fn instructions(&mut self, _: &Call<'_>) -> Result<u64, Status> {
        Ok(u64::from(time::instructions()))
    }
    fn failed(&mut self, _: &Call<'_>, _: u32) -> Result<(), Status> {
        Err(Status::ComBad)
    }
}

fn serve(get: GetPort) -> Result<(), Status> {
    let mut server = Server { port: get.put_port() };
    Err(amoeba_rt::rpc::serve(&get, 64, |header, buf| costs::dispatch(&mut server, header, buf)))
}

/// Null calls to the server of the capability given at exec.
///
/// Remote calls, `paced`, go one at a time with a pause between them
/// (`REMOTE_PAUSE_US`): the server's board has then handled the client's
/// acknowledgement of one reply before the next request comes, so every
/// frame is handled on its own. Back to back, whether the acknowledgement
/// and the next request reach the server's board in one interrupt or in two
/// followed the host's timing, and moved the server's count by 1-3 % from
/// run to run. The client's figure is its whole batch, pauses included,
/// less what as many pauses cost alone (measured first): the client's board
/// sends its acknowledgement of a reply either before the caller reads its
/// counter or during the pause after, as the threads happen to run, so a
/// reading around each call counted it in about 70 % of the calls, a share
/// that moved from run to run. The figure is what one null RPC costs each
/// board when it is not overlapped with the next.
fn null_rpc(host: &Capability, remote: bool, paced: bool) -> Result<(), Status> {
    let service = exec_capability().ok_or(Status::ArgBad)?;
    let mut client = costs::Client::new(Nucleus);
    // Locates the server and warms every path up.
    for _ in 0..RPC_WARM_UP {
        client.null(&service)?;
    }
    let name = if remote { "remote null RPC, client board" } else { "local null RPC" };
    // What one pause costs alone, to take out of the paced batches.
    let pause = (remote && paced)
        .then(|| {
            median_of("pause", RPC_CALLS, || {
                let start = Reading::now();
                for _ in 0..RPC_CALLS {
                    time::sleep_us(REMOTE_PAUSE_US);
                }
                Ok((start, Reading::now()))
            })
        })
        .transpose()?;
    let (mut client_side, mut server_side) = (Batches::default(), Batches::default());
    for _ in 0..BATCHES {
        let server_start = client.instructions(&service)?;
        let start = Reading::now();
        let cost = match &pause {
            Some(pause) => {
                for _ in 0..RPC_CALLS {
                    time::sleep_us(REMOTE_PAUSE_US);
                    client.null(&service)?;
                }
                // The last call's acknowledgement is sent by now.
                time::sleep_us(REMOTE_PAUSE_US);
                let mut cost = start.until(Reading::now(), name, RPC_CALLS);
                let pauses = RPC_CALLS + 1;
                cost.instructions =
                    cost.instructions.saturating_sub(pause.instructions * pauses / pause.repetitions);
                cost.ticks = cost.ticks.saturating_sub(pause.ticks * pauses / pause.repetitions);
                cost
            }
            None => {
                for _ in 0..RPC_CALLS {
                    client.null(&service)?;
                }
                start.until(Reading::now(), name, RPC_CALLS)
            }
        };
        let server_end = client.instructions(&service)?;
        client_side.add(cost);
        // From the server's reading in one call to its reading in the next:
        // the calls between, and one call's worth of the two that read.
        let server = Cost {
            operation: String::from("remote null RPC, server board"),
            repetitions: RPC_CALLS + 1,
            instructions: u64::from((server_end as u32).wrapping_sub(server_start as u32)),
            ticks: 0,
            ticks_per_second: 0,
        };
        server_side.add(server);
    }
    report(host, client_side.median()?)?;
    if remote {
        report(host, server_side.median()?)?;
    }
    Ok(())
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
    let mut batches = Batches::default();
    for _ in 0..CACHED_READS {
        let start = Reading::now();
        read_whole(&mut bullet)?;
        batches.add(start.until(Reading::now(), "Bullet cached 1 MiB read", 1));
    }
    let cost = batches.median()?;
    let _ = amoeba_ipc::interfaces::standard::Client::new(Nucleus).destroy(&file);
    report(host, cost)
}

const KIND_START: u8 = b'S';
const KIND_MESSAGE: u8 = b'M';

/// One member of the broadcast measurement (see the module's notes).
fn broadcast(host: &Capability, role: u64, paced: bool) -> Result<(), Status> {
    let group = if role == GROUP_SEQUENCER {
        let (group, capability) = Group::create(GetPort(Port::from_u64(GROUP_GET_SEED)), 0)?;
        costs::Client::new(Nucleus).announce(host, &capability.encode())?;
        group
    } else {
        Group::join_given()?
    };
    wait_for_members(&group, |members| members >= GROUP_MEMBERS)?;
    let name = match role {
        GROUP_SEQUENCER => "broadcast at the sequencer",
        GROUP_SENDER => "broadcast at the sender",
        _ => "broadcast at a member",
    };
    // Batches of `BROADCASTS` deliveries from that of the start message on.
    // The sender sends each message once it has delivered the one before, so
    // that every board handles one broadcast at a time.
    let sender = role == GROUP_SENDER;
    let mut message = [0u8; MESSAGE_BYTES];
    if sender {
        message[0] = KIND_START;
        group.send(&message)?;
        message[0] = KIND_MESSAGE;
    }
    let mut buf = [0u8; MESSAGE_BYTES];
    let mut start = None;
    let mut delivered = 0;
    let mut batches = Batches::default();
    // The sender's pauses, left out of its own batches.
    let (mut paused_instructions, mut paused_ticks) = (0u64, 0u64);
    while delivered < BATCHES * BROADCASTS {
        if sender && start.is_some() && paced {
            let before = Reading::now();
            time::sleep_us(BROADCAST_PAUSE_US);
            let pause = before.until(Reading::now(), name, 1);
            paused_instructions += pause.instructions;
            paused_ticks += pause.ticks;
        }
        if sender && start.is_some() {
            group.send(&message)?;
        }
        let got = group.receive(&mut buf)?;
        match (got.len, buf[0], start) {
            (MESSAGE_BYTES, KIND_START, _) => start = Some(Reading::now()),
            (MESSAGE_BYTES, KIND_MESSAGE, Some(batch_start)) => {
                delivered += 1;
                if delivered % BROADCASTS == 0 {
                    let now = Reading::now();
                    let mut batch = batch_start.until(now, name, BROADCASTS);
                    batch.instructions = batch.instructions.saturating_sub(paused_instructions);
                    batch.ticks = batch.ticks.saturating_sub(paused_ticks);
                    (paused_instructions, paused_ticks) = (0, 0);
                    batches.add(batch);
                    start = Some(now);
                }
            }
            _ => {}
        }
    }
    let cost = batches.median()?;
    report(host, cost)?;
    if role == GROUP_SEQUENCER {
        // The others leave first, so that the group ends without a hand-over.
        wait_for_members(&group, |members| members <= 1)?;
    }
    group.leave()
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
