//! The scheduler's own state and its queueing decisions: who runs, who is
//! ready (kernel threads first, then user threads that just woke from a
//! wait, then user threads whose slice ran out), time slices, the idle and
//! runnable time accounts, and the dead threads whose stacks are freed once
//! another thread runs. It knows threads only by id, so that the host tests
//! it; `sched.rs` ties it to the threads and processes and does the switch.

#![forbid(unsafe_code)]

use crate::call_types::Tid;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Ticks a user thread runs before another may take the CPU.
pub const TIME_SLICE_TICKS: u32 = 1;

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

/// What the scheduler finds of a queued user thread when its turn comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidate {
    /// No longer ready (it died, or was woken twice): the entry is dropped.
    Stale,
    /// It may run now.
    Eligible,
    /// It may not run now (its process is stunned, or another of its threads
    /// holds a run-to-completion process): it waits in turn with the others.
    Held,
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

    /// A thread woke (`kernel`: a kernel thread): kernel threads go before
    /// user threads, and a user thread that waited goes before those that
    /// used up their slice; either way it takes the processor at once.
    pub fn push_woken(&mut self, tid: Tid, kernel: bool) {
        if kernel {
            self.ready_kernel.push_back(tid);
        } else {
            self.woken.push_back(tid);
        }
        self.need_resched = true;
    }

    /// A thread preempted at the end of its turn goes back in line.
    pub fn push_preempted(&mut self, tid: Tid, kernel: bool) {
        if kernel {
            self.ready_kernel.push_back(tid);
        } else {
            self.ready.push_back(tid);
        }
    }

    /// The next thread to run, off its queue: a kernel thread if one is
    /// ready, else the first eligible woken user thread, else the first
    /// eligible one in turn; `None` when nobody can run (the idle thread
    /// then runs). `look` tells what each queued user thread is now.
    pub fn pick(&mut self, mut look: impl FnMut(Tid) -> Candidate) -> Option<Tid> {
        if let Some(tid) = self.ready_kernel.pop_front() {
            return Some(tid);
        }
        while let Some(tid) = self.woken.pop_front() {
            match look(tid) {
                Candidate::Stale => {}
                Candidate::Eligible => return Some(tid),
                Candidate::Held => self.ready.push_back(tid),
            }
        }
        for _ in 0..self.ready.len() {
            let tid = self.ready.pop_front()?;
            match look(tid) {
                Candidate::Stale => {}
                Candidate::Eligible => return Some(tid),
                Candidate::Held => self.ready.push_back(tid),
            }
        }
        None
    }

    /// A timer tick while the current thread runs: a user thread's slice
    /// (`slice`; `None` for a kernel or the idle thread) shrinks, and a
    /// switch is asked for once it is used up; the idle thread makes room as
    /// soon as someone is ready.
    pub fn tick(&mut self, slice: Option<&mut u32>) {
        match slice {
            Some(slice) => {
                *slice = slice.saturating_sub(1);
                if *slice == 0 {
                    self.need_resched = true;
                }
            }
            None if self.current == self.idle && self.has_ready() => self.need_resched = true,
            None => {}
        }
    }

    /// The processor changes hands at `now` (µs since boot): the time since
    /// the last switch, which the caller charges to the current thread's
    /// process unless it is the idle thread (charged here), and the runnable
    /// integral moves on.
    pub fn account(&mut self, now: u64) -> u64 {
        let used = now.saturating_sub(self.switched_at);
        self.switched_at = now;
        self.runnable_us += self.runnable * used;
        if self.current == self.idle {
            self.idle_us += used;
        }
        used
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

    /// The dead threads whose stacks may go now: all but the current one,
    /// which stays a zombie until another thread runs.
    pub fn take_reapable(&mut self) -> Vec<Tid> {
        if self.zombies.is_empty() {
            return Vec::new(); // every switch asks; usually nobody died
        }
        let current = self.current;
        let (keep, reap) = core::mem::take(&mut self.zombies).into_iter().partition(|&tid| tid == current);
        self.zombies = keep;
        reap
    }

    pub fn has_ready(&self) -> bool {
        !(self.ready.is_empty() && self.woken.is_empty() && self.ready_kernel.is_empty())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    const IDLE: Tid = 0;

    fn pick_any(queue: &mut RunQueue) -> Option<Tid> {
        queue.pick(|_| Candidate::Eligible)
    }

    #[test]
    fn kernel_threads_go_first_then_woken_then_preempted_ones() {
        let mut queue = RunQueue::new(IDLE);
        queue.push_preempted(1, false);
        queue.push_woken(2, false);
        queue.push_woken(9, true);
        queue.push_preempted(3, false);
        queue.push_woken(4, false);
        let order: Vec<Option<Tid>> = (0..6).map(|_| pick_any(&mut queue)).collect();
        assert_eq!(order, [Some(9), Some(2), Some(4), Some(1), Some(3), None]);
    }

    #[test]
    fn waking_asks_for_a_switch_and_preemption_does_not() {
        let mut queue = RunQueue::new(IDLE);
        queue.push_preempted(1, false);
        queue.push_preempted(2, true);
        assert!(!queue.need_resched);
        queue.push_woken(3, false);
        assert!(queue.need_resched);
    }

    #[test]
    fn stale_entries_are_dropped_and_held_threads_wait_in_turn() {
        let mut queue = RunQueue::new(IDLE);
        for tid in [1, 2, 3] {
            queue.push_preempted(tid, false);
        }
        queue.push_woken(4, false);
        let look = |tid| match tid {
            1 => Candidate::Stale,
            3 => Candidate::Eligible,
            _ => Candidate::Held,
        };
        assert_eq!(queue.pick(look), Some(3));
        // 4 woke but is held: it joined the line behind 3; 2 went round once.
        assert_eq!(queue.ready, [4, 2]);
        assert_eq!(queue.pick(|_| Candidate::Held), None);
        assert_eq!(queue.ready, [4, 2], "nobody eligible: the line stays as it was");
    }

    #[test]
    fn a_user_slice_runs_out_after_its_ticks() {
        let mut queue = RunQueue::new(IDLE);
        queue.current = 5;
        let mut slice = TIME_SLICE_TICKS;
        let mut ticks = 0;
        while !queue.need_resched {
            queue.tick(Some(&mut slice));
            ticks += 1;
            assert!(ticks <= TIME_SLICE_TICKS, "the slice outlasted its ticks");
        }
        assert_eq!((ticks, slice), (TIME_SLICE_TICKS, 0));
        queue.need_resched = false;
        queue.tick(Some(&mut slice));
        assert_eq!(slice, 0, "a used-up slice stays used up");
        assert!(queue.need_resched);
    }

    #[test]
    fn the_idle_thread_makes_room_once_someone_is_ready() {
        let mut queue = RunQueue::new(IDLE);
        queue.tick(None);
        assert!(!queue.need_resched, "nobody ready: idle goes on");
        queue.push_preempted(3, false);
        queue.tick(None);
        assert!(queue.need_resched);
        // A kernel thread has no slice: a tick does not end its turn.
        queue.need_resched = false;
        queue.current = 7;
        queue.tick(None);
        assert!(!queue.need_resched);
    }

    #[test]
    fn time_goes_to_idleness_or_back_to_the_caller_and_the_runnable_integral_grows() {
        let mut queue = RunQueue::new(IDLE);
        assert_eq!(queue.account(100), 100);
        assert_eq!(queue.idle_us, 100);
        queue.current = 4;
        queue.runnable = 2;
        assert_eq!(queue.account(250), 150);
        assert_eq!(queue.idle_us, 100, "a user thread's time is not idle time");
        assert_eq!(queue.runnable_us, 300);
        assert_eq!(queue.account(200), 0, "a clock read behind the last switch charges nothing");
        assert_eq!(queue.switched_at, 200);
    }

    #[test]
    fn a_dead_thread_leaves_every_queue_and_its_stack_waits_while_in_use() {
        let mut queue = RunQueue::new(IDLE);
        queue.push_preempted(3, false);
        queue.push_woken(3, false);
        queue.push_woken(3, true);
        queue.push_preempted(5, false);
        queue.current = 3;
        queue.need_resched = false;
        queue.forget(3);
        assert!(queue.need_resched, "the running thread died: someone else must run");
        assert_eq!(pick_any(&mut queue), Some(5));
        assert_eq!(pick_any(&mut queue), None);
        assert!(queue.take_reapable().is_empty(), "its stack is still in use");
        queue.current = 5;
        assert_eq!(queue.take_reapable(), [3]);
        assert!(queue.zombies.is_empty());
    }

    proptest! {
        /// Threads that always run to the end of their slice share the
        /// processor in strict turn: every `n` picks run each of `n` once.
        #[test]
        fn busy_threads_take_strict_turns(n in 1u32..8, rounds in 1usize..20) {
            let mut queue = RunQueue::new(IDLE);
            for tid in 1..=n {
                queue.push_preempted(tid, false);
            }
            let mut runs: Vec<Tid> = Vec::new();
            for _ in 0..rounds * n as usize {
                let tid = pick_any(&mut queue).unwrap();
                runs.push(tid);
                queue.push_preempted(tid, false);
            }
            for window in runs.chunks(n as usize) {
                let mut sorted = window.to_vec();
                sorted.sort_unstable();
                prop_assert_eq!(sorted, (1..=n).collect::<Vec<_>>());
            }
        }

        /// Against a model of thread states, under any wakes, blocks, deaths
        /// and switches: a picked thread is ready, a woken one goes before
        /// one that used up its slice, and nobody ready is ever lost.
        #[test]
        fn no_ready_thread_is_lost_and_woken_ones_go_first(ops in proptest::collection::vec((0u8..4, 1u32..7), 1..200)) {
            #[derive(Clone, Copy, PartialEq, Debug)]
            enum State { Blocked, Ready, Running, Dead }
            let mut queue = RunQueue::new(IDLE);
            let mut states: BTreeMap<Tid, (State, bool)> = (1..7).map(|tid| (tid, (State::Blocked, false))).collect();
            let mut current: Option<Tid> = None;
            for (op, tid) in ops {
                match op {
                    // A wake (the core wakes only threads that wait).
                    0 => {
                        let entry = states.get_mut(&tid).unwrap();
                        if entry.0 == State::Blocked {
                            *entry = (State::Ready, true);
                            queue.push_woken(tid, false);
                        }
                    }
                    // The running thread blocks.
                    1 => {
                        if let Some(running) = current.take() {
                            states.insert(running, (State::Blocked, false));
                        }
                    }
                    // A thread dies.
                    2 => {
                        states.insert(tid, (State::Dead, false));
                        queue.forget(tid);
                        if current == Some(tid) {
                            current = None;
                        }
                    }
                    // A switch: the running thread goes back in line, another is picked.
                    _ => {
                        if let Some(running) = current.take() {
                            states.insert(running, (State::Ready, false));
                            queue.push_preempted(running, false);
                        }
                        let look = |tid: Tid| if states[&tid].0 == State::Ready { Candidate::Eligible } else { Candidate::Stale };
                        let picked = queue.pick(look);
                        let any_ready = states.values().any(|s| s.0 == State::Ready);
                        let any_woken = states.values().any(|s| *s == (State::Ready, true));
                        match picked {
                            Some(tid) => {
                                prop_assert_eq!(states[&tid].0, State::Ready);
                                prop_assert!(!any_woken || states[&tid].1, "{} ran before a woken thread", tid);
                                states.insert(tid, (State::Running, false));
                                current = Some(tid);
                            }
                            None => prop_assert!(!any_ready, "a ready thread was lost"),
                        }
                    }
                }
            }
        }
    }
}
