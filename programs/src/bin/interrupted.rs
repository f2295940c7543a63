//! `interrupted`: signals that cut blocking calls short must leave nothing
//! behind. The argument's top byte picks a scenario, its low 48 bits are a
//! get-port where one is needed; each scenario prints `interrupted: ...`
//! lines for `tests/tests/interrupted.rs` and exits 0 when its own checks
//! pass, 1 otherwise.
//!
//! - `TRANS` (exec capability: a `counter-server` counter): a thread blocked
//!   in a slow increment is signalled. Its `trans` must end `Interrupted`,
//!   the late reply must not land in the buffers the call was given, and the
//!   server must have run the increment at most once.
//! - `RECEIVE`: a thread blocked in a group receive is signalled, retries
//!   (the runtime does), and must still get the next message.
//! - `CREATE`: creates a group, prints its capability and every membership
//!   change (`interrupted: members N`).
//! - `JOIN` (exec capability: the group's): a thread blocked in a join is
//!   signalled; the runtime retries; the group must have one new member.
//!
//! What the tests check is also reported to the starter (`BOOTSTRAP`) as
//! figures: `caller memory untouched` and `count` (TRANS), `got the message`
//! (RECEIVE), the group's size at every membership change as `members`
//! (CREATE, whose group capability is announced), `joined members` (JOIN).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use amoeba_abi::syscall::{Syscall, result};
use amoeba_abi::{Capability, GetPort, HEADER_LEN, Header, Port, Status};
use amoeba_ipc::interfaces::starter::{Announcement, Value};
use amoeba_rt::group::{EntryKind, Group};
use amoeba_rt::sys::{self, syscall};
use amoeba_rt::{exec_capability, signal, thread, time};
use amoeba_rt::{println, starter};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};

amoeba_rt::entry!(main);

pub const TRANS: u64 = 1;
pub const RECEIVE: u64 = 2;
pub const CREATE: u64 = 3;
pub const JOIN: u64 = 4;

/// The signal the scenarios raise (caught).
const SIGNAL: u32 = 5;
/// `counter-server` commands.
const COUNTER_READ: u32 = 4001;
const COUNTER_SLOW_INCREMENT: u32 = 4002;
/// How long `counter-server` takes for a slow increment, plus a margin.
const SLOW_INCREMENT_US: u64 = 3_000_000;
const MARGIN_US: u64 = 1_500_000;
/// What the buffers of the interrupted `trans` hold until someone writes them.
const CANARY: u8 = 0xa5;
const REPLY_CAPACITY: usize = 64;

static HANDLED: AtomicU32 = AtomicU32::new(0);

fn on_signal(_signal: u32) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

fn main(argument: u64) -> i32 {
    if let Err(status) = signal::catch(SIGNAL, on_signal) {
        println!("interrupted: cannot catch signal {SIGNAL}: {status}");
        return 1;
    }
    let get_port = GetPort(Port::from_u64(argument & 0xffff_ffff_ffff));
    let passed = match argument >> 56 {
        TRANS => trans_scenario(),
        RECEIVE => receive_scenario(get_port),
        CREATE => create_scenario(get_port),
        JOIN => join_scenario(),
        other => {
            println!("interrupted: unknown scenario {other}");
            false
        }
    };
    if passed { 0 } else { 1 }
}

/// Waits up to `micros` for `condition`.
fn wait_until(micros: u64, condition: impl Fn() -> bool) -> bool {
    let deadline = time::now_us() + micros;
    while !condition() {
        if time::now_us() >= deadline {
            return false;
        }
        time::sleep_us(10_000);
    }
    true
}

/// Raises the signal in `thread_id` once it has been blocked for `after_us`,
/// and waits until the handler ran.
fn interrupt(thread_id: u32, after_us: u64) -> bool {
    time::sleep_us(after_us);
    if let Err(status) = signal::raise(thread_id, SIGNAL) {
        println!("interrupted: raising the signal failed: {status}");
        return false;
    }
    let handled = wait_until(5_000_000, || HANDLED.load(Ordering::SeqCst) > 0);
    if !handled {
        println!("interrupted: the signal handler did not run");
    }
    handled
}

// --------------------------------------------------------------- trans

/// The reply header and buffer of the interrupted call: kernel-written
/// memory that outlives the call, so a late write is visible.
struct ReplyBuffers {
    header: [u8; HEADER_LEN],
    reply: [u8; REPLY_CAPACITY],
}

static mut BUFFERS: ReplyBuffers =
    ReplyBuffers { header: [CANARY; HEADER_LEN], reply: [CANARY; REPLY_CAPACITY] };
static TRANS_RESULT: AtomicI64 = AtomicI64::new(0);
static TRANS_DONE: AtomicBool = AtomicBool::new(false);

fn buffers_untouched() -> bool {
    // SAFETY: read by value once the calling thread has ended; only the
    // nucleus could still write it, and volatile reads see that.
    let buffers = unsafe { core::ptr::read_volatile(&raw const BUFFERS) };
    buffers.header.iter().chain(buffers.reply.iter()).all(|&byte| byte == CANARY)
}

fn slow_increment(capability: Capability) {
    let request = Header::request(&capability, COUNTER_SLOW_INCREMENT).encode();
    let buffers = &raw mut BUFFERS;
    // SAFETY: the nucleus reads the request header and may write the reply
    // header and at most REPLY_CAPACITY bytes into `BUFFERS`, which nothing
    // else touches while the call runs.
    let raw = unsafe {
        syscall(
            Syscall::Trans,
            [
                request.as_ptr() as u64,
                0,
                0,
                (&raw mut (*buffers).header) as u64,
                (&raw mut (*buffers).reply) as u64,
                REPLY_CAPACITY as u64,
            ],
        )
    };
    TRANS_RESULT.store(raw, Ordering::SeqCst);
    TRANS_DONE.store(true, Ordering::SeqCst);
}

fn trans_scenario() -> bool {
    let Some(capability) = exec_capability() else {
        println!("interrupted: trans needs the counter's capability");
        return false;
    };
    let caller = thread::spawn(move || slow_increment(capability));
    // The server is well into its 3 s increment when the signal comes.
    if !interrupt(caller.thread_id(), 500_000) {
        return false;
    }
    let ended = wait_until(1_000_000, || TRANS_DONE.load(Ordering::SeqCst));
    caller.join();
    let mut passed = true;
    let status = result(TRANS_RESULT.load(Ordering::SeqCst));
    if !ended || status != Err(Status::Interrupted) {
        println!("interrupted: trans: the signalled call ended with {status:?}, not Interrupted");
        passed = false;
    }
    // By now the server has answered the increment; nothing may land in
    // the buffers of the call that was given up.
    time::sleep_us(SLOW_INCREMENT_US + MARGIN_US);
    let untouched = buffers_untouched();
    let _ = starter::report("caller memory untouched", Value::Flag(untouched));
    if untouched {
        println!("interrupted: trans: caller memory untouched");
    } else {
        println!("interrupted: trans: the late reply was written into the caller's memory");
        passed = false;
    }
    let mut reply = [0u8; 8];
    match sys::trans(&Header::request(&capability, COUNTER_READ), &[], &mut reply) {
        Ok((header, _)) => {
            println!("interrupted: trans: count {}", header.extra);
            let _ = starter::report("count", Value::Unsigned(header.extra.into()));
        }
        Err(status) => {
            println!("interrupted: trans: reading the count failed: {status}");
            passed = false;
        }
    }
    passed
}

// --------------------------------------------------------------- groups

static RECEIVED: AtomicBool = AtomicBool::new(false);

const MESSAGE: &[u8] = b"sent after the signal";

fn receive_scenario(get_port: GetPort) -> bool {
    let group: &'static Group = match Group::create(get_port, 0) {
        Ok((group, _)) => Box::leak(Box::new(group)),
        Err(status) => {
            println!("interrupted: cannot create the group: {status}");
            return false;
        }
    };
    let receiver = thread::spawn(move || {
        let mut buf = [0u8; 64];
        match group.receive(&mut buf) {
            Ok(got) if &buf[..got.len] == MESSAGE => {
                RECEIVED.store(true, Ordering::SeqCst);
                println!("interrupted: receive: got the message");
                let _ = starter::report("got the message", Value::Flag(true));
                true
            }
            Ok(got) => {
                println!("interrupted: receive: got {:?}", &buf[..got.len]);
                false
            }
            Err(status) => {
                println!("interrupted: receive failed: {status}");
                false
            }
        }
    });
    if !interrupt(receiver.thread_id(), 300_000) {
        return false;
    }
    // Let the receiver go back into its (retried) receive.
    time::sleep_us(300_000);
    if let Err(status) = group.send(MESSAGE) {
        println!("interrupted: send failed: {status}");
        return false;
    }
    if !wait_until(3_000_000, || RECEIVED.load(Ordering::SeqCst)) {
        println!("interrupted: receive: the message sent after the signal never arrived");
        return false;
    }
    receiver.join()
}

fn create_scenario(get_port: GetPort) -> bool {
    let (group, capability) = match Group::create(get_port, 0) {
        Ok(created) => created,
        Err(status) => {
            println!("interrupted: cannot create the group: {status}");
            return false;
        }
    };
    println!("interrupted: capability {capability}");
    let _ = starter::announce(&Announcement::Group(capability));
    let mut buf = [0u8; 64];
    loop {
        match group.receive_entry(&mut buf) {
            Ok(entry) if matches!(entry.kind, EntryKind::MemberJoined | EntryKind::MemberLeft) => {
                println!("interrupted: members {}", entry.members);
                let _ = starter::report("members", Value::Unsigned(entry.members.into()));
            }
            Ok(_) => {}
            Err(status) => {
                println!("interrupted: receive failed: {status}");
                return false;
            }
        }
    }
}

fn join_scenario() -> bool {
    let joiner = thread::spawn(|| match Group::join_given() {
        Ok(group) => Some(group),
        Err(status) => {
            println!("interrupted: join failed: {status}");
            None
        }
    });
    // The switch delays every frame, so the join is still under way.
    if !interrupt(joiner.thread_id(), 100_000) {
        return false;
    }
    let Some(group) = joiner.join() else { return false };
    // A second, ghost member would join at about the same time.
    time::sleep_us(2_000_000);
    match group.info() {
        Ok(info) => {
            println!("interrupted: joined; members {}", info.members);
            let _ = starter::report("joined members", Value::Unsigned(info.members.into()));
            true
        }
        Err(status) => {
            println!("interrupted: group info failed: {status}");
            false
        }
    }
}
