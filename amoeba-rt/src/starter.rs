//! Telling the starter: a program whose capability environment names a
//! `BOOTSTRAP` object (`amoeba_ipc::interfaces::bootstrap`) announces there that
//! it serves, or reports its results as typed figures, so that whoever started
//! it reads them by RPC rather than from its console. A program started without
//! one (by hand, say) has nobody to tell: the calls answer `NotFound` and the
//! program goes on.

use alloc::string::String;
use amoeba_abi::Status;
use amoeba_ipc::interfaces::bootstrap;
use amoeba_ipc::interfaces::starter::{
    Announcement, BOOTSTRAP_CAPABILITY_NAME, FIGURE_NUMBERS_MAX, Figure, Timing, Value,
};

use crate::env;
use crate::rpc::Nucleus;

/// Whether the program has a starter to tell.
pub fn has_starter() -> bool {
    env::capability(BOOTSTRAP_CAPABILITY_NAME).is_some()
}

/// Times a call is tried while the starter's port is not found (a slow or
/// lossy network: the locate went unanswered, so the call never ran).
const LOCATE_TRIES: u32 = 5;
/// Pause between those tries.
const LOCATE_PAUSE_US: u64 = 200_000;

/// `call` again while it fails with `RpcNotFound`, which says it never ran
/// (any other failure may have run it, and is not tried again).
fn located<T>(mut call: impl FnMut() -> Result<T, Status>) -> Result<T, Status> {
    let mut tries = 1;
    loop {
        match call() {
            Err(Status::RpcNotFound) if tries < LOCATE_TRIES => {
                tries += 1;
                crate::time::sleep_us(LOCATE_PAUSE_US);
            }
            other => return other,
        }
    }
}

/// Tells the starter the program has come up (`NotFound`: no starter).
pub fn announce(announcement: &Announcement) -> Result<(), Status> {
    let object = env::capability(BOOTSTRAP_CAPABILITY_NAME).ok_or(Status::NotFound)?;
    located(|| bootstrap::Client::new(Nucleus).announce(&object, announcement))
}

/// Reports one result to the starter (`NotFound`: no starter).
pub fn report(name: &str, value: Value) -> Result<(), Status> {
    let object = env::capability(BOOTSTRAP_CAPABILITY_NAME).ok_or(Status::NotFound)?;
    let mut owned = String::new();
    owned.try_reserve_exact(name.len()).map_err(|_| Status::NoSpace)?;
    owned.push_str(name);
    let figure = Figure { name: owned, value };
    located(|| bootstrap::Client::new(Nucleus).report(&object, &figure))
}

/// Reports a series of any length as figures `name` of at most
/// [`FIGURE_NUMBERS_MAX`] numbers each, in order; the starter joins them.
pub fn report_series(name: &str, numbers: &[u64]) -> Result<(), Status> {
    for chunk in numbers.chunks(FIGURE_NUMBERS_MAX) {
        let mut owned = alloc::vec::Vec::new();
        owned.try_reserve_exact(chunk.len()).map_err(|_| Status::NoSpace)?;
        owned.extend_from_slice(chunk);
        report(name, Value::Numbers(owned))?;
    }
    Ok(())
}

/// Reports the median, 99th percentile and count of `samples` (µs, sorted in
/// place) as the timing `kind`, and says them on the console for people as
/// `<who> <kind> median-us M p99-us P count N`; nothing for no samples.
/// Without a starter it only says them.
pub fn report_timing(who: &str, kind: &str, samples: &mut [u64]) -> Result<(), Status> {
    let Some(timing) = Timing::of_micros(samples) else { return Ok(()) };
    crate::println!(
        "{who} {kind} median-us {} p99-us {} count {}",
        timing.median_us,
        timing.p99_us,
        timing.count
    );
    if !has_starter() {
        return Ok(());
    }
    report(kind, Value::Timing(timing))
}

/// Announces from a thread of its own, so that the caller (a server's loop,
/// a replica's clock) never waits on its starter; a failure is said on the
/// console, signed `who`. Without a starter it does nothing; without room for
/// a thread it announces at once.
pub fn announce_soon(who: &'static str, announcement: Announcement) {
    if !has_starter() {
        return;
    }
    let tell = move || {
        if let Err(status) = announce(&announcement) {
            crate::println!("{who}: telling the starter failed: {status}");
        }
    };
    let shared = alloc::sync::Arc::new(crate::sync::Mutex::new(Some(tell)));
    let in_thread = shared.clone();
    let spawned = crate::thread::try_spawn_with_stack(crate::thread::DEFAULT_STACK_SIZE, move || {
        if let Some(tell) = in_thread.lock().take() {
            tell();
        }
    });
    if spawned.is_err()
        && let Some(tell) = shared.lock().take()
    {
        tell();
    }
}
