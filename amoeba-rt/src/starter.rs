//! Telling the starter: a program whose capability environment names a
//! `BOOTSTRAP` object (`amoeba_ipc::interfaces::bootstrap`) announces there that
//! it serves, or reports its results as typed figures, so that whoever started
//! it reads them by RPC rather than from its console. A program started without
//! one (by hand, say) has nobody to tell: the calls answer `NotFound` and the
//! program goes on.

use alloc::string::String;
use amoeba_abi::Status;
use amoeba_ipc::interfaces::bootstrap;
use amoeba_ipc::interfaces::starter::{Announcement, BOOTSTRAP_CAPABILITY_NAME, Figure, Value};

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
