//! IRQ dispatch: the GIC says which line fired, the owner handles it.

use crate::board;
use crate::drivers::{gic, timer};

pub fn handle_irq() {
    while let Some(intid) = gic::acknowledge() {
        if intid >= 1020 {
            break; // spurious
        }
        if intid == board::TIMER_INTID {
            timer::handle_interrupt();
        } else if !crate::net::handle_interrupt(intid) {
            crate::println!("nucleus: unexpected interrupt {intid}");
        }
        gic::end_of_interrupt(intid);
    }
}
