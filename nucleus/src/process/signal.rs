//! Signals: raised in a thread, delivered on its way back to EL0. A thread
//! blocked in the kernel is woken to take the signal; its call ends with
//! `Interrupted`, and the service it waited on hears of it
//! ([`Event::WaitInterrupted`]) so that it forgets the call.

#![forbid(unsafe_code)]

use super::thread::{ThreadState, Tid, Wait};
use super::{Core, Event};
use crate::arch::exception::TrapFrame;
use alloc::boxed::Box;
use amoeba_abi::Status;
use amoeba_abi::syscall::error;
use nucleus::pending_signals::{self, Delivery};

impl Core {
    /// Raises `signal` in thread `tid` (delivered on its way back to EL0).
    pub fn raise(&mut self, tid: Tid, signal: u32) -> Result<(), Status> {
        if !pending_signals::is_signal(signal) {
            return Err(Status::ArgBad);
        }
        let thread = self.threads.get_mut(&tid).filter(|t| t.is_alive()).ok_or(Status::NotFound)?;
        thread.pending_signals.raise(signal)?;
        // A thread blocked in the kernel is interrupted to take the signal;
        // the network thread (a kernel thread) takes none.
        if let ThreadState::Blocked(wait) = thread.state
            && wait != Wait::Network
        {
            thread.wake_result = error(Status::Interrupted);
            thread.interrupted = true;
            self.make_ready(tid);
            self.push_event(Event::WaitInterrupted { tid, wait });
        }
        Ok(())
    }

    /// Delivers pending signals to the current thread before it returns to
    /// EL0 through `frame` (its live trap frame), lowest first: default ends
    /// the process, ignore drops, catch enters the handler
    /// ([`pending_signals::deliver`] decides).
    pub fn deliver_signals(&mut self, frame: &mut TrapFrame) {
        let Some(pid) = self.current_pid() else {
            return;
        };
        let process = self.processes.get(&pid);
        let Some(thread) = self.threads.get_mut(&self.sched.current) else {
            return;
        };
        let in_handler = thread.signal_saved.is_some();
        let disposition = |signal: u32| process.map(|p| p.signals[signal as usize]);
        match pending_signals::deliver(&mut thread.pending_signals, in_handler, disposition) {
            Delivery::Nothing => {}
            Delivery::Exit(status) => self.exit_process(pid, status),
            Delivery::Catch { signal, handler } => {
                thread.signal_saved = Some(Box::new(*frame));
                frame.enter_signal_handler(handler, signal);
            }
        }
    }

    /// Ends the signal handler the current thread runs: `frame` gets the
    /// interrupted state back. `None` outside a handler.
    pub fn signal_return(&mut self, frame: &mut TrapFrame) -> Option<u64> {
        let saved = self.current_thread().signal_saved.take()?;
        *frame = *saved;
        // The interrupted code gets its own x0 back, whatever it was.
        Some(frame.syscall_result())
    }

    /// The current thread entered the kernel from EL0 at `pc`.
    pub fn entered_from_user(&mut self, pc: u64) {
        self.current_thread().user_pc = pc;
    }
}
