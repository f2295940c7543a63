//! The EL1 physical generic timer's registers (CNTP_*, CNTKCTL): the
//! driver in `drivers/timer.rs` decides when to fire, this says how.

use aarch64_cpu::registers::{CNTKCTL_EL1, CNTP_CTL_EL0, CNTP_CVAL_EL0, ReadWriteable, Writeable};

/// Lets EL0 read the virtual counter (user programs time themselves).
pub fn allow_user_counter() {
    CNTKCTL_EL1.modify(CNTKCTL_EL1::EL0VCTEN::SET);
}

/// Fires the timer interrupt once the counter reaches `at`.
pub fn set_compare(at: u64) {
    CNTP_CVAL_EL0.set(at);
}

/// Turns the timer on with its interrupt unmasked.
pub fn enable() {
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}
