//! What this process started with: its arguments, environment strings and
//! capability environment (STDIN, STDOUT, STDERR, ROOT, WORK, ...), as the process
//! server wrote them below the first thread's stack (see [`crate::exec`]).
//!
//! ```ignore
//! let root = amoeba_rt::env::capability("ROOT").expect("started with a ROOT");
//! for arg in amoeba_rt::env::args() { amoeba_rt::println!("{arg}"); }
//! ```

use alloc::boxed::Box;
pub use alloc::string::String;
use amoeba_abi::Capability;
use amoeba_ipc::interfaces::process::Startup;
use core::sync::atomic::{AtomicPtr, Ordering};

static STARTUP: AtomicPtr<Startup> = AtomicPtr::new(core::ptr::null_mut());

/// Keeps the decoded startup block for the life of the process (called once, by
/// the runtime, before `main`).
pub(crate) fn set(startup: Startup) {
    let leaked = Box::into_raw(Box::new(startup));
    if STARTUP.compare_exchange(core::ptr::null_mut(), leaked, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // SAFETY: `leaked` came from Box::into_raw just above and was not shared.
        drop(unsafe { Box::from_raw(leaked) });
    }
}

/// The whole startup block (empty if the process got none).
pub fn startup() -> &'static Startup {
    static EMPTY: Startup = Startup {
        argv: alloc::vec::Vec::new(),
        environment: alloc::vec::Vec::new(),
        capabilities: alloc::vec::Vec::new(),
    };
    let pointer = STARTUP.load(Ordering::Acquire);
    // SAFETY: once set, the block is never freed or changed (leaked in `set`).
    unsafe { pointer.as_ref() }.unwrap_or(&EMPTY)
}

/// The arguments, program name first.
pub fn args() -> &'static [String] {
    &startup().argv
}

/// A named capability of the environment.
pub fn capability(name: &str) -> Option<Capability> {
    startup().capability(name)
}

/// The value of environment string `NAME=value`.
pub fn var(name: &str) -> Option<&'static str> {
    startup().environment.iter().find_map(|entry| entry.strip_prefix(name)?.strip_prefix('='))
}
