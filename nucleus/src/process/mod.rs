//! Processes, threads and scheduling: the part of the nucleus that runs
//! user programs. All of it lives in one `Kernel` behind one IRQ-masking
//! lock: the board has one core, so the lock only keeps interrupt handlers
//! out, and it is never held across a thread switch.

pub mod loader;
pub mod syscall;
pub mod thread;
pub mod user_memory;

use crate::arch::context::{self, Context};
use crate::arch::exception::TrapFrame;
use crate::arch::mmu::{self, AddressSpace, MapFlags};
use crate::memory::segments::{SegmentId, SegmentTable};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use amoeba::syscall::{EXIT_DESTROYED, EXIT_FAULT, EXIT_SIGNAL_BASE, SCHED_RUN_TO_COMPLETION};
use amoeba::{Capability, Check, Port, Rights, Status};
use nucleus::asid::AsidAllocator;
use pool_control::Mac;
pub use thread::{Pid, Thread, ThreadState, Tid, Wait};

/// Ticks a user thread runs before another may take the CPU.
const TIME_SLICE_TICKS: u32 = 1;
/// Exited processes whose status stays available (to `process_wait`,
/// inspection, the process server) after they ended; older ones are
/// forgotten.
const EXITED_RECORDS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    Running,
    Stunned,
    Exited(i32),
}

/// One mapped segment of a process.
#[derive(Clone, Copy, Debug)]
pub struct Mapping {
    pub va: usize,
    pub len: usize,
    pub segment: SegmentId,
    pub flags: MapFlags,
}

/// What a signal does to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Default,
    Ignore,
    Catch(u64),
}

pub struct Process {
    pub name: String,
    /// Gone once the process has exited.
    pub space: Option<AddressSpace>,
    pub mappings: Vec<Mapping>,
    pub threads: Vec<Tid>,
    pub state: ProcessState,
    pub run_to_completion: bool,
    /// For run-to-completion: the thread that has the CPU until it blocks.
    pub holder: Option<Tid>,
    random: Check,
    /// Who asked for this process over the network, to be told of its exit.
    pub notify: Option<Mac>,
    pub signals: [Disposition; amoeba::syscall::SIGNALS as usize],
    /// Exit values of ended threads nobody has joined yet.
    pub exited_threads: BTreeMap<Tid, u64>,
}

impl Process {
    /// The mapping that holds all of `va..va+len`.
    pub fn mapping_for(&self, va: u64, len: u64) -> Option<&Mapping> {
        let start = usize::try_from(va).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.mappings.iter().find(|m| m.va <= start && end <= m.va + m.len)
    }
}

/// A notice for the network thread to send.
pub enum Notice {
    ProcessExited { to: Mac, pid: Pid, status: i32 },
}

pub struct Kernel {
    pub threads: BTreeMap<Tid, Box<Thread>>,
    pub processes: BTreeMap<Pid, Process>,
    pub segments: SegmentTable,
    pub process_port: Port,
    rng: amoeba::Rng,
    ready: VecDeque<Tid>,
    ready_kernel: VecDeque<Tid>,
    pub current: Tid,
    idle: Tid,
    pub need_resched: bool,
    zombies: Vec<Tid>,
    next_tid: Tid,
    next_pid: Pid,
    asids: AsidAllocator,
    /// Exited processes whose records (exit status) are still kept, oldest
    /// first: a bounded number, so that processes can come and go forever.
    exited: VecDeque<Pid>,
    pub ticks: u64,
    pub outbox: VecDeque<Notice>,
    pub bundle: &'static [u8],
    pub rpc: crate::rpc::Rpc,
    pub groups: crate::group::Groups,
    /// When the RPC endpoint next wants `handle_timeout` (µs since boot).
    pub rpc_deadline: Option<u64>,
}

static KERNEL: IrqMutex<Option<Kernel>> = IrqMutex::new(None);

/// Runs `f` on the kernel state with IRQs masked.
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
    let mut guard = KERNEL.lock();
    f(guard.as_mut().expect("process::init ran"))
}

/// Sets up the kernel state; the calling (boot) thread becomes the idle thread.
pub fn init(
    segments: SegmentTable,
    rng: amoeba::Rng,
    bundle: &'static [u8],
    rpc: crate::rpc::Rpc,
    asid_limit: u16,
) {
    mmu::init();
    let mut kernel = Kernel {
        threads: BTreeMap::new(),
        processes: BTreeMap::new(),
        segments,
        process_port: Port::default(),
        rng,
        ready: VecDeque::new(),
        ready_kernel: VecDeque::new(),
        current: 0,
        idle: 0,
        need_resched: false,
        zombies: Vec::new(),
        next_tid: 1,
        next_pid: 1,
        asids: AsidAllocator::new(asid_limit.min(mmu::max_asid())),
        exited: VecDeque::new(),
        ticks: 0,
        outbox: VecDeque::new(),
        bundle,
        rpc,
        groups: crate::group::Groups::default(),
        rpc_deadline: None,
    };
    // The process server's get-port is the nucleus' secret; its put-port
    // names every process capability of this board.
    let process_server = amoeba::GetPort::random(&mut kernel.rng);
    kernel.process_port = process_server.put_port();
    kernel.rpc.endpoint.register_server(&process_server);
    let mut idle = Box::new(Thread::new(0, None, "idle"));
    idle.state = ThreadState::Running;
    kernel.threads.insert(0, idle);
    *KERNEL.lock() = Some(kernel);
}

impl Kernel {
    pub fn random_check(&mut self) -> Check {
        self.rng.check()
    }

    pub fn current_thread(&mut self) -> &mut Thread {
        self.threads.get_mut(&self.current).expect("the current thread exists")
    }

    pub fn current_pid(&self) -> Option<Pid> {
        self.threads.get(&self.current).and_then(|t| t.process)
    }

    fn new_tid(&mut self) -> Tid {
        let tid = self.next_tid;
        self.next_tid += 1;
        tid
    }

    /// Starts a kernel thread running `entry(arg)`.
    pub fn spawn_kernel_thread(
        &mut self,
        name: &'static str,
        entry: extern "C" fn(usize),
        arg: usize,
    ) -> Tid {
        let tid = self.new_tid();
        let mut thread = Box::new(Thread::new(tid, None, name));
        thread.context = Context::for_kernel_thread(thread.stack_top(), entry, arg);
        self.threads.insert(tid, thread);
        self.make_ready(tid);
        tid
    }

    /// Puts a woken thread on its run queue.
    pub fn make_ready(&mut self, tid: Tid) {
        if self.enqueue(tid) && self.threads[&tid].process.is_none() {
            // Kernel threads (the network path) go before user threads.
            self.need_resched = true;
        }
    }

    fn enqueue(&mut self, tid: Tid) -> bool {
        let Some(thread) = self.threads.get_mut(&tid) else {
            return false;
        };
        if !thread.is_alive() {
            return false;
        }
        thread.state = ThreadState::Ready;
        if thread.process.is_none() {
            self.ready_kernel.push_back(tid);
        } else {
            self.ready.push_back(tid);
        }
        true
    }

    /// Wakes every thread blocked on `wait`, handing each `result`.
    pub fn wake_all(&mut self, wait: Wait, result: i64) -> usize {
        let woken: Vec<Tid> =
            self.threads.values().filter(|t| t.state == ThreadState::Blocked(wait)).map(|t| t.tid).collect();
        for &tid in &woken {
            if let Some(thread) = self.threads.get_mut(&tid) {
                thread.wake_result = result;
            }
            self.make_ready(tid);
        }
        woken.len()
    }

    /// Wakes `tid` with `value` if it still waits for `wait` (it may have
    /// been interrupted or killed meanwhile).
    pub fn wake_waiter(&mut self, tid: Tid, wait: Wait, value: i64) {
        if let Some(thread) = self.threads.get_mut(&tid)
            && thread.state == ThreadState::Blocked(wait)
        {
            thread.wake_result = value;
            self.make_ready(tid);
        }
    }

    /// Wakes at most `count` threads blocked on `wait`.
    pub fn wake_some(&mut self, wait: Wait, count: usize) -> usize {
        let woken: Vec<Tid> = self
            .threads
            .values()
            .filter(|t| t.state == ThreadState::Blocked(wait))
            .map(|t| t.tid)
            .take(count)
            .collect();
        for &tid in &woken {
            if let Some(thread) = self.threads.get_mut(&tid) {
                thread.wake_result = 0;
            }
            self.make_ready(tid);
        }
        woken.len()
    }

    /// Blocks the current thread; the caller then calls `schedule()`.
    pub fn block_current(&mut self, wait: Wait) {
        let current = self.current;
        self.current_thread().state = ThreadState::Blocked(wait);
        self.release_holder(current);
        self.need_resched = true;
    }

    fn release_holder(&mut self, tid: Tid) {
        if let Some(pid) = self.threads.get(&tid).and_then(|t| t.process)
            && let Some(process) = self.processes.get_mut(&pid)
            && process.holder == Some(tid)
        {
            process.holder = None;
        }
    }

    /// Timer interrupt (IRQ context): RPC deadlines, and on a tick sleepers
    /// wake and slices run out.
    pub fn timer_interrupt(&mut self, ticked: bool) {
        if self.rpc_deadline.is_some_and(|deadline| deadline <= crate::drivers::timer::uptime_micros()) {
            self.rpc_deadline = None;
            self.wake_all(Wait::Network, 0);
        }
        if ticked {
            self.tick();
        }
    }

    fn tick(&mut self) {
        self.ticks = crate::drivers::timer::ticks();
        let now = self.ticks;
        let due: Vec<Tid> = self
            .threads
            .values()
            .filter(|t| matches!(t.state, ThreadState::Blocked(Wait::Sleep(at)) if at <= now))
            .map(|t| t.tid)
            .collect();
        for tid in due {
            self.make_ready(tid);
        }
        let current = self.current;
        let thread = self.current_thread();
        if thread.process.is_some() {
            thread.slice = thread.slice.saturating_sub(1);
            if thread.slice == 0 {
                self.need_resched = true;
            }
        } else if current == self.idle && !(self.ready.is_empty() && self.ready_kernel.is_empty()) {
            self.need_resched = true;
        }
    }

    /// Whether `tid` may run now.
    fn eligible(&self, tid: Tid) -> bool {
        let Some(thread) = self.threads.get(&tid) else {
            return false;
        };
        let Some(pid) = thread.process else {
            return true;
        };
        let Some(process) = self.processes.get(&pid) else {
            return false;
        };
        match process.state {
            ProcessState::Running => {}
            ProcessState::Stunned | ProcessState::Exited(_) => return false,
        }
        !process.run_to_completion || process.holder.is_none_or(|holder| holder == tid)
    }

    /// Chooses the next thread, updating queues and states.
    fn pick_next(&mut self) -> Tid {
        let current = self.current;
        if current != self.idle && self.threads.get(&current).is_some_and(|t| t.state == ThreadState::Running)
        {
            self.enqueue(current);
        }
        if let Some(tid) = self.ready_kernel.pop_front() {
            return tid;
        }
        for _ in 0..self.ready.len() {
            let Some(tid) = self.ready.pop_front() else {
                break;
            };
            if self.threads.get(&tid).is_none_or(|t| t.state != ThreadState::Ready) {
                continue; // stale entry
            }
            if self.eligible(tid) {
                if let Some(pid) = self.threads[&tid].process
                    && let Some(process) = self.processes.get_mut(&pid)
                    && process.run_to_completion
                {
                    process.holder = Some(tid);
                }
                return tid;
            }
            self.ready.push_back(tid);
        }
        self.idle
    }

    /// Frees threads that died, except the one whose stack is in use.
    fn reap(&mut self) {
        let current = self.current;
        let mut keep = Vec::new();
        for tid in self.zombies.drain(..) {
            if tid == current {
                keep.push(tid);
            } else {
                self.threads.remove(&tid);
            }
        }
        self.zombies = keep;
    }

    /// Marks a thread dead; it never runs again.
    pub fn kill_thread(&mut self, tid: Tid) {
        self.release_holder(tid);
        let Some(thread) = self.threads.get_mut(&tid) else {
            return;
        };
        if !thread.is_alive() {
            return;
        }
        thread.state = ThreadState::Dead;
        let value = thread.exit_value as i64;
        let process = thread.process;
        self.zombies.push(tid);
        self.ready.retain(|&t| t != tid);
        self.ready_kernel.retain(|&t| t != tid);
        let joined = self.wake_all(Wait::Join(tid), value) > 0;
        if let Some(pid) = process
            && let Some(p) = self.processes.get_mut(&pid)
        {
            p.threads.retain(|&t| t != tid);
            if !joined {
                p.exited_threads.insert(tid, value as u64);
            }
            if p.threads.is_empty() && !matches!(p.state, ProcessState::Exited(_)) {
                self.exit_process(pid, 0);
            }
        }
        if tid == self.current {
            self.need_resched = true;
        }
    }

    /// Ends a process: threads die, mappings go, its segments are destroyed,
    /// waiters and the host hear the status.
    pub fn exit_process(&mut self, pid: Pid, status: i32) {
        let is_current = self.current_pid() == Some(pid);
        let Some(process) = self.processes.get_mut(&pid) else {
            return;
        };
        if matches!(process.state, ProcessState::Exited(_)) {
            return;
        }
        process.state = ProcessState::Exited(status);
        let threads = core::mem::take(&mut process.threads);
        let mappings = core::mem::take(&mut process.mappings);
        let notify = process.notify.take();
        let space = process.space.take();
        process.exited_threads.clear();
        if is_current {
            mmu::activate(None);
        }
        if let Some(space) = space {
            let asid = space.asid();
            // Dropping the space invalidates the TLB entries of its ASID,
            // so the next owner of the id sees none of them.
            drop(space);
            self.asids.release(asid);
        }
        self.exited.push_back(pid);
        while self.exited.len() > EXITED_RECORDS {
            let oldest = self.exited.pop_front().expect("more than EXITED_RECORDS");
            self.processes.remove(&oldest);
        }
        self.rpc_forget_process(pid, &threads);
        self.group_forget_process(pid);
        for tid in threads {
            self.kill_thread(tid);
        }
        for mapping in mappings {
            self.segments.unmapped(mapping.segment);
        }
        self.segments.destroy_owned_by(pid);
        self.wake_all(Wait::ProcessExit(pid), status as i64);
        if let Some(to) = notify {
            self.outbox.push_back(Notice::ProcessExited { to, pid, status });
            self.wake_all(Wait::Network, 0);
        }
        crate::println!("nucleus: process {pid} exited with status {status}");
    }

    /// Removes an exited process whose status nobody can ask for any more.
    pub fn forget_process(&mut self, pid: Pid) {
        if matches!(self.processes.get(&pid).map(|p| p.state), Some(ProcessState::Exited(_))) {
            self.processes.remove(&pid);
            self.exited.retain(|&exited| exited != pid);
        }
    }

    /// Creates an empty process (no threads yet).
    pub fn new_process(&mut self, name: &str, run_to_completion: bool) -> Result<Pid, Status> {
        let asid = self.asids.allocate().ok_or(Status::NoSpace)?;
        let space = match AddressSpace::new(asid) {
            Ok(space) => space,
            Err(_) => {
                self.asids.release(asid);
                return Err(Status::NoMem);
            }
        };
        let pid = self.next_pid;
        self.next_pid += 1;
        let random = self.rng.check();
        self.processes.insert(
            pid,
            Process {
                name: String::from(name),
                space: Some(space),
                mappings: Vec::new(),
                threads: Vec::new(),
                state: ProcessState::Running,
                run_to_completion,
                holder: None,
                random,
                notify: None,
                signals: [Disposition::Default; amoeba::syscall::SIGNALS as usize],
                exited_threads: BTreeMap::new(),
            },
        );
        Ok(pid)
    }

    /// The owner capability of a process.
    pub fn process_capability(&self, pid: Pid) -> Option<Capability> {
        let process = self.processes.get(&pid)?;
        Some(Capability::owner(self.process_port, pid, process.random))
    }

    /// Checks a process capability for `needed` rights.
    pub fn process_for(&self, cap: &Capability, needed: Rights) -> Result<Pid, Status> {
        if cap.port != self.process_port {
            return Err(Status::CapBad);
        }
        let process = self.processes.get(&cap.object).ok_or(Status::CapBad)?;
        let rights = amoeba::verify(&process.random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(cap.object)
    }

    /// A process capability restricted to `rights` (of those `cap` holds).
    pub fn restrict_process(&self, cap: &Capability, rights: Rights) -> Result<Capability, Status> {
        let pid = self.process_for(cap, Rights::NONE)?;
        let process = &self.processes[&pid];
        let held = amoeba::verify(&process.random, cap).map_err(|_| Status::CapBad)?;
        Capability::owner(self.process_port, pid, process.random)
            .restrict(Rights(held.bits() & rights.bits()))
            .map_err(|_| Status::CapBad)
    }

    /// Maps segment `id` into process `pid` at `va`.
    pub fn map_segment(&mut self, pid: Pid, id: SegmentId, va: usize, flags: MapFlags) -> Result<(), Status> {
        let len = self.segments.get(id).ok_or(Status::CapBad)?.len();
        let phys = self.segments.get(id).ok_or(Status::CapBad)?.phys.start;
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        let end = va.checked_add(len).ok_or(Status::ArgBad)?;
        if !va.is_multiple_of(mmu::PAGE_SIZE) || end > mmu::USER_TOP || va == 0 {
            return Err(Status::ArgBad);
        }
        if process.mappings.iter().any(|m| m.va < end && va < m.va + m.len) {
            return Err(Status::Exists);
        }
        let space = process.space.as_mut().ok_or(Status::NotFound)?;
        space.map(va, phys, len, flags).map_err(|error| match error {
            mmu::MapError::BadRange => Status::ArgBad,
            mmu::MapError::NoMemory => Status::NoMem,
        })?;
        process.mappings.push(Mapping { va, len, segment: id, flags });
        if let Some(segment) = self.segments.get_mut(id) {
            segment.mappings += 1;
        }
        Ok(())
    }

    /// Unmaps the mapping that starts at `va`.
    pub fn unmap_segment(&mut self, pid: Pid, va: usize) -> Result<(), Status> {
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        let index = process.mappings.iter().position(|m| m.va == va).ok_or(Status::NotFound)?;
        let mapping = process.mappings.remove(index);
        if let Some(space) = process.space.as_mut() {
            space.unmap(mapping.va, mapping.len);
        }
        self.segments.unmapped(mapping.segment);
        Ok(())
    }

    /// Starts a user thread in `pid`.
    pub fn spawn_user_thread(
        &mut self,
        pid: Pid,
        entry: u64,
        sp: u64,
        args: [u64; 4],
    ) -> Result<Tid, Status> {
        let tid = self.new_tid();
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        if matches!(process.state, ProcessState::Exited(_)) {
            return Err(Status::NotFound);
        }
        process.threads.push(tid);
        let mut thread = Box::new(Thread::new(tid, Some(pid), "user"));
        thread.prepare_user_entry(entry, sp, args);
        self.threads.insert(tid, thread);
        self.make_ready(tid);
        Ok(tid)
    }

    /// Kills the current process after a fault, with a short report.
    pub fn fault_current(&mut self, what: core::fmt::Arguments) {
        if let Some(pid) = self.current_pid() {
            let name = self.processes.get(&pid).map(|p| p.name.clone()).unwrap_or_default();
            crate::println!("nucleus: process {pid} ({name}) killed: {what}");
            self.exit_process(pid, EXIT_FAULT);
        }
    }

    pub fn stun(&mut self, pid: Pid) -> Result<(), Status> {
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        match process.state {
            ProcessState::Running => process.state = ProcessState::Stunned,
            ProcessState::Stunned => {}
            ProcessState::Exited(_) => return Err(Status::NotFound),
        }
        if self.current_pid() == Some(pid) {
            self.need_resched = true;
        }
        Ok(())
    }

    pub fn resume(&mut self, pid: Pid) -> Result<(), Status> {
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        match process.state {
            ProcessState::Stunned => process.state = ProcessState::Running,
            ProcessState::Running => {}
            ProcessState::Exited(_) => return Err(Status::NotFound),
        }
        self.need_resched = true;
        Ok(())
    }

    pub fn destroy(&mut self, pid: Pid) -> Result<(), Status> {
        match self.processes.get(&pid).map(|p| p.state) {
            None | Some(ProcessState::Exited(_)) => Err(Status::NotFound),
            Some(_) => {
                self.exit_process(pid, EXIT_DESTROYED);
                Ok(())
            }
        }
    }

    /// Raises `signal` in thread `tid` (delivered on its way back to EL0).
    pub fn raise(&mut self, tid: Tid, signal: u32) -> Result<(), Status> {
        if signal == 0 || signal >= amoeba::syscall::SIGNALS {
            return Err(Status::ArgBad);
        }
        let thread = self.threads.get_mut(&tid).filter(|t| t.is_alive()).ok_or(Status::NotFound)?;
        thread.pending_signals |= 1 << signal;
        // A thread blocked in the kernel is interrupted to take the signal.
        if let ThreadState::Blocked(wait) = thread.state
            && !matches!(wait, Wait::Network)
        {
            thread.wake_result = amoeba::syscall::error(Status::Interrupted);
            thread.interrupted = true;
            self.make_ready(tid);
            // The service the thread waited on forgets it: nothing may be
            // delivered into the buffers of the call it gave up.
            self.rpc_cancel_wait(tid, wait);
            self.group_cancel_wait(tid, wait);
        }
        Ok(())
    }

    /// Delivers pending signals to the current thread before it returns to
    /// EL0 through `frame` (its live trap frame): default ends the process,
    /// ignore drops, catch enters the handler.
    pub fn deliver_signals(&mut self, frame: &mut TrapFrame) {
        let current = self.current;
        let Some(pid) = self.current_pid() else {
            return;
        };
        loop {
            let thread = self.current_thread();
            let pending = thread.pending_signals;
            if pending == 0 || thread.signal_saved.is_some() {
                return;
            }
            let signal = pending.trailing_zeros();
            thread.pending_signals &= !(1 << signal);
            let disposition = self.processes.get(&pid).map(|p| p.signals[signal as usize]);
            match disposition {
                Some(Disposition::Ignore) | None => continue,
                Some(Disposition::Default) => {
                    self.exit_process(pid, EXIT_SIGNAL_BASE - signal as i32);
                    return;
                }
                Some(Disposition::Catch(handler)) => {
                    let thread = self.threads.get_mut(&current).expect("current thread");
                    thread.signal_saved = Some(Box::new(*frame));
                    frame.enter_signal_handler(handler, signal);
                    return;
                }
            }
        }
    }

    /// The current thread entered the kernel from EL0 at `pc`.
    pub fn entered_from_user(&mut self, pc: u64) {
        self.current_thread().user_pc = pc;
    }
}

/// Switches to the next thread if one should run. Call with IRQs masked
/// or from an exception handler; returns when this thread runs again.
pub fn schedule() {
    let switch = with(|kernel| {
        kernel.need_resched = false;
        let previous = kernel.current;
        let next = kernel.pick_next();
        if next == previous {
            if let Some(thread) = kernel.threads.get_mut(&next) {
                thread.state = ThreadState::Running;
                thread.slice = TIME_SLICE_TICKS;
            }
            return None;
        }
        kernel.current = next;
        let ttbr0 = {
            let thread = kernel.threads.get_mut(&next).expect("picked thread exists");
            thread.state = ThreadState::Running;
            thread.slice = TIME_SLICE_TICKS;
            thread.process
        }
        .and_then(|pid| kernel.processes.get(&pid))
        .and_then(|p| p.space.as_ref())
        .map(|space| space.ttbr0());
        let from: *mut Context =
            &mut kernel.threads.get_mut(&previous).expect("previous thread exists").context;
        let to: *const Context = &kernel.threads[&next].context;
        Some((from, to, ttbr0))
    });
    if let Some((from, to, ttbr0)) = switch {
        mmu::activate(ttbr0);
        // SAFETY: both threads are boxed in the kernel's table and are not
        // freed while switching (dead threads are reaped only by another
        // thread, after this switch); IRQs are masked by our caller.
        unsafe { context::switch(from, to) };
    }
    with(|kernel| kernel.reap());
}

/// The end of a kernel thread's function (called from `context.s`).
#[unsafe(no_mangle)]
extern "C" fn kernel_thread_exit() -> ! {
    crate::arch::cpu::disable_irqs();
    with(|kernel| {
        let current = kernel.current;
        kernel.kill_thread(current);
    });
    schedule();
    unreachable!("a dead thread was scheduled");
}

/// Blocks the current kernel thread until `wait` is signalled (or `ready`
/// already holds), then returns with IRQs as they were.
pub fn block_unless(wait: Wait, ready: impl Fn() -> bool) {
    let were_enabled = crate::arch::cpu::disable_irqs();
    if !ready() {
        with(|kernel| kernel.block_current(wait));
        schedule();
    }
    crate::arch::cpu::restore_irqs(were_enabled);
}

/// The idle thread's loop: sleep until an interrupt, run whoever is ready.
pub fn idle_loop() -> ! {
    loop {
        crate::arch::cpu::disable_irqs();
        if with(|kernel| kernel.need_resched || !kernel.ready_kernel.is_empty() || !kernel.ready.is_empty()) {
            schedule();
        } else {
            crate::arch::cpu::wait_for_interrupt();
        }
        crate::arch::cpu::enable_irqs();
    }
}

/// On the way back to EL0: switch if asked, deliver signals, never return
/// into a dead thread.
pub fn return_to_user(frame: &mut TrapFrame) {
    loop {
        let (resched, alive) = with(|kernel| {
            let alive = kernel.current_thread().is_alive();
            if alive {
                kernel.deliver_signals(frame);
            }
            (kernel.need_resched, kernel.current_thread().is_alive())
        });
        if resched || !alive {
            schedule();
            continue;
        }
        return;
    }
}

/// Kills the current process for a fault taken at EL0.
pub fn user_fault(what: core::fmt::Arguments) {
    with(|kernel| kernel.fault_current(what));
}

/// The scheduling flag of a process descriptor.
pub fn is_run_to_completion(scheduling: u32) -> bool {
    scheduling == SCHED_RUN_TO_COMPLETION
}
