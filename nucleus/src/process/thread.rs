//! Threads: a kernel stack, a saved context, and what the thread waits for.

use crate::arch::context::Context;
use crate::arch::exception::TrapFrame;
use alloc::boxed::Box;
use alloc::vec::Vec;
use amoeba_abi::Status;

pub use nucleus::call_types::{Pid, Tid};
use nucleus::pending_signals::PendingSignals;

pub const KERNEL_STACK_SIZE: usize = 32 * 1024;

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// `futex_wake` on this user address of this process.
    Futex { pid: Pid, addr: u64 },
    /// The end of another thread.
    Join(Tid),
    /// The time to wake at (µs since boot).
    Sleep(u64),
    /// The end of a process.
    ProcessExit(Pid),
    /// Frames from the network or notices to send (the network thread).
    Network,
    /// The end of the RPC transaction with this id.
    Trans(u64),
    /// A request for this put-port.
    GetRequest(amoeba_abi::Port),
    /// A group event (joined, message) of this group handle.
    Group(u16),
    /// The disk request with this tag (a kernel thread's).
    Disk(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Ready,
    Running,
    Blocked(Wait),
    Dead,
}

pub struct Thread {
    pub tid: Tid,
    /// `None` for kernel threads.
    pub process: Option<Pid>,
    /// For reports and debugging.
    #[allow(dead_code)]
    pub name: &'static str,
    pub state: ThreadState,
    pub context: Context,
    stack: Vec<u128>,
    pub exit_value: u64,
    /// Signals raised and not yet delivered.
    pub pending_signals: PendingSignals,
    /// The user state interrupted by a running signal handler.
    pub signal_saved: Option<Box<TrapFrame>>,
    /// Ticks left in the current time slice.
    pub slice: u32,
    /// The result to return from a blocking system call when woken.
    pub wake_result: i64,
    /// Set when a signal cut a blocking call short.
    pub interrupted: bool,
    /// Where the thread was in EL0 when it last entered the kernel (for
    /// inspection; its trap frame is only touched by the thread itself).
    pub user_pc: u64,
}

impl Thread {
    /// A new thread with a zeroed kernel stack; `NoSpace` when the kernel
    /// heap has no room for the stack (and its reserve).
    pub fn new(tid: Tid, process: Option<Pid>, name: &'static str) -> Result<Self, Status> {
        crate::heap::admit(KERNEL_STACK_SIZE)?;
        let mut stack = Vec::new();
        stack.try_reserve_exact(KERNEL_STACK_SIZE / 16).map_err(|_| Status::NoSpace)?;
        stack.resize(KERNEL_STACK_SIZE / 16, 0u128);
        Ok(Self {
            tid,
            process,
            name,
            state: ThreadState::Ready,
            context: Context::default(),
            stack,
            exit_value: 0,
            pending_signals: PendingSignals::default(),
            signal_saved: None,
            slice: 0,
            wake_result: 0,
            interrupted: false,
            user_pc: 0,
        })
    }

    /// One past the highest address of the kernel stack (16-byte aligned).
    pub fn stack_top(&self) -> usize {
        self.stack.as_ptr() as usize + self.stack.len() * 16
    }

    /// Sets the thread up to enter EL0 at `entry` with stack `sp` and
    /// arguments in x0..x3: its first trap frame goes where every later
    /// entry from EL0 puts it, at the top of its kernel stack.
    pub fn prepare_user_entry(&mut self, entry: u64, sp: u64, args: [u64; 4]) {
        let frame = (self.stack_top() - core::mem::size_of::<TrapFrame>()) as *mut TrapFrame;
        self.user_pc = entry;
        // SAFETY: the frame lies inside this thread's own kernel stack
        // (a live, 16-byte aligned allocation we hold `&mut` to), and the
        // thread has never run, so nothing else refers to that memory.
        unsafe { frame.write(TrapFrame::for_user_entry(entry, sp, args)) };
        self.context = Context::for_user_thread(frame as usize);
    }

    pub fn is_alive(&self) -> bool {
        self.state != ThreadState::Dead
    }
}
