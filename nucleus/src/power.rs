//! Stopping the board: PSCI SYSTEM_OFF, or semihosting exit when the pool
//! runner asked for it, so that QEMU's exit status carries our status.

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
    psci_system_off()
}

fn semihosting_exit(status: ExitStatus) {
    const SYS_EXIT: u64 = 0x18;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
    let code = match status {
        ExitStatus::Success => 0,
        ExitStatus::Failure => 1,
    };
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: the semihosting call reads the two-word block and ends QEMU; it
    // touches no memory of ours beyond `block`.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
    }
}

fn psci_system_off() -> ! {
    const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
    // SAFETY: PSCI SYSTEM_OFF through the hypervisor conduit QEMU provides; it
    // does not return.
    unsafe {
        core::arch::asm!("hvc #0", in("x0") PSCI_SYSTEM_OFF, options(nostack));
    }
    loop {
        crate::arch::cpu::wait_for_interrupt();
    }
}
