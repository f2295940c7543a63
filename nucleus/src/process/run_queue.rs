//! The scheduler's own state: who runs, who is ready (kernel threads
//! before user threads), and the dead threads whose stacks are freed once
//! another thread runs. The decisions are in `sched.rs`.

#![forbid(unsafe_code)]

use super::thread::Tid;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

pub struct RunQueue {
    pub ready: VecDeque<Tid>,
    pub ready_kernel: VecDeque<Tid>,
    pub current: Tid,
    pub idle: Tid,
    pub need_resched: bool,
    /// Dead threads whose stacks are freed once another thread runs.
    pub zombies: Vec<Tid>,
}

impl RunQueue {
    pub fn new(idle: Tid) -> Self {
        Self {
            ready: VecDeque::new(),
            ready_kernel: VecDeque::new(),
            current: idle,
            idle,
            need_resched: false,
            zombies: Vec::new(),
        }
    }

    /// A thread died: it leaves the queues, and its stack goes once it is
    /// no longer the one in use.
    pub fn forget(&mut self, tid: Tid) {
        self.zombies.push(tid);
        self.ready.retain(|&t| t != tid);
        self.ready_kernel.retain(|&t| t != tid);
        if tid == self.current {
            self.need_resched = true;
        }
    }

    pub fn has_ready(&self) -> bool {
        !(self.ready.is_empty() && self.ready_kernel.is_empty())
    }
}
