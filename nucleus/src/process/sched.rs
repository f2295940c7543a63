//! Scheduling: run queues (kernel threads before user threads), time
//! slices, run-to-completion holders, blocking and waking, and the thread
//! switch itself. The queueing decisions are the host-tested
//! `nucleus::run_queue`; this ties them to the threads and processes.

use super::outcome::{AfterWake, Parked};
use super::thread::{Pid, Thread, ThreadState, Tid, Wait};
use super::{Core, Process, ProcessState, with};
use crate::arch::context::{self, Context};
use crate::arch::{cpu, mmu};
use crate::drivers::timer;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use nucleus::run_queue::{Candidate, TIME_SLICE_TICKS};

impl Core {
    /// Sets `tid`'s state. Every change of a thread's state goes through
    /// here, so that the count of runnable user threads stays true (the
    /// load meter reads it at each switch, without a walk over the threads).
    pub(super) fn set_state(&mut self, tid: Tid, state: ThreadState) {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        let old = core::mem::replace(&mut thread.state, state);
        if old == state {
            return;
        }
        if thread.process.is_some() {
            match (is_runnable(old), is_runnable(state)) {
                (false, true) => self.runnable_users += 1,
                (true, false) => self.runnable_users = self.runnable_users.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// Adds a new thread (ready, not yet queued) to the board's threads.
    pub(super) fn insert_thread(&mut self, thread: Box<Thread>) {
        if thread.process.is_some() && is_runnable(thread.state) {
            self.runnable_users += 1;
        }
        self.threads.insert(thread.tid, thread);
    }

    /// Puts a woken thread on its run queue.
    pub fn make_ready(&mut self, tid: Tid) {
        let Some(kernel) = self.threads.get(&tid).filter(|t| t.is_alive()).map(|t| t.process.is_none())
        else {
            return;
        };
        self.set_state(tid, ThreadState::Ready);
        // Kernel threads (the network path) go before user threads, at once;
        // a user thread that waited goes before those that used up their
        // slice, and takes the processor from a user thread at once; one
        // that runs without waiting is back in turn after its slice.
        self.sched.push_woken(tid, kernel);
    }

    /// Puts a thread preempted at the end of its turn back in the queue.
    fn enqueue(&mut self, tid: Tid) {
        let Some(kernel) = self.threads.get(&tid).filter(|t| t.is_alive()).map(|t| t.process.is_none())
        else {
            return;
        };
        self.set_state(tid, ThreadState::Ready);
        self.sched.push_preempted(tid, kernel);
    }

    /// Wakes every thread blocked on `wait`, handing each `result`.
    pub fn wake_all(&mut self, wait: Wait, result: i64) -> usize {
        self.wake_some(wait, usize::MAX, result)
    }

    /// Wakes `tid` with `value` if it still waits for `wait`.
    pub fn wake_waiter(&mut self, tid: Tid, wait: Wait, value: i64) {
        if self.is_waiting(tid, wait) {
            self.thread_mut(tid).wake_result = value;
            self.make_ready(tid);
        }
    }

    fn thread_mut(&mut self, tid: Tid) -> &mut super::thread::Thread {
        self.threads.get_mut(&tid).expect("a thread that waits exists")
    }

    /// Wakes at most `count` threads blocked on `wait`, handing each
    /// `result`. One pass over the threads, and no allocation: a wake-up
    /// costs the same whatever the heap's state.
    pub fn wake_some(&mut self, wait: Wait, count: usize, result: i64) -> usize {
        let mut woken = 0;
        let mut from = 0;
        while woken < count {
            let Some(tid) = self.next_blocked(from, |w| w == wait) else { break };
            self.thread_mut(tid).wake_result = result;
            self.make_ready(tid);
            woken += 1;
            from = tid + 1;
        }
        woken
    }

    /// The first thread from `from` on that is blocked on a wait `matches` takes.
    fn next_blocked(&self, from: Tid, matches: impl Fn(Wait) -> bool) -> Option<Tid> {
        self.threads
            .range(from..)
            .find(|(_, t)| matches!(t.state, ThreadState::Blocked(wait) if matches(wait)))
            .map(|(&tid, _)| tid)
    }

    /// Blocks the current thread on `wait`; the system call it is in ends
    /// once it is woken, as `then` says.
    pub fn block_current(&mut self, wait: Wait, then: AfterWake) -> Parked {
        let current = self.sched.current;
        let thread = self.current_thread();
        thread.interrupted = false;
        thread.wake_result = 0;
        self.set_state(current, ThreadState::Blocked(wait));
        self.release_holder(current);
        self.sched.need_resched = true;
        Parked::new(then)
    }

    /// Takes back [`Core::block_current`] when no wake came in between:
    /// the current thread runs on. False if it was woken meanwhile (it is
    /// then on a run queue and must go through the scheduler).
    pub fn cancel_block(&mut self) -> bool {
        let current = self.sched.current;
        let still_blocked = matches!(self.current_thread().state, ThreadState::Blocked(_));
        if still_blocked {
            self.set_state(current, ThreadState::Running);
        }
        still_blocked
    }

    pub(super) fn release_holder(&mut self, tid: Tid) {
        if let Some(pid) = self.threads.get(&tid).and_then(|t| t.process)
            && let Some(process) = self.processes.get_mut(&pid)
            && process.holder == Some(tid)
        {
            process.holder = None;
        }
    }

    /// Blocks the current thread until `deadline` (µs since boot) and asks
    /// the timer for an interrupt then.
    pub fn sleep_until(&mut self, deadline: u64) -> Parked {
        let parked = self.block_current(Wait::Sleep(deadline), AfterWake::ReturnWakeResult);
        timer::wake_at(deadline);
        parked
    }

    /// Timer interrupt (IRQ context) at `now` µs since boot: the network
    /// thread wakes if its deadline passed, sleepers whose time has come
    /// wake, and on a tick (`ticked`) slices run out. Then the timer is
    /// asked for the next deadline still ahead.
    pub fn timer_interrupt(&mut self, ticked: bool, now: u64) {
        if self.network_deadline.is_some_and(|deadline| deadline <= now) {
            self.set_network_deadline(None);
            self.wake_all(Wait::Network, 0);
        }
        self.wake_sleepers(now);
        if ticked {
            self.tick();
        }
        if let Some(next) = self.next_sleeper() {
            timer::wake_at(next);
        }
    }

    /// When the network thread must next look at the services' timers.
    pub fn network_deadline(&self) -> Option<u64> {
        self.network_deadline
    }

    /// When the network thread must next look at the services' timers
    /// (`None`: no timer); the timer is set to wake the core then, exactly.
    pub fn set_network_deadline(&mut self, deadline: Option<u64>) {
        self.network_deadline = deadline;
        timer::set_services_wake(deadline);
    }

    /// Wakes the sleepers whose deadline is `now` or earlier.
    fn wake_sleepers(&mut self, now: u64) {
        let mut from = 0;
        while let Some(tid) = self.next_blocked(from, |wait| matches!(wait, Wait::Sleep(at) if at <= now)) {
            self.make_ready(tid);
            from = tid + 1;
        }
    }

    /// The earliest deadline of a sleeping thread (the network thread's
    /// has a wake-up of its own: [`Self::set_network_deadline`]).
    fn next_sleeper(&self) -> Option<u64> {
        self.threads
            .values()
            .filter_map(|t| match t.state {
                ThreadState::Blocked(Wait::Sleep(at)) => Some(at),
                _ => None,
            })
            .min()
    }

    fn tick(&mut self) {
        let current = self.sched.current;
        // Only user threads have slices.
        let slice = self.threads.get_mut(&current).filter(|t| t.process.is_some()).map(|t| &mut t.slice);
        self.sched.tick(slice);
    }

    /// Chooses the next thread, updating queues and states.
    fn pick_next(&mut self) -> Tid {
        let current = self.sched.current;
        if current != self.sched.idle
            && self.threads.get(&current).is_some_and(|t| t.state == ThreadState::Running)
        {
            self.enqueue(current);
        }
        let (threads, processes) = (&self.threads, &self.processes);
        match self.sched.pick(|tid| candidate(threads, processes, tid)) {
            Some(tid) => self.chosen(tid),
            None => self.sched.idle,
        }
    }

    /// `tid` runs next: in a run-to-completion process it becomes the holder.
    fn chosen(&mut self, tid: Tid) -> Tid {
        if let Some(pid) = self.threads[&tid].process
            && let Some(process) = self.processes.get_mut(&pid)
            && process.run_to_completion
        {
            process.holder = Some(tid);
        }
        tid
    }

    /// Frees threads that died, except the one whose stack is in use.
    fn reap(&mut self) {
        for tid in self.sched.take_reapable() {
            self.threads.remove(&tid);
        }
    }

    /// Makes `next` the running thread: its state, slice, and the TTBR0
    /// value of its address space (`None` for a kernel thread).
    fn switch_to(&mut self, next: Tid) -> Option<u64> {
        self.account_cpu();
        self.sched.current = next;
        self.set_state(next, ThreadState::Running);
        self.sched.runnable = self.runnable_users;
        let thread = self.threads.get_mut(&next).expect("picked thread exists");
        thread.slice = TIME_SLICE_TICKS;
        thread
            .process
            .and_then(|pid| self.processes.get(&pid))
            .and_then(|p| p.space.as_ref())
            .map(|s| s.ttbr0())
    }

    /// Charges the time since the last switch to the thread that had the
    /// processor (and its process), or to idleness.
    fn account_cpu(&mut self) {
        let used = self.sched.account(timer::uptime_micros());
        let current = self.sched.current;
        if current != self.sched.idle
            && let Some(pid) = self.threads.get(&current).and_then(|t| t.process)
            && let Some(process) = self.processes.get_mut(&pid)
        {
            process.cpu_us += used;
        }
    }

    /// Microseconds the processor has been idle since boot.
    pub fn idle_us(&self) -> u64 {
        self.sched.idle_us
    }

    /// User threads ready or running now (kept as their states change).
    pub fn runnable_now(&self) -> u64 {
        self.runnable_users
    }

    /// Runnable user threads integrated over time since boot (thread-µs), up
    /// to the last switch.
    pub fn runnable_us(&self) -> u64 {
        self.sched.runnable_us
    }

    /// Whether a thread switch is asked for.
    pub fn need_resched(&self) -> bool {
        self.sched.need_resched
    }

    /// Asks for a thread switch at the next chance.
    pub fn request_resched(&mut self) {
        self.sched.need_resched = true;
    }
}

/// Whether a thread in `state` is ready or running.
fn is_runnable(state: ThreadState) -> bool {
    matches!(state, ThreadState::Ready | ThreadState::Running)
}

/// What a queued thread is to the scheduler now: stale once it is no longer
/// ready; held while its process is stunned or another of its threads holds
/// it run-to-completion; eligible otherwise.
fn candidate(
    threads: &BTreeMap<Tid, Box<Thread>>,
    processes: &BTreeMap<Pid, Process>,
    tid: Tid,
) -> Candidate {
    let Some(thread) = threads.get(&tid).filter(|t| t.state == ThreadState::Ready) else {
        return Candidate::Stale;
    };
    let Some(pid) = thread.process else {
        return Candidate::Eligible;
    };
    let eligible = processes.get(&pid).is_some_and(|process| {
        process.state == ProcessState::Running
            && (!process.run_to_completion || process.holder.is_none_or(|holder| holder == tid))
    });
    if eligible { Candidate::Eligible } else { Candidate::Held }
}

/// Switches to the next thread if one should run. Call with IRQs masked
/// or from an exception handler; returns when this thread runs again.
pub fn schedule() {
    let switch = with(|core| {
        core.sched.need_resched = false;
        let previous = core.sched.current;
        let next = core.pick_next();
        if next == previous {
            core.switch_to(next);
            return None;
        }
        let ttbr0 = core.switch_to(next);
        let from: *mut Context =
            &mut core.threads.get_mut(&previous).expect("previous thread exists").context;
        let to: *const Context = &core.threads[&next].context;
        Some((from, to, ttbr0))
    });
    if let Some((from, to, ttbr0)) = switch {
        // Kernel threads (`None`) never touch the user half: they leave the
        // last user space in place, so that switching back to it is free.
        if ttbr0.is_some() {
            mmu::activate(ttbr0);
        }
        // SAFETY: both threads are boxed in the core's table and are not
        // freed while switching (dead threads are reaped only by another
        // thread, after this switch); IRQs are masked by our caller.
        unsafe { context::switch(from, to) };
    }
    with(|core| core.reap());
}

/// The end of a kernel thread's function (called from `context.s`).
// SAFETY: the only symbol of that name; `context.s` calls it without arguments.
#[unsafe(no_mangle)]
extern "C" fn kernel_thread_exit() -> ! {
    cpu::disable_irqs();
    with(|core| {
        let current = core.sched.current;
        core.kill_thread(current);
    });
    schedule();
    unreachable!("a dead thread was scheduled");
}

/// Blocks the current kernel thread until `wait` is signalled (or `ready`
/// already holds), then returns with IRQs as they were.
///
/// The thread counts as blocked *before* `ready` is asked: `ready` goes
/// through the services, whose settling may finish the very thing waited
/// for and wake the waiter then. A wake given to a thread still marked
/// running would be lost, and the thread would sleep for ever.
pub fn block_unless(wait: Wait, ready: impl Fn() -> bool) {
    let were_enabled = cpu::disable_irqs();
    with(|core| drop(core.block_current(wait, AfterWake::ReturnWakeResult)));
    if !ready() || !with(|core| core.cancel_block()) {
        // Not ready, or ready and already woken (then it is queued to run).
        schedule();
    }
    cpu::restore_irqs(were_enabled);
}

/// The idle thread's loop: sleep until an interrupt (with the tick
/// slowed: no slice to end), run whoever is ready.
pub fn idle_loop() -> ! {
    loop {
        cpu::disable_irqs();
        if with(|core| core.sched.need_resched || core.sched.has_ready()) {
            schedule();
        } else {
            timer::set_idle(true);
            cpu::wait_for_interrupt();
            timer::set_idle(false);
        }
        cpu::enable_irqs();
    }
}
