//! IRQ entry: the GIC says which line fired, the driver that owns it
//! reports what happened, and this turns the report into wake-ups in the
//! process core (drivers never call up into the scheduler).

#![forbid(unsafe_code)]

use crate::board;
use crate::drivers::{block, gic, net, timer};
use crate::process::{self, thread::Wait};

/// INTIDs from 1020 up are special (1023: nothing pending).
const FIRST_SPECIAL_INTID: u32 = 1020;

pub fn handle_irq() {
    while let Some(intid) = gic::acknowledge() {
        if intid >= FIRST_SPECIAL_INTID {
            break; // spurious
        }
        if intid == board::TIMER_INTID {
            let ticked = timer::handle_interrupt();
            let now = timer::uptime_micros();
            process::with(|core| core.timer_interrupt(ticked, now));
        } else if block::handle_interrupt(intid) {
            // The network thread's next round through the services takes
            // the finished disk operations to the disk server.
            process::with(|core| core.wake_all(Wait::Network, 0));
        } else {
            match net::handle_interrupt(intid) {
                net::Interrupt::Handled { frames_in: true } => {
                    process::with(|core| core.wake_all(Wait::Network, 0));
                }
                net::Interrupt::Handled { frames_in: false } => {}
                net::Interrupt::NotOurs => crate::println!("nucleus: unexpected interrupt {intid}"),
            }
        }
        gic::end_of_interrupt(intid);
    }
}
