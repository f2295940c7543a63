//! `hostile`: calls every system call with bad arguments — wild pointers
//! (null, 0x8, kernel addresses, unmapped ranges, ranges that start mapped
//! and run past the end of a mapping, wrapping ranges), huge lengths,
//! misaligned futex words, forged capabilities and ones with too few rights,
//! out-of-range signal numbers, bad flags and operations, thread entries
//! outside code — and checks that each one fails with an error instead of
//! succeeding or crashing. Positive controls (`control: ...`) show the calls
//! work with good arguments.
//!
//! Prints `hostile FAILED <check> ...` for each failed check, then
//! `hostile: <n> checks, <f> failed` (the only line that starts with
//! `hostile: `), reports both counts to its starter (`checks`, `failed`);
//! exits 0 only if none failed.
//!
//! With argument 1 it is the long-lived child the process checks need: it
//! sleeps until destroyed.
//!
//! It must be started with the board's host capability restricted to the
//! create right as `HOST` (for its child) and restricted to the info right as
//! `HOSTINFO` (to show that too few rights are refused).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use amoeba_abi::syscall::HOST_CAPABILITY_NAME;
use amoeba_abi::syscall::{
    DescriptorSegment, EXIT_DESTROYED, MAP_EXECUTE, MAP_WRITE, PROCESS_DESTROY, PROCESS_SIGNAL_BASE,
    PROCESS_STUN, RIGHT_INSPECT, SCHED_PREEMPTIVE, Syscall,
};
use amoeba_abi::{Capability, GetPort, HEADER_LEN, Header, Port, Rights, Status};
use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::process::{Process, encode_descriptor};
use amoeba_rt::sync::Mutex;
use amoeba_rt::{println, starter};
use amoeba_rt::{signal, sys, thread, time};
use core::sync::atomic::{AtomicU32, Ordering};

amoeba_rt::entry!(main);

/// The argument that makes this program the sleeping child.
const CHILD: u64 = 1;

const NULL: u64 = 0;
const LOW: u64 = 0x8;
const KERNEL: u64 = 0xffff_0000_4020_0000;
const UNMAPPED: u64 = 0x5555_0000;
/// The first address past user space (48-bit).
const BEYOND: u64 = 1 << 48;
/// A range starting here wraps around the address space.
const WRAPS: u64 = u64::MAX - 7;
const HUGE: [u64; 2] = [u64::MAX, 1 << 62];

/// A page of this process's own (a segment it maps), the only memory the
/// nucleus is asked to write wrongly; the next page is unmapped.
const PROBE: u64 = 0x3000_0000;
const PAGE: u64 = 4096;
const PROBE_END: u64 = PROBE + PAGE;
/// Free addresses for mappings (one per check, so a wrong success cannot
/// mask a later check).
const FREE: u64 = 0x3100_0000;
/// Where a read-only mapping of the probe segment goes (positive control).
const READ_ONLY_MAP: u64 = 0x3200_0000;
/// The heap and the program as the nucleus maps them.
const HEAP: u64 = 0x1000_0000;
const TEXT: u64 = 0x0040_0000;

const CANARY: [u8; 16] = *b"hostile-canary!!";
const SIGNAL: u32 = 10;

/// Read-only memory (rodata) that is not code.
#[repr(C, align(16))]
struct Aligned([u8; 64]);
static READ_ONLY: Aligned = Aligned([0x5a; 64]);

fn rodata() -> u64 {
    READ_ONLY.0.as_ptr() as usize as u64
}

/// A valid code address, for thread entries and signal handlers.
extern "C" fn helper_entry(_argument: u64) -> ! {
    sys::thread_exit(0)
}

fn code() -> u64 {
    helper_entry as extern "C" fn(u64) -> ! as usize as u64
}

fn addr<T>(value: &T) -> u64 {
    value as *const T as usize as u64
}

/// A raw system call with hostile arguments.
fn call(syscall: Syscall, args: [u64; 6]) -> i64 {
    // SAFETY: the pointers are null, in the kernel, unmapped, read-only, or
    // in the probe page and local buffers that only this test touches (and
    // only through raw pointers or after the call); if the nucleus wrongly
    // accepts one, the damage stays there and the check reports it.
    unsafe { sys::syscall(syscall, args) }
}

struct Report {
    checks: u32,
    failed: u32,
}

impl Report {
    /// The call must have failed.
    fn error(&mut self, name: &str, raw: i64) {
        self.checks += 1;
        if raw >= 0 {
            self.failed += 1;
            println!("hostile FAILED {name}: succeeded with {raw}");
        }
    }

    /// A condition that must hold.
    fn ok(&mut self, name: &str, ok: bool) {
        self.checks += 1;
        if !ok {
            self.failed += 1;
            println!("hostile FAILED {name}");
        }
    }

    /// A call that must succeed.
    fn success<T>(&mut self, name: &str, result: Result<T, Status>) -> Option<T> {
        self.checks += 1;
        match result {
            Ok(value) => Some(value),
            Err(status) => {
                self.failed += 1;
                println!("hostile FAILED {name}: {status}");
                None
            }
        }
    }
}

fn main(argument: u64) -> i32 {
    if argument == CHILD {
        loop {
            time::sleep_us(1_000_000);
        }
    }
    let mut report = Report { checks: 0, failed: 0 };
    let Some(setup) = setup(&mut report) else {
        println!("hostile: setup failed, {} checks, {} failed", report.checks, report.failed);
        return 1;
    };
    console(&mut report);
    threads(&mut report);
    futexes(&mut report);
    signals(&mut report, &setup);
    segments(&mut report, &setup);
    memory_info(&mut report);
    processes(&mut report, &setup);
    restrict(&mut report, &setup);
    rpc(&mut report);
    unknown_calls(&mut report);
    controls(&mut report);
    setup.finish(&mut report);
    println!("hostile: {} checks, {} failed", report.checks, report.failed);
    let _ = starter::report("checks", Value::Unsigned(report.checks.into()));
    let _ = starter::report("failed", Value::Unsigned(report.failed.into()));
    if report.failed == 0 { 0 } else { 1 }
}

/// What the checks use: the probe segment and capabilities for it, a
/// thread to signal, a child process.
struct Setup {
    /// The board's host capability (create right only).
    host: Capability,
    segment: Capability,
    read_only: Capability,
    no_rights: Capability,
    forged: Capability,
    forged_port: Capability,
    helper: Helper,
    child: Process,
    child_inspect: Capability,
    child_no_rights: Capability,
}

/// A thread that sleeps on a futex until told to end.
struct Helper {
    word: alloc::sync::Arc<AtomicU32>,
    handle: thread::JoinHandle<()>,
}

static CAUGHT: AtomicU32 = AtomicU32::new(0);

fn on_signal(signal: u32) {
    if signal == SIGNAL {
        CAUGHT.fetch_add(1, Ordering::SeqCst);
    }
}

fn setup(report: &mut Report) -> Option<Setup> {
    let segment = report.success("control: segment_create", sys::segment_create(PAGE))?;
    report.success("control: segment_map", sys::segment_map(&segment, PROBE, MAP_WRITE))?;
    // SAFETY: the probe page was just mapped writable, and only this test
    // touches it, through raw pointers.
    unsafe { core::ptr::write_volatile(PROBE as usize as *mut [u8; 16], CANARY) };
    let read_only =
        report.success("control: restrict to read", sys::restrict(&segment, Rights::READ.bits()))?;
    report.ok("control: restricted rights", read_only.rights == Rights::READ);
    let no_rights = report.success("control: restrict to nothing", sys::restrict(&segment, 0))?;
    let mut forged = segment;
    forged.check.0[0] ^= 0x5a;
    let mut forged_port = segment;
    forged_port.port = Port([0x13, 0x37, 0x13, 0x37, 0x13, 0x37]);

    let word = alloc::sync::Arc::new(AtomicU32::new(0));
    let handle = {
        let word = word.clone();
        thread::spawn(move || {
            while word.load(Ordering::SeqCst) == 0 {
                let _ = sys::futex_wait(&word, 0);
            }
        })
    };
    let helper = Helper { word, handle };

    // Starting processes takes the board's host capability (the test gives
    // it as HOST, restricted to the create right).
    let host = report.success(
        "control: started with a host capability",
        amoeba_rt::env::capability(HOST_CAPABILITY_NAME).ok_or(Status::NotFound),
    )?;
    let child = report.success(
        "control: process_create",
        amoeba_rt::process::Builder::new("hostile").argument(CHILD).spawn(),
    )?;
    let child_inspect =
        report.success("control: restrict a process capability", sys::restrict(&child.cap, RIGHT_INSPECT))?;
    let child_no_rights =
        report.success("control: restrict a process capability to nothing", sys::restrict(&child.cap, 0))?;
    Some(Setup {
        host,
        segment,
        read_only,
        no_rights,
        forged,
        forged_port,
        helper,
        child,
        child_inspect,
        child_no_rights,
    })
}

impl Setup {
    /// Ends the helper thread and the child, with the last controls.
    fn finish(self, report: &mut Report) {
        self.helper.word.store(1, Ordering::SeqCst);
        let _ = sys::futex_wake(&self.helper.word, 1);
        self.helper.handle.join();
        report.ok("control: a caught signal ran its handler once", CAUGHT.load(Ordering::SeqCst) == 1);
        report.success("control: process_control destroy", self.child.destroy());
        let status = self.child.wait();
        report.ok("control: process_wait after destroy", status == Ok(EXIT_DESTROYED));
        // SAFETY: the probe page is still mapped; only this test reads it.
        let canary = unsafe { core::ptr::read_volatile(PROBE as usize as *const [u8; 16]) };
        report.ok("control: the probe page is intact", canary == CANARY);
    }
}

fn console(report: &mut Report) {
    let text = b"hostile console check\n";
    report.ok("control: console_write", sys::console_write(text) == Ok(text.len()));
    let c = Syscall::ConsoleWrite;
    report.error("console_write null", call(c, [NULL, 16, 0, 0, 0, 0]));
    report.error("console_write 0x8", call(c, [LOW, 16, 0, 0, 0, 0]));
    report.error("console_write kernel address", call(c, [KERNEL, 16, 0, 0, 0, 0]));
    report.error("console_write unmapped", call(c, [UNMAPPED, 16, 0, 0, 0, 0]));
    report.error("console_write beyond user space", call(c, [BEYOND, 16, 0, 0, 0, 0]));
    report.error("console_write wrapping range", call(c, [WRAPS, 16, 0, 0, 0, 0]));
    report.error("console_write past the end of a mapping", call(c, [PROBE_END - 8, 16, 0, 0, 0, 0]));
    for len in HUGE {
        report.error("console_write huge length", call(c, [PROBE, len, 0, 0, 0, 0]));
    }
}

fn threads(report: &mut Report) {
    let c = Syscall::ThreadCreate;
    let stack = PROBE_END;
    report.error("thread_create entry null", call(c, [NULL, stack, 0, 0, 0, 0]));
    report.error("thread_create entry in the kernel", call(c, [KERNEL, stack, 0, 0, 0, 0]));
    report.error("thread_create entry unmapped", call(c, [UNMAPPED, stack, 0, 0, 0, 0]));
    report.error("thread_create entry in data", call(c, [PROBE, stack, 0, 0, 0, 0]));
    report.error("thread_create entry in rodata", call(c, [rodata(), stack, 0, 0, 0, 0]));
    report.error("thread_create entry in the heap", call(c, [HEAP, stack, 0, 0, 0, 0]));
    report.error("thread_create entry misaligned", call(c, [code() + 2, stack, 0, 0, 0, 0]));
    report.error("thread_create stack null", call(c, [code(), NULL, 0, 0, 0, 0]));
    report.error("thread_create stack in the kernel", call(c, [code(), KERNEL, 0, 0, 0, 0]));
    report.error("thread_create stack unmapped", call(c, [code(), UNMAPPED, 0, 0, 0, 0]));
    report.error("thread_create stack read-only", call(c, [code(), rodata() + 64, 0, 0, 0, 0]));
    let j = Syscall::ThreadJoin;
    report.error("thread_join nonexistent thread", call(j, [0xffff_fff0, 0, 0, 0, 0, 0]));
    report.error("thread_join u64::MAX", call(j, [u64::MAX, 0, 0, 0, 0, 0]));
    report.error("thread_join a kernel thread (0)", call(j, [0, 0, 0, 0, 0, 0]));
    let value = thread::spawn(|| 42u32).join();
    report.ok("control: thread spawn and join", value == 42);
}

fn futexes(report: &mut Report) {
    let w = Syscall::FutexWait;
    // The probe page holds zeros past the canary: waiting for 0 there would
    // block if the nucleus took the address.
    report.error("futex_wait null", call(w, [NULL, 0, 0, 0, 0, 0]));
    report.error("futex_wait 0x8", call(w, [LOW, 0, 0, 0, 0, 0]));
    report.error("futex_wait kernel address", call(w, [KERNEL, 0, 0, 0, 0, 0]));
    report.error("futex_wait unmapped", call(w, [UNMAPPED, 0, 0, 0, 0, 0]));
    report.error("futex_wait misaligned", call(w, [PROBE + 17, 0, 0, 0, 0, 0]));
    report.error("futex_wait straddling the end of a mapping", call(w, [PROBE_END - 2, 0, 0, 0, 0, 0]));
    report.error("futex_wait wrapping", call(w, [WRAPS + 4, 0, 0, 0, 0, 0]));
    let k = Syscall::FutexWake;
    report.error("futex_wake null", call(k, [NULL, 1, 0, 0, 0, 0]));
    report.error("futex_wake kernel address", call(k, [KERNEL, 1, 0, 0, 0, 0]));
    report.error("futex_wake unmapped", call(k, [UNMAPPED, 1, 0, 0, 0, 0]));
    report.error("futex_wake misaligned", call(k, [PROBE + 18, u64::MAX, 0, 0, 0, 0]));
    let word = AtomicU32::new(5);
    report.ok("control: futex_wait on a changed word", sys::futex_wait(&word, 4) == Err(Status::NotNow));
    report.ok("control: futex_wake", sys::futex_wake(&word, 1) == Ok(0));
    let mutex = Mutex::new(1u32);
    *mutex.lock() += 1;
    report.ok("control: mutex", *mutex.lock() == 2);
}

fn signals(report: &mut Report, setup: &Setup) {
    // Caught first, so that a nucleus that truncated a bad signal number to
    // SIGNAL below shows as a handler count of 2, not as a dead process.
    report.success("control: signal catch", signal::catch(SIGNAL, on_signal));
    let a = Syscall::SignalAction;
    report.error("signal_action signal 0", call(a, [0, sys::SIGNAL_IGNORE, 0, 0, 0, 0]));
    report.error("signal_action signal 32", call(a, [32, sys::SIGNAL_IGNORE, 0, 0, 0, 0]));
    report.error("signal_action signal u64::MAX", call(a, [u64::MAX, sys::SIGNAL_IGNORE, 0, 0, 0, 0]));
    report.error(
        "signal_action signal with high bits",
        call(a, [(1 << 32) | 5, sys::SIGNAL_IGNORE, 0, 0, 0, 0]),
    );
    report.error("signal_action bad action 3", call(a, [5, 3, 0, 0, 0, 0]));
    report.error("signal_action bad action u64::MAX", call(a, [5, u64::MAX, 0, 0, 0, 0]));
    report.error("signal_action catch with a null handler", call(a, [5, sys::SIGNAL_CATCH, NULL, 0, 0, 0]));
    report
        .error("signal_action catch with a kernel handler", call(a, [5, sys::SIGNAL_CATCH, KERNEL, 0, 0, 0]));
    report.error("signal_action catch with a data handler", call(a, [5, sys::SIGNAL_CATCH, PROBE, 0, 0, 0]));
    report.error(
        "signal_action catch with an unmapped handler",
        call(a, [5, sys::SIGNAL_CATCH, UNMAPPED, 0, 0, 0]),
    );
    report.error(
        "signal_action catch with a misaligned handler",
        call(a, [5, sys::SIGNAL_CATCH, code() + 1, 0, 0, 0]),
    );
    let r = Syscall::SignalRaise;
    let helper = setup.helper.handle.thread_id() as u64;
    report.error("signal_raise nonexistent thread", call(r, [0xffff_fff0, SIGNAL as u64, 0, 0, 0, 0]));
    report.error("signal_raise thread u64::MAX", call(r, [u64::MAX, SIGNAL as u64, 0, 0, 0, 0]));
    report.error("signal_raise a kernel thread (0)", call(r, [0, SIGNAL as u64, 0, 0, 0, 0]));
    report.error("signal_raise signal 0", call(r, [helper, 0, 0, 0, 0, 0]));
    report.error("signal_raise signal 32", call(r, [helper, 32, 0, 0, 0, 0]));
    report.error("signal_raise signal u64::MAX", call(r, [helper, u64::MAX, 0, 0, 0, 0]));
    report.error(
        "signal_raise signal with high bits",
        call(r, [helper, (1 << 32) | SIGNAL as u64, 0, 0, 0, 0]),
    );
    report.error("signal_return outside a handler", call(Syscall::SignalReturn, [0; 6]));
    // Positive control: the helper takes a caught signal (counted in `finish`).
    report.success("control: signal_raise", signal::raise(helper as u32, SIGNAL));
}

fn segments(report: &mut Report, setup: &Setup) {
    let mut out = [0u8; 16];
    let out_ptr = out.as_mut_ptr() as usize as u64;
    let c = Syscall::SegmentCreate;
    report.error("segment_create cap_out null", call(c, [PAGE, NULL, 0, 0, 0, 0]));
    report.error("segment_create cap_out kernel address", call(c, [PAGE, KERNEL, 0, 0, 0, 0]));
    report.error("segment_create cap_out unmapped", call(c, [PAGE, UNMAPPED, 0, 0, 0, 0]));
    report.error("segment_create cap_out read-only", call(c, [PAGE, rodata(), 0, 0, 0, 0]));
    report.error("segment_create cap_out in code", call(c, [PAGE, code(), 0, 0, 0, 0]));
    report.error(
        "segment_create cap_out past the end of a mapping",
        call(c, [PAGE, PROBE_END - 8, 0, 0, 0, 0]),
    );
    report.error("segment_create size 0", call(c, [0, out_ptr, 0, 0, 0, 0]));
    for size in HUGE {
        report.error("segment_create huge size", call(c, [size, out_ptr, 0, 0, 0, 0]));
    }

    let good = setup.segment.encode();
    let read_only = setup.read_only.encode();
    let no_rights = setup.no_rights.encode();
    let forged = setup.forged.encode();
    let forged_port = setup.forged_port.encode();
    let null_cap = Capability::NULL.encode();
    let process_cap = setup.child.cap.encode();
    let mut free = FREE;
    let mut next_free = || {
        free += 0x10_0000;
        free
    };

    let m = Syscall::SegmentMap;
    report.error("segment_map cap null", call(m, [NULL, next_free(), 0, 0, 0, 0]));
    report.error("segment_map cap kernel address", call(m, [KERNEL, next_free(), 0, 0, 0, 0]));
    report.error("segment_map cap unmapped", call(m, [UNMAPPED, next_free(), 0, 0, 0, 0]));
    report.error(
        "segment_map cap past the end of a mapping",
        call(m, [PROBE_END - 8, next_free(), 0, 0, 0, 0]),
    );
    report.error("segment_map forged check", call(m, [addr(&forged), next_free(), 0, 0, 0, 0]));
    report.error("segment_map forged port", call(m, [addr(&forged_port), next_free(), 0, 0, 0, 0]));
    report.error("segment_map null capability", call(m, [addr(&null_cap), next_free(), 0, 0, 0, 0]));
    report.error("segment_map a process capability", call(m, [addr(&process_cap), next_free(), 0, 0, 0, 0]));
    report.error("segment_map at address 0", call(m, [addr(&good), 0, 0, 0, 0, 0]));
    report.error("segment_map at a kernel address", call(m, [addr(&good), KERNEL & !0xfff, 0, 0, 0, 0]));
    report.error("segment_map at a misaligned address", call(m, [addr(&good), next_free() + 8, 0, 0, 0, 0]));
    report.error("segment_map over itself", call(m, [addr(&good), PROBE, 0, 0, 0, 0]));
    report.error("segment_map over the program text", call(m, [addr(&good), TEXT, 0, 0, 0, 0]));
    report.error("segment_map over the heap", call(m, [addr(&good), HEAP, 0, 0, 0, 0]));
    report.error("segment_map over the stack", call(m, [addr(&good), 0x7000_0000 - PAGE, 0, 0, 0, 0]));
    report.error("segment_map beyond user space", call(m, [addr(&good), BEYOND, 0, 0, 0, 0]));
    report.error("segment_map wrapping", call(m, [addr(&good), !0xfffu64, 0, 0, 0, 0]));
    report.error("segment_map bad flags 4", call(m, [addr(&good), next_free(), 4, 0, 0, 0]));
    report.error("segment_map bad flags u64::MAX", call(m, [addr(&good), next_free(), u64::MAX, 0, 0, 0]));
    report.error(
        "segment_map writable with a read-only capability",
        call(m, [addr(&read_only), next_free(), MAP_WRITE, 0, 0, 0]),
    );
    report.error(
        "segment_map executable with a read-only capability",
        call(m, [addr(&read_only), next_free(), MAP_WRITE | MAP_EXECUTE, 0, 0, 0]),
    );
    report.error(
        "segment_map with a no-rights capability",
        call(m, [addr(&no_rights), next_free(), 0, 0, 0, 0]),
    );
    // Positive control: a read-only mapping with the read-only capability.
    if report
        .success("control: read-only mapping", sys::segment_map(&setup.read_only, READ_ONLY_MAP, 0))
        .is_some()
    {
        // SAFETY: just mapped (readable); only read through raw pointers.
        let seen = unsafe { core::ptr::read_volatile(READ_ONLY_MAP as usize as *const [u8; 16]) };
        report.ok("control: read-only mapping shows the segment", seen == CANARY);
    }

    let u = Syscall::SegmentUnmap;
    report.error("segment_unmap address 0", call(u, [0, 0, 0, 0, 0, 0]));
    report.error("segment_unmap kernel address", call(u, [KERNEL, 0, 0, 0, 0, 0]));
    report.error("segment_unmap unmapped address", call(u, [UNMAPPED, 0, 0, 0, 0, 0]));
    report.error("segment_unmap inside a mapping", call(u, [PROBE + 8, 0, 0, 0, 0, 0]));
    report.error("segment_unmap u64::MAX", call(u, [u64::MAX, 0, 0, 0, 0, 0]));

    let mut buf = [0u8; 16];
    let buf_ptr = buf.as_mut_ptr() as usize as u64;
    for (call_number, what) in
        [(Syscall::SegmentRead, "segment_read"), (Syscall::SegmentWrite, "segment_write")]
    {
        let mut check = |name: &str, args: [u64; 6]| {
            let name = alloc::format!("{what} {name}");
            report.error(&name, call(call_number, args));
        };
        check("cap null", [NULL, 0, buf_ptr, 16, 0, 0]);
        check("cap kernel address", [KERNEL, 0, buf_ptr, 16, 0, 0]);
        check("forged check", [addr(&forged), 0, buf_ptr, 16, 0, 0]);
        check("forged port", [addr(&forged_port), 0, buf_ptr, 16, 0, 0]);
        check("a process capability", [addr(&process_cap), 0, buf_ptr, 16, 0, 0]);
        check("with a no-rights capability", [addr(&no_rights), 0, buf_ptr, 16, 0, 0]);
        check("buffer null", [addr(&good), 0, NULL, 16, 0, 0]);
        check("buffer 0x8", [addr(&good), 0, LOW, 16, 0, 0]);
        check("buffer kernel address", [addr(&good), 0, KERNEL, 16, 0, 0]);
        check("buffer unmapped", [addr(&good), 0, UNMAPPED, 16, 0, 0]);
        check("buffer wrapping", [addr(&good), 0, WRAPS, 16, 0, 0]);
        check("buffer past the end of a mapping", [addr(&good), 0, PROBE_END - 8, 16, 0, 0]);
        for len in HUGE {
            check("huge length", [addr(&good), 0, PROBE, len, 0, 0]);
        }
        check("offset far past the end", [addr(&good), 1 << 40, buf_ptr, 16, 0, 0]);
        check("offset wrapping", [addr(&good), u64::MAX - 4, buf_ptr, 16, 0, 0]);
        check("range running past the end", [addr(&good), PAGE - 8, buf_ptr, 16, 0, 0]);
    }
    report.error(
        "segment_read into read-only memory",
        call(Syscall::SegmentRead, [addr(&good), 0, rodata(), 16, 0, 0]),
    );
    report.error("segment_read into code", call(Syscall::SegmentRead, [addr(&good), 0, code(), 4, 0, 0]));
    report.error(
        "segment_write with a read-only capability",
        call(Syscall::SegmentWrite, [addr(&read_only), 0, buf_ptr, 16, 0, 0]),
    );
    // Positive controls: reading and writing through the nucleus.
    let mut seen = [0u8; 16];
    report.ok(
        "control: segment_read sees the mapping",
        sys::segment_read(&setup.segment, 0, &mut seen) == Ok(16) && seen == CANARY,
    );
    report.ok("control: segment_write", sys::segment_write(&setup.segment, 32, b"written!") == Ok(8));
    // SAFETY: the probe page is mapped; only read through raw pointers.
    let shown = unsafe { core::ptr::read_volatile((PROBE + 32) as usize as *const [u8; 8]) };
    report.ok("control: segment_write shows in the mapping", &shown == b"written!");
    report.ok(
        "control: segment_read with a read-only capability",
        sys::segment_read(&setup.read_only, 0, &mut seen) == Ok(16),
    );

    let d = Syscall::SegmentDestroy;
    report.error("segment_destroy cap null", call(d, [NULL, 0, 0, 0, 0, 0]));
    report.error("segment_destroy cap kernel address", call(d, [KERNEL, 0, 0, 0, 0, 0]));
    report.error("segment_destroy forged check", call(d, [addr(&forged), 0, 0, 0, 0, 0]));
    report.error("segment_destroy a process capability", call(d, [addr(&process_cap), 0, 0, 0, 0, 0]));
    report.error("segment_destroy with a read-only capability", call(d, [addr(&read_only), 0, 0, 0, 0, 0]));
    report.error("segment_destroy with a no-rights capability", call(d, [addr(&no_rights), 0, 0, 0, 0, 0]));
    // Positive control: a segment of its own can be destroyed.
    if let Some(spare) = report.success("control: second segment_create", sys::segment_create(PAGE)) {
        report.success("control: segment_destroy", sys::segment_destroy(&spare));
        report.error("segment_map after destroy", call(m, [addr(&spare.encode()), next_free(), 0, 0, 0, 0]));
    }
}

fn memory_info(report: &mut Report) {
    let i = Syscall::MemoryInfo;
    report.error("memory_info null", call(i, [NULL, 0, 0, 0, 0, 0]));
    report.error("memory_info 0x8", call(i, [LOW, 0, 0, 0, 0, 0]));
    report.error("memory_info kernel address", call(i, [KERNEL, 0, 0, 0, 0, 0]));
    report.error("memory_info unmapped", call(i, [UNMAPPED, 0, 0, 0, 0, 0]));
    report.error("memory_info read-only", call(i, [rodata(), 0, 0, 0, 0, 0]));
    report.error("memory_info past the end of a mapping", call(i, [PROBE_END - 8, 0, 0, 0, 0, 0]));
    let info = report.success("control: memory_info", sys::memory_info());
    report.ok(
        "control: memory_info reports free memory",
        info.is_some_and(|i| i.free_bytes > 0 && i.free_runs > 0),
    );
}

/// Starting a process without the board's host capability with the create
/// right: refused, with `Denied` when none or too few rights are given.
fn process_create_needs_the_host(report: &mut Report, setup: &Setup) {
    let mut out = [0u8; 16];
    let out_ptr = out.as_mut_ptr() as usize as u64;
    let nop = encode_descriptor(0, SCHED_PREEMPTIVE, b"nop", &[]);
    let (nop_ptr, nop_len) = (nop.as_ptr() as usize as u64, nop.len() as u64);
    let p = Syscall::ProcessCreate;
    let denied = amoeba_abi::syscall::error(Status::Denied);
    let without = call(p, [nop_ptr, nop_len, out_ptr, 0, 0, 0]);
    report.ok("process_create without a host capability is Denied", without == denied);
    // The test also gives the host capability restricted to reading the
    // board's info, as HOSTINFO.
    let info_only = amoeba_rt::env::capability("HOSTINFO").map(|c| c.encode()).unwrap_or([0; 16]);
    let raw = call(p, [nop_ptr, nop_len, out_ptr, addr(&info_only), 0, 0]);
    report.ok("process_create with a host capability without the create right is Denied", raw == denied);
    let mut forged = setup.host;
    forged.check.0[2] ^= 0x40;
    let forged = forged.encode();
    report.error(
        "process_create with a forged host capability",
        call(p, [nop_ptr, nop_len, out_ptr, addr(&forged), 0, 0]),
    );
    let segment = setup.segment.encode();
    report.error(
        "process_create with a segment capability as the host's",
        call(p, [nop_ptr, nop_len, out_ptr, addr(&segment), 0, 0]),
    );
    report.error("process_create host capability null", call(p, [nop_ptr, nop_len, out_ptr, NULL, 0, 0]));
    report.error("process_create host capability kernel", call(p, [nop_ptr, nop_len, out_ptr, KERNEL, 0, 0]));
    report.error(
        "process_create host capability unmapped",
        call(p, [nop_ptr, nop_len, out_ptr, UNMAPPED, 0, 0]),
    );
    let refused = amoeba_rt::process::Builder::new("nop").host(None).spawn();
    report.ok("spawn without a host capability is Denied", refused.err() == Some(Status::Denied));
}

fn processes(report: &mut Report, setup: &Setup) {
    process_create_needs_the_host(report, setup);
    let mut out = [0u8; 16];
    let out_ptr = out.as_mut_ptr() as usize as u64;
    let nop = encode_descriptor(0, SCHED_PREEMPTIVE, b"nop", &[]);
    let nop_ptr = nop.as_ptr() as usize as u64;
    let nop_len = nop.len() as u64;
    // Every check below presents the real host capability: what they test
    // is the descriptor and the output pointer.
    let host = setup.host.encode();
    let h = addr(&host);
    let p = Syscall::ProcessCreate;
    report.error("process_create descriptor null", call(p, [NULL, nop_len, out_ptr, h, 0, 0]));
    report.error("process_create descriptor kernel address", call(p, [KERNEL, nop_len, out_ptr, h, 0, 0]));
    report.error("process_create descriptor unmapped", call(p, [UNMAPPED, nop_len, out_ptr, h, 0, 0]));
    // The descriptor copied to the end of the probe page, running past it.
    let straddle = PROBE_END - 10;
    for (i, byte) in nop.iter().take(10).enumerate() {
        // SAFETY: the last 10 bytes of the probe page, which only this test uses.
        unsafe { core::ptr::write_volatile((straddle as usize + i) as *mut u8, *byte) };
    }
    report.error(
        "process_create descriptor past the end of a mapping",
        call(p, [straddle, nop_len, out_ptr, h, 0, 0]),
    );
    report.error("process_create length 0", call(p, [nop_ptr, 0, out_ptr, h, 0, 0]));
    report
        .error("process_create length shorter than the fixed part", call(p, [nop_ptr, 23, out_ptr, h, 0, 0]));
    report.error(
        "process_create length shorter than the name",
        call(p, [nop_ptr, nop_len - 1, out_ptr, h, 0, 0]),
    );
    for len in HUGE {
        report.error("process_create huge length", call(p, [nop_ptr, len, out_ptr, h, 0, 0]));
    }
    report.error("process_create cap_out null", call(p, [nop_ptr, nop_len, NULL, h, 0, 0]));
    report.error("process_create cap_out kernel address", call(p, [nop_ptr, nop_len, KERNEL, h, 0, 0]));
    report.error("process_create cap_out read-only", call(p, [nop_ptr, nop_len, rodata(), h, 0, 0]));
    report.error(
        "process_create cap_out past the end of a mapping",
        call(p, [nop_ptr, nop_len, PROBE_END - 8, h, 0, 0]),
    );

    let mut check_descriptor = |name: &str, descriptor: &[u8]| {
        let raw = call(p, [descriptor.as_ptr() as usize as u64, descriptor.len() as u64, out_ptr, h, 0, 0]);
        report.error(name, raw);
    };
    check_descriptor("process_create unknown program", &encode_descriptor(0, 0, b"no-such-program", &[]));
    check_descriptor("process_create empty name", &encode_descriptor(0, 0, b"", &[]));
    check_descriptor("process_create name not utf-8", &encode_descriptor(0, 0, &[0xff, 0xfe, 0x00], &[]));
    check_descriptor("process_create bad scheduling", &encode_descriptor(0, 7, b"nop", &[]));
    check_descriptor("process_create scheduling u32::MAX", &encode_descriptor(0, u32::MAX, b"nop", &[]));
    let mut long_name = nop.clone();
    long_name[12..16].copy_from_slice(&1000u32.to_le_bytes());
    check_descriptor("process_create name_len past the descriptor", &long_name);
    let mut wrapping_name = nop.clone();
    wrapping_name[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    check_descriptor("process_create name_len u32::MAX", &wrapping_name);
    let mut many = nop.clone();
    many[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    check_descriptor("process_create segment_count u32::MAX", &many);
    let mut one_missing = nop.clone();
    one_missing[16..20].copy_from_slice(&1u32.to_le_bytes());
    check_descriptor("process_create segment_count past the descriptor", &one_missing);
    let mut trailing = nop.clone();
    trailing.extend_from_slice(&[0; 8]);
    check_descriptor("process_create trailing bytes", &trailing);
    let extra = |cap: &Capability, address: u64, flags: u64| {
        encode_descriptor(0, 0, b"nop", &[DescriptorSegment { capability: cap.encode(), address, flags }])
    };
    check_descriptor("process_create extra segment forged", &extra(&setup.forged, 0x2000_0000, 0));
    check_descriptor(
        "process_create extra segment null capability",
        &extra(&Capability::NULL, 0x2000_0000, 0),
    );
    check_descriptor(
        "process_create extra segment process capability",
        &extra(&setup.child.cap, 0x2000_0000, 0),
    );
    check_descriptor("process_create extra segment at address 0", &extra(&setup.segment, 0, 0));
    check_descriptor("process_create extra segment misaligned", &extra(&setup.segment, 0x2000_0008, 0));
    check_descriptor(
        "process_create extra segment in the kernel",
        &extra(&setup.segment, KERNEL & !0xfff, 0),
    );
    check_descriptor("process_create extra segment over the program", &extra(&setup.segment, TEXT, 0));
    check_descriptor("process_create extra segment bad flags", &extra(&setup.segment, 0x2000_0000, 4));
    check_descriptor(
        "process_create extra segment writable with a read-only capability",
        &extra(&setup.read_only, 0x2000_0000, MAP_WRITE),
    );
    check_descriptor(
        "process_create extra segment with a no-rights capability",
        &extra(&setup.no_rights, 0x2000_0000, 0),
    );
    let two = encode_descriptor(
        0,
        0,
        b"nop",
        &[
            DescriptorSegment { capability: setup.segment.encode(), address: 0x2000_0000, flags: 0 },
            DescriptorSegment { capability: setup.segment.encode(), address: 0x2000_0000, flags: 0 },
        ],
    );
    check_descriptor("process_create two extra segments at one address", &two);

    let owner = setup.child.cap.encode();
    let inspect_only = setup.child_inspect.encode();
    let no_rights = setup.child_no_rights.encode();
    let mut forged = setup.child.cap;
    forged.check.0[5] ^= 1;
    let forged = forged.encode();
    let segment_cap = setup.segment.encode();
    let c = Syscall::ProcessControl;
    report.error("process_control cap null", call(c, [NULL, PROCESS_STUN, 0, 0, 0, 0]));
    report.error("process_control cap kernel address", call(c, [KERNEL, PROCESS_STUN, 0, 0, 0, 0]));
    report.error("process_control forged capability", call(c, [addr(&forged), PROCESS_DESTROY, 0, 0, 0, 0]));
    report.error(
        "process_control a segment capability",
        call(c, [addr(&segment_cap), PROCESS_DESTROY, 0, 0, 0, 0]),
    );
    for (name, op) in [
        ("process_control op 0", 0),
        ("process_control op 99", 99),
        ("process_control op u64::MAX", u64::MAX),
        ("process_control signal 0", PROCESS_SIGNAL_BASE),
        ("process_control signal 32", PROCESS_SIGNAL_BASE + 32),
    ] {
        report.error(name, call(c, [addr(&owner), op, 0, 0, 0, 0]));
    }
    report.error(
        "process_control destroy with inspect rights",
        call(c, [addr(&inspect_only), PROCESS_DESTROY, 0, 0, 0, 0]),
    );
    report.error(
        "process_control stun with inspect rights",
        call(c, [addr(&inspect_only), PROCESS_STUN, 0, 0, 0, 0]),
    );
    report.error(
        "process_control signal with inspect rights",
        call(c, [addr(&inspect_only), PROCESS_SIGNAL_BASE + 5, 0, 0, 0, 0]),
    );
    report.error(
        "process_control destroy with no rights",
        call(c, [addr(&no_rights), PROCESS_DESTROY, 0, 0, 0, 0]),
    );

    let w = Syscall::ProcessWait;
    report.error("process_wait cap null", call(w, [NULL, 0, 0, 0, 0, 0]));
    report.error("process_wait cap kernel address", call(w, [KERNEL, 0, 0, 0, 0, 0]));
    report.error("process_wait forged capability", call(w, [addr(&forged), 0, 0, 0, 0, 0]));
    report.error("process_wait a segment capability", call(w, [addr(&segment_cap), 0, 0, 0, 0, 0]));
    report.error("process_wait with no rights", call(w, [addr(&no_rights), 0, 0, 0, 0, 0]));
    // A live child and a bad place for its status: refused at once, no wait.
    report.error("process_wait status to null", call(w, [addr(&owner), NULL, 0, 0, 0, 0]));
    report.error("process_wait status to a kernel address", call(w, [addr(&owner), KERNEL, 0, 0, 0, 0]));
    report.error(
        "process_wait status into code",
        call(w, [addr(&owner), main as *const () as u64, 0, 0, 0, 0]),
    );

    let i = Syscall::ProcessInspect;
    let mut info = [0u8; 32];
    let info_ptr = info.as_mut_ptr() as usize as u64;
    report.error("process_inspect cap null", call(i, [NULL, info_ptr, 0, 0, 0, 0]));
    report.error("process_inspect forged capability", call(i, [addr(&forged), info_ptr, 0, 0, 0, 0]));
    report.error("process_inspect a segment capability", call(i, [addr(&segment_cap), info_ptr, 0, 0, 0, 0]));
    report.error("process_inspect with no rights", call(i, [addr(&no_rights), info_ptr, 0, 0, 0, 0]));
    report.error("process_inspect out null", call(i, [addr(&owner), NULL, 0, 0, 0, 0]));
    report.error("process_inspect out kernel address", call(i, [addr(&owner), KERNEL, 0, 0, 0, 0]));
    report.error("process_inspect out unmapped", call(i, [addr(&owner), UNMAPPED, 0, 0, 0, 0]));
    report.error("process_inspect out read-only", call(i, [addr(&owner), rodata(), 0, 0, 0, 0]));
    report.error(
        "process_inspect out past the end of a mapping",
        call(i, [addr(&owner), PROBE_END - 16, 0, 0, 0, 0]),
    );
    let inspected = report.success(
        "control: process_inspect",
        Process { pid: setup.child.pid, cap: setup.child_inspect }.inspect(),
    );
    report.ok(
        "control: the child is alive",
        inspected.is_some_and(|info| info.state == sys::PROCESS_RUNNING && info.threads >= 1),
    );
}

fn restrict(report: &mut Report, setup: &Setup) {
    let mut out = [0u8; 16];
    let out_ptr = out.as_mut_ptr() as usize as u64;
    let good = setup.segment.encode();
    let forged = setup.forged.encode();
    let r = Syscall::Restrict;
    report.error("restrict cap null", call(r, [NULL, 0x02, out_ptr, 0, 0, 0]));
    report.error("restrict cap kernel address", call(r, [KERNEL, 0x02, out_ptr, 0, 0, 0]));
    report.error("restrict forged capability", call(r, [addr(&forged), 0x02, out_ptr, 0, 0, 0]));
    report.error("restrict rights 0x100", call(r, [addr(&good), 0x100, out_ptr, 0, 0, 0]));
    report.error("restrict rights u64::MAX", call(r, [addr(&good), u64::MAX, out_ptr, 0, 0, 0]));
    report.error("restrict out null", call(r, [addr(&good), 0x02, NULL, 0, 0, 0]));
    report.error("restrict out kernel address", call(r, [addr(&good), 0x02, KERNEL, 0, 0, 0]));
    report.error("restrict out read-only", call(r, [addr(&good), 0x02, rodata(), 0, 0, 0]));
    report.error(
        "restrict out past the end of a mapping",
        call(r, [addr(&good), 0x02, PROBE_END - 8, 0, 0, 0]),
    );
    // Restricting cannot add rights: asking a read-only capability for all
    // rights gives at most read, and writing with the result fails.
    match sys::restrict(&setup.read_only, 0xff) {
        Err(_) => report.ok("restrict cannot add rights", true),
        Ok(amplified) => {
            report.ok("restrict cannot add rights", amplified.rights.bits() & !Rights::READ.bits() == 0);
            report.ok(
                "restrict cannot add rights (write with the result)",
                sys::segment_write(&amplified, 0, b"x").is_err(),
            );
        }
    }
}

/// A get-port nobody else uses (different on every run).
fn private_get_port() -> GetPort {
    let t = time::ticks().to_le_bytes();
    GetPort(Port([0x68, t[0] | 1, t[1], t[2], t[3], t[4]]))
}

fn rpc(report: &mut Report) {
    // A server thread in this process: bad calls that the nucleus wrongly
    // accepted would reach it and come back as successes.
    let get = private_get_port();
    let put = get.put_port();
    let ready = alloc::sync::Arc::new(AtomicU32::new(0));
    let _server = {
        let ready = ready.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            ready.store(1, Ordering::SeqCst);
            let _ = sys::futex_wake(&ready, 1);
            loop {
                if let Ok((_, len)) = sys::get_request(&get, &mut buf) {
                    let _ = sys::put_reply(&Header::reply(Status::Ok), &buf[..len.min(64)]);
                }
            }
        })
    };
    // Until the server thread sits in get_request (it has nothing else to
    // do once it said it is ready), so that requests take the local path.
    while ready.load(Ordering::SeqCst) == 0 {
        let _ = sys::futex_wait(&ready, 0);
    }
    time::sleep_us(20_000);
    let request = Header { port: put, command: 1, ..Header::default() }.encode();
    let req = addr(&request);
    let data = *b"ping";
    let data_ptr = data.as_ptr() as usize as u64;
    let mut header_out = [0u8; HEADER_LEN];
    let hdr = header_out.as_mut_ptr() as usize as u64;
    let mut reply = [0u8; 64];
    let rep = reply.as_mut_ptr() as usize as u64;
    let t = Syscall::Trans;
    let mut check = |name: &str, args: [u64; 6]| report.error(name, call(t, args));
    check("trans header null", [NULL, data_ptr, 4, hdr, rep, 64]);
    check("trans header kernel address", [KERNEL, data_ptr, 4, hdr, rep, 64]);
    check("trans header unmapped", [UNMAPPED, data_ptr, 4, hdr, rep, 64]);
    check("trans header past the end of a mapping", [PROBE_END - 20, data_ptr, 4, hdr, rep, 64]);
    check("trans buffer null", [req, NULL, 4, hdr, rep, 64]);
    check("trans buffer kernel address", [req, KERNEL, 4, hdr, rep, 64]);
    check("trans buffer past the end of a mapping", [req, PROBE_END - 8, 16, hdr, rep, 64]);
    for len in HUGE {
        check("trans huge length", [req, PROBE, len, hdr, rep, 64]);
    }
    check("trans reply header null", [req, data_ptr, 4, NULL, rep, 64]);
    check("trans reply header kernel address", [req, data_ptr, 4, KERNEL, rep, 64]);
    check("trans reply header read-only", [req, data_ptr, 4, rodata(), rep, 64]);
    check("trans reply header past the end of a mapping", [req, data_ptr, 4, PROBE_END - 20, rep, 64]);
    check("trans reply buffer null", [req, data_ptr, 4, hdr, NULL, 64]);
    check("trans reply buffer kernel address", [req, data_ptr, 4, hdr, KERNEL, 64]);
    check("trans reply buffer read-only", [req, data_ptr, 4, hdr, rodata(), 64]);
    check("trans reply buffer past the end of a mapping", [req, data_ptr, 4, hdr, PROBE_END - 8, 64]);
    for len in HUGE {
        check("trans huge reply capacity", [req, data_ptr, 4, hdr, PROBE, len]);
    }
    // Positive control: the same request with good arguments.
    let answer = sys::trans(&Header::decode(&request).expect("header"), &data, &mut reply);
    report.ok(
        "control: trans to a server thread of this process",
        matches!(answer, Ok((header, 4)) if header.status == 0) && &reply[..4] == b"ping",
    );

    // get_request with bad arguments (a wrongly accepted one would block).
    let other = private_get_port().0.0;
    let port = addr(&other);
    let g = Syscall::GetRequest;
    let mut check = |name: &str, args: [u64; 6]| report.error(name, call(g, args));
    check("get_request port null", [NULL, hdr, rep, 64, 0, 0]);
    check("get_request port kernel address", [KERNEL, hdr, rep, 64, 0, 0]);
    check("get_request port past the end of a mapping", [PROBE_END - 3, hdr, rep, 64, 0, 0]);
    check("get_request header null", [port, NULL, rep, 64, 0, 0]);
    check("get_request header kernel address", [port, KERNEL, rep, 64, 0, 0]);
    check("get_request header read-only", [port, rodata(), rep, 64, 0, 0]);
    check("get_request header past the end of a mapping", [port, PROBE_END - 20, rep, 64, 0, 0]);
    check("get_request buffer null", [port, hdr, NULL, 64, 0, 0]);
    check("get_request buffer kernel address", [port, hdr, KERNEL, 64, 0, 0]);
    check("get_request buffer read-only", [port, hdr, rodata(), 64, 0, 0]);
    check("get_request buffer past the end of a mapping", [port, hdr, PROBE_END - 8, 64, 0, 0]);
    for len in HUGE {
        check("get_request huge capacity", [port, hdr, PROBE, len, 0, 0]);
    }

    let p = Syscall::PutReply;
    let reply_header = Header::reply(Status::Ok).encode();
    let good = addr(&reply_header);
    report.error("put_reply without a request", call(p, [good, data_ptr, 4, 0, 0, 0]));
    report.error("put_reply header null", call(p, [NULL, data_ptr, 4, 0, 0, 0]));
    report.error("put_reply header kernel address", call(p, [KERNEL, data_ptr, 4, 0, 0, 0]));
    report.error("put_reply buffer kernel address", call(p, [good, KERNEL, 4, 0, 0, 0]));
    report.error("put_reply huge length", call(p, [good, PROBE, u64::MAX, 0, 0, 0]));
}

fn unknown_calls(report: &mut Report) {
    for number in [Syscall::ALL.len() as u64, 4096, 1 << 32, u64::MAX] {
        // SAFETY: numbers the nucleus does not know: nothing may happen.
        let raw = unsafe { sys::raw(number, [PROBE, PAGE, PROBE, PAGE, 0, 0]) };
        report.error("unknown system call", raw);
    }
}

fn controls(report: &mut Report) {
    let before = time::now_us();
    time::sleep_us(20_000);
    report.ok("control: sleep", time::now_us() >= before + 20_000);
    let mut values: Vec<u32> = (0..100).collect();
    values.retain(|v| v % 2 == 0);
    report.ok("control: the heap works", values.len() == 50);
}
