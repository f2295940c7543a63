//! The trap entry point: `vectors.s` calls [`handle_exception`] for every
//! exception taken to EL1. IRQs go to the interrupt entry, system calls to
//! the system call entry, a fault at EL0 kills its process alone, and
//! anything else unexpected prints a full report and stops the board.

use crate::arch::exception::{self, ExceptionKind, Syndrome, TrapFrame};
use crate::power::{self, ExitStatus};
use crate::process::{self, sched::schedule};
use crate::{interrupts, services, syscall};

/// Called by `vectors.s` for every exception taken to EL1, with the trap
/// frame it saved on the current thread's kernel stack.
// SAFETY: no other symbol of the image is called `handle_exception`;
// `vectors.s` calls it with a valid, exclusive frame pointer.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(frame: &mut TrapFrame, slot: u64) {
    let kind = ExceptionKind::from_slot(slot);
    if !kind.is_from_user() {
        if kind.is_irq() {
            interrupts::handle_irq();
            return;
        }
        report_and_stop(frame, kind);
    }
    process::with(|core| core.entered_from_user(frame.pc()));
    if kind.is_irq() {
        interrupts::handle_irq();
    } else if kind.is_synchronous() && Syndrome::read().is_svc() {
        syscall::dispatch(frame);
    } else if kind.is_synchronous() {
        let syndrome = Syndrome::read();
        let far = exception::fault_address();
        user_fault(format_args!("{}; FAR {far:#x}, PC {:#x}", syndrome.short(), frame.pc()));
    } else {
        // SError or FIQ caused by a user process: it dies, the board goes on.
        user_fault(format_args!("{kind}"));
    }
    return_to_user(frame);
}

/// Kills the current process for a fault taken at EL0.
fn user_fault(what: core::fmt::Arguments) {
    services::with(|_, core| core.fault_current(what));
}

/// On the way back to EL0: switch if asked, deliver signals through the
/// live `frame`, never return into a dead thread. The core alone, not the
/// services: an event a signal causes (a process ends) wakes the network
/// thread, which hands it to the services; settling them here as well made
/// every system call settle twice.
fn return_to_user(frame: &mut TrapFrame) {
    loop {
        let (resched, alive) = process::with(|core| {
            // One look-up of the thread on the common way: alive, nothing to deliver.
            let thread = core.current_thread();
            let alive = thread.is_alive();
            if alive && !thread.pending_signals.is_empty() && thread.signal_saved.is_none() {
                core.deliver_signals(frame);
                return (core.need_resched(), core.current_thread().is_alive());
            }
            (core.need_resched(), alive)
        });
        if resched || !alive {
            schedule();
            continue;
        }
        return;
    }
}

fn report_and_stop(frame: &TrapFrame, kind: ExceptionKind) -> ! {
    let mut out = crate::console::emergency_writer();
    let _ = exception::write_report(&mut out, frame, kind);
    let _ = core::fmt::Write::write_str(&mut out, "*** nucleus: board stopped (failure)\n");
    power::stop(ExitStatus::Failure)
}
