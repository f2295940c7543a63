//! Stopping the board: PSCI SYSTEM_OFF, or semihosting exit when the pool
//! runner asked for it, so that QEMU's exit status carries our status.

#![forbid(unsafe_code)]

use crate::arch::firmware;
use core::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExitStatus {
    Success,
    Failure,
}

static SEMIHOSTING: AtomicBool = AtomicBool::new(false);

/// Called when the bootargs say QEMU runs with `-semihosting`.
pub fn enable_semihosting_exit() {
    SEMIHOSTING.store(true, Ordering::Relaxed);
}

pub fn stop(status: ExitStatus) -> ! {
    crate::arch::cpu::disable_irqs();
    if SEMIHOSTING.load(Ordering::Relaxed) {
        semihosting_exit(status);
    }
    firmware::psci_system_off()
}

fn semihosting_exit(status: ExitStatus) {
    let code = match status {
        ExitStatus::Success => 0,
        ExitStatus::Failure => 1,
    };
    firmware::semihosting_exit(code);
}
