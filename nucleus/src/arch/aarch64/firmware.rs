//! Calls into what runs below the nucleus: PSCI through the hypervisor
//! conduit QEMU `virt` provides, and Arm semihosting (which QEMU answers
//! when started with `-semihosting`).

/// PSCI SYSTEM_OFF: powers the board off; does not return.
pub fn psci_system_off() -> ! {
    const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
    // SAFETY: PSCI SYSTEM_OFF through the hvc conduit QEMU provides at EL1;
    // it touches no memory of ours and does not return.
    unsafe {
        core::arch::asm!("hvc #0", in("x0") PSCI_SYSTEM_OFF, options(nostack));
    }
    loop {
        super::cpu::wait_for_interrupt();
    }
}

/// Semihosting SYS_EXIT: ends QEMU with exit status `code` (0 or 1).
/// Returns only if no debugger or QEMU answers semihosting.
pub fn semihosting_exit(code: u64) {
    const SYS_EXIT: u64 = 0x18;
    const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, code];
    // SAFETY: the semihosting call reads the two-word block and ends QEMU; it
    // touches no memory of ours beyond `block`.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
    }
}
