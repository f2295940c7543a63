//! `signals`: signals between the threads of one process. A worker thread
//! catches signal 5 and ignores signal 6; the main thread raises both at it
//! and checks that only the caught one ran the handler, on the worker.
//! Prints `signals: ok` and exits 0, or says what went wrong and exits 1;
//! reports the number of failed checks to its starter (`failures`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use amoeba_ipc::interfaces::starter::Value;
use amoeba_rt::{println, starter};
use amoeba_rt::{signal, thread, time};
use core::sync::atomic::{AtomicU32, Ordering};

amoeba_rt::entry!(main);

const CAUGHT: u32 = 5;
const IGNORED: u32 = 6;

static HANDLED: AtomicU32 = AtomicU32::new(0);
static LAST_SIGNAL: AtomicU32 = AtomicU32::new(0);
static STOP: AtomicU32 = AtomicU32::new(0);

fn on_signal(signal: u32) {
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Waits up to `micros` for `condition`.
fn wait_until(micros: u64, condition: impl Fn() -> bool) -> bool {
    let deadline = time::now_us() + micros;
    while time::now_us() < deadline {
        if condition() {
            return true;
        }
        time::sleep_us(10_000);
    }
    condition()
}

fn main(_argument: u64) -> i32 {
    if let Err(status) = signal::catch(CAUGHT, on_signal).and_then(|_| signal::ignore(IGNORED)) {
        println!("signals: cannot set the actions: {status}");
        return 1;
    }
    let worker = thread::spawn(|| {
        // Sleeping in the kernel: a signal wakes the call, the runtime retries.
        while STOP.load(Ordering::SeqCst) == 0 {
            time::sleep_us(20_000);
        }
        0u64
    });
    let mut failures = 0;
    if signal::raise(worker.thread_id(), IGNORED).is_err() {
        println!("signals: raising the ignored signal failed");
        failures += 1;
    }
    if wait_until(300_000, || HANDLED.load(Ordering::SeqCst) != 0) {
        println!("signals: an ignored signal ran the handler");
        failures += 1;
    }
    if signal::raise(worker.thread_id(), CAUGHT).is_err() {
        println!("signals: raising the caught signal failed");
        failures += 1;
    }
    if !wait_until(2_000_000, || HANDLED.load(Ordering::SeqCst) == 1) {
        println!("signals: the caught signal was not handled");
        failures += 1;
    } else if LAST_SIGNAL.load(Ordering::SeqCst) != CAUGHT {
        println!("signals: the handler got signal {}", LAST_SIGNAL.load(Ordering::SeqCst));
        failures += 1;
    }
    if signal::raise(worker.thread_id(), 0).is_ok() || signal::raise(worker.thread_id(), 99).is_ok() {
        println!("signals: a signal number out of range was accepted");
        failures += 1;
    }
    STOP.store(1, Ordering::SeqCst);
    worker.join();
    let _ = starter::report("failures", Value::Unsigned(failures as u64));
    if failures == 0 {
        println!("signals: ok");
        0
    } else {
        1
    }
}
