//! Threads: a kernel stack, a saved context, and what the thread waits for.

use crate::arch::context::Context;
use crate::arch::exception::TrapFrame;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

pub type Tid = u32;
pub type Pid = u32;

pub const KERNEL_STACK_SIZE: usize = 32 * 1024;

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// `futex_wake` on this user address of this process.
    Futex { pid: Pid, addr: u64 },
    /// The end of another thread.
    Join(Tid),
    /// The tick count to wake at.
    Sleep(u64),
    /// The end of a process.
    ProcessExit(Pid),
    /// Frames from the network or notices to send (the network thread).
    Network,
    /// The end of the RPC transaction with this id.
    Trans(u64),
    /// A request for this put-port.
    GetRequest(amoeba::Port),
    /// A group event (joined, message) of this group handle.
    Group(u16),
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
    /// Signals raised and not yet delivered (bit n = signal n).
    pub pending_signals: u32,
    /// The user state interrupted by a running signal handler.
    pub signal_saved: Option<Box<TrapFrame>>,
    /// Ticks left in the current time slice.
    pub slice: u32,
    /// The result to return from a blocking system call when woken.
    pub wake_result: i64,
    /// Set when a signal cut a blocking call short.
    pub interrupted: bool,
}

impl Thread {
    pub fn new(tid: Tid, process: Option<Pid>, name: &'static str) -> Self {
        Self {
            tid,
            process,
            name,
            state: ThreadState::Ready,
            context: Context::default(),
            stack: vec![0u128; KERNEL_STACK_SIZE / 16],
            exit_value: 0,
            pending_signals: 0,
            signal_saved: None,
            slice: 0,
            wake_result: 0,
            interrupted: false,
        }
    }

    /// One past the highest address of the kernel stack (16-byte aligned).
    pub fn stack_top(&self) -> usize {
        self.stack.as_ptr() as usize + self.stack.len() * 16
    }

    /// The user state of a user thread: its trap frame sits at the top of
    /// its kernel stack whenever it is in the kernel.
    pub fn user_frame(&mut self) -> &mut TrapFrame {
        let frame = self.stack_top() - core::mem::size_of::<TrapFrame>();
        // SAFETY: for user threads the top of the kernel stack always holds
        // the trap frame of the entry from EL0 (written by `vectors.s` or by
        // `prepare_user_entry`); the stack is owned by this thread and we
        // hold `&mut self`.
        unsafe { &mut *(frame as *mut TrapFrame) }
    }

    /// Sets the thread up to enter EL0 at `entry` with stack `sp` and
    /// arguments in x0..x2.
    pub fn prepare_user_entry(&mut self, entry: u64, sp: u64, args: [u64; 4]) {
        let frame = self.user_frame();
        // SAFETY: a zeroed trap frame is a valid value (plain integers).
        *frame = unsafe { core::mem::zeroed() };
        frame.elr = entry;
        frame.sp_el0 = sp;
        frame.spsr = 0; // EL0t, interrupts unmasked
        frame.x[0] = args[0];
        frame.x[1] = args[1];
        frame.x[2] = args[2];
        frame.x[3] = args[3];
        let frame_address = frame as *mut TrapFrame as usize;
        self.context = Context::for_user_thread(frame_address);
    }

    pub fn is_alive(&self) -> bool {
        self.state != ThreadState::Dead
    }
}
