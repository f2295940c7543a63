//! The scheduler's own state: who runs, who is ready (kernel threads
//! first, then user threads that just woke from a wait, then user threads
//! whose slice ran out), and the dead threads whose stacks are freed once
//! another thread runs. The decisions are in `sched.rs`.

#![forbid(unsafe_code)]

use super::thread::Tid;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

pub struct RunQueue {
    /// User threads whose slice ran out, in turn.
    pub ready: VecDeque<Tid>,
    /// User threads that woke from a wait (a request, a reply, a lock, their
    /// time), which go before those in `ready`: a server behind CPU-bound
    /// programs answers within one slice, not one slice per program.
    pub woken: VecDeque<Tid>,
    pub ready_kernel: VecDeque<Tid>,
    pub current: Tid,
    pub idle: Tid,
    pub need_resched: bool,
    /// Dead threads whose stacks are freed once another thread runs.
    pub zombies: Vec<Tid>,
    /// When the current thread got the processor (µs since boot).
    pub switched_at: u64,
    /// Microseconds the idle thread has had the processor.
    pub idle_us: u64,
    /// User threads ready or running as of the last switch.
    pub runnable: u64,
    /// The integral of `runnable` over time (thread-microseconds).
    pub runnable_us: u64,
}

impl RunQueue {
    pub fn new(idle: Tid) -> Self {
        Self {
            ready: VecDeque::new(),
            woken: VecDeque::new(),
            ready_kernel: VecDeque::new(),
            current: idle,
            idle,
            need_resched: false,
            zombies: Vec::new(),
            switched_at: 0,
            idle_us: 0,
            runnable: 0,
            runnable_us: 0,
        }
    }

    /// A thread died: it leaves the queues, and its stack goes once it is
    /// no longer the one in use.
    pub fn forget(&mut self, tid: Tid) {
        self.zombies.push(tid);
        self.ready.retain(|&t| t != tid);
        self.woken.retain(|&t| t != tid);
        self.ready_kernel.retain(|&t| t != tid);
        if tid == self.current {
            self.need_resched = true;
        }
    }

    pub fn has_ready(&self) -> bool {
        !(self.ready.is_empty() && self.woken.is_empty() && self.ready_kernel.is_empty())
    }
}
