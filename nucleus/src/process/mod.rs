//! The memory and process core of the nucleus: processes, their segments
//! and address spaces, threads and their scheduling. All of it lives in one
//! `Core` behind one IRQ-masking lock: the board has one core, so the lock
//! only keeps interrupt handlers out, and it is never held across a thread
//! switch.
//!
//! The core knows nothing of the services built on it (RPC, groups, the
//! process server). What they must hear about — a process ended, a signal
//! cut a thread's wait short — it records as [`Event`]s, which the layer
//! that ties the services together hands to each of them
//! ([`Subscriber`]). Drivers do not call in either: the entry points
//! (interrupts, system calls, the network thread) pass what they report.

pub mod loader;
pub mod outcome;
pub mod sched;
pub mod server;
pub mod signal;
pub mod thread;
pub mod user_memory;

use crate::arch::context::Context;
use crate::arch::mmu::{self, AddressSpace, MapFlags};
use crate::memory::segments::{SegmentId, SegmentTable};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::syscall::{EXIT_FAULT, SIGNALS};
use amoeba_abi::{Check, Status};
use amoeba_ipc::interfaces::process::Quotas;
use nucleus::asid::AsidAllocator;
use nucleus::run_queue::RunQueue;
use thread::{Pid, Thread, ThreadState, Tid, Wait};

/// Exited processes whose status stays available (to `process_wait`,
/// inspection, the process server) after they ended; older ones are
/// forgotten.
const EXITED_RECORDS: usize = 256;

/// Exit values of a process's ended threads kept for `join`; beyond this,
/// the oldest are forgotten (joining one then says `NotFound`).
const EXITED_THREADS_KEPT: usize = 256;

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

pub use nucleus::call_types::Disposition;

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
    /// The secret its capabilities are checked against (process server).
    pub random: Check,
    pub signals: [Disposition; SIGNALS as usize],
    /// Exit values of ended threads nobody has joined yet.
    pub exited_threads: BTreeMap<Tid, u64>,
    /// Microseconds its threads have had the processor.
    pub cpu_us: u64,
    /// When it was made (µs since boot).
    pub created_us: u64,
    /// What it may hold in the nucleus.
    pub quotas: Quotas,
    /// What it holds now, against [`Process::quotas`].
    pub usage: Usage,
}

/// What a process holds of the resources its [`Quotas`] bound that are not
/// counted elsewhere (its threads are [`Process::threads`], its segments are
/// marked `charged` in the segment table, its translation tables are its
/// address space's, its unreceived group entries are in its group members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Its transactions in progress.
    pub transactions: u32,
}

impl Process {
    /// The mapping that holds all of `va..va+len`.
    pub fn mapping_for(&self, va: u64, len: u64) -> Option<&Mapping> {
        let start = usize::try_from(va).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.mappings.iter().find(|m| m.va <= start && end <= m.va + m.len)
    }

    pub fn has_exited(&self) -> bool {
        matches!(self.state, ProcessState::Exited(_))
    }

    /// Whether it may hold one more transaction in progress.
    pub fn may_start_transaction(&self) -> bool {
        self.usage.transactions < self.quotas.transactions
    }
}

/// What the services above the core must hear about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A process ended: its threads are dead and its memory is gone. The
    /// services drop what they held for it (transactions, ports, group
    /// memberships) and tell whoever waits.
    ProcessExited { pid: Pid, status: i32, threads: Vec<Tid> },
    /// A signal cut `tid`'s wait short: the service it waited on forgets
    /// the call, so that nothing lands in the buffers the call was given.
    WaitInterrupted { tid: Tid, wait: Wait },
}

/// A service that hears the core's events (given the time, µs since boot).
pub trait Subscriber {
    fn notify(&mut self, core: &mut Core, event: &Event, now: u64);
}

/// Object numbers from here up belong to the process server itself (boot
/// programs), never to processes or segments.
pub const RESERVED_OBJECTS_START: u32 = amoeba_abi::OBJECT_MAX - 0xFFF;

pub struct Core {
    pub threads: BTreeMap<Tid, Box<Thread>>,
    /// Live processes (running or stunned): every switch and system call
    /// looks its process up here, so ended ones are kept apart.
    pub processes: BTreeMap<Pid, Process>,
    /// Ended processes whose records are still kept (their status, for
    /// `process_wait`, inspection and the process server's listing).
    exited_processes: BTreeMap<Pid, Process>,
    pub segments: SegmentTable,
    rng: amoeba_abi::Rng,
    pub(crate) sched: RunQueue,
    next_tid: Tid,
    /// Set once thread ids have wrapped: from then on a new id is checked
    /// against every id still in use.
    tids_wrapped: bool,
    /// The next object number to try for a process or a segment (they share
    /// the process server's port).
    next_object: u32,
    asids: AsidAllocator,
    /// Processes made since boot.
    pub processes_created: u64,
    /// [`Core::exited_processes`], oldest first.
    exited: VecDeque<Pid>,
    events: VecDeque<Event>,
    /// When the network thread must run next for the services' timers (µs
    /// since boot); the timer interrupt wakes it then. Set only by
    /// `set_network_deadline`, which sets the timer with it.
    network_deadline: Option<u64>,
    /// User threads ready or running (the load meter's figure).
    runnable_users: u64,
}

static CORE: IrqMutex<Option<Core>> = IrqMutex::new(None);

/// Runs `f` on the core with IRQs masked.
pub fn with<R>(f: impl FnOnce(&mut Core) -> R) -> R {
    let mut guard = CORE.lock();
    f(guard.as_mut().expect("process::init ran"))
}

/// Sets up the core; the calling (boot) thread becomes the idle thread.
/// At most `asid_limit` address spaces exist at once (fewer if the CPU has
/// 8-bit ASIDs).
pub fn init(segments: SegmentTable, rng: amoeba_abi::Rng, asid_limit: u16) {
    mmu::init();
    let Ok(idle) = Thread::new(0, None, "idle") else {
        crate::println!("nucleus: no heap for the idle thread");
        crate::power::stop(crate::power::ExitStatus::Failure);
    };
    let mut idle = Box::new(idle);
    idle.state = ThreadState::Running;
    let core = Core {
        threads: BTreeMap::from([(0, idle)]),
        processes: BTreeMap::new(),
        exited_processes: BTreeMap::new(),
        segments,
        rng,
        sched: RunQueue::new(0),
        next_tid: 1,
        tids_wrapped: false,
        next_object: 1,
        processes_created: 0,
        asids: AsidAllocator::new(asid_limit.min(mmu::max_asid())),
        exited: VecDeque::new(),
        events: VecDeque::new(),
        network_deadline: None,
        runnable_users: 0,
    };
    *CORE.lock() = Some(core);
}

impl Core {
    pub fn random_check(&mut self) -> Check {
        self.rng.check()
    }

    pub fn rng(&mut self) -> &mut amoeba_abi::Rng {
        &mut self.rng
    }

    pub fn current(&self) -> Tid {
        self.sched.current
    }

    pub fn current_thread(&mut self) -> &mut Thread {
        let current = self.sched.current;
        self.threads.get_mut(&current).expect("the current thread exists")
    }

    pub fn current_pid(&self) -> Option<Pid> {
        self.threads.get(&self.sched.current).and_then(|t| t.process)
    }

    /// Whether `tid` still waits for `wait` (it may have been interrupted
    /// or killed meanwhile).
    pub fn is_waiting(&self, tid: Tid, wait: Wait) -> bool {
        self.threads.get(&tid).is_some_and(|t| t.state == ThreadState::Blocked(wait))
    }

    /// The next event for the services, oldest first.
    pub fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
        // Whoever handles it next, the network thread does so soon anyway.
        self.wake_all(Wait::Network, 0);
    }

    /// A thread id no thread has: not a live or dead-but-unreaped thread,
    /// and not an ended thread whose exit value a `join` may still take.
    /// Ids count up; after they wrap, each candidate is checked.
    fn new_tid(&mut self) -> Result<Tid, Status> {
        let in_use =
            self.threads.len() + self.processes.values().map(|p| p.exited_threads.len()).sum::<usize>();
        for _ in 0..=in_use {
            let tid = self.next_tid;
            self.next_tid = match tid.checked_add(1) {
                Some(next) => next,
                None => {
                    self.tids_wrapped = true;
                    1 // 0 is the idle thread
                }
            };
            let taken = self.tids_wrapped
                && (self.threads.contains_key(&tid)
                    || self.processes.values().any(|p| p.exited_threads.contains_key(&tid)));
            if !taken {
                return Ok(tid);
            }
        }
        Err(Status::NoSpace)
    }

    /// Starts a kernel thread running `entry(arg)`.
    pub fn spawn_kernel_thread(
        &mut self,
        name: &'static str,
        entry: extern "C" fn(usize),
        arg: usize,
    ) -> Result<Tid, Status> {
        let tid = self.new_tid()?;
        let mut thread = Box::new(Thread::new(tid, None, name)?);
        thread.context = Context::for_kernel_thread(thread.stack_top(), entry, arg);
        self.insert_thread(thread);
        self.make_ready(tid);
        Ok(tid)
    }

    /// Starts a user thread in `pid`.
    pub fn spawn_user_thread(
        &mut self,
        pid: Pid,
        entry: u64,
        sp: u64,
        args: [u64; 4],
    ) -> Result<Tid, Status> {
        let process = self.processes.get(&pid).filter(|p| !p.has_exited()).ok_or(Status::NotFound)?;
        if process.threads.len() >= process.quotas.threads as usize {
            return Err(Status::NoSpace);
        }
        let tid = self.new_tid()?;
        let mut thread = Box::new(Thread::new(tid, Some(pid), "user")?);
        thread.prepare_user_entry(entry, sp, args);
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        process.threads.push(tid);
        self.insert_thread(thread);
        self.make_ready(tid);
        Ok(tid)
    }

    /// Marks a thread dead; it never runs again. The last thread of a
    /// process takes the process with it (status 0).
    pub fn kill_thread(&mut self, tid: Tid) {
        self.release_holder(tid);
        let Some(thread) = self.threads.get(&tid).filter(|t| t.is_alive()) else {
            return;
        };
        let (value, process) = (thread.exit_value, thread.process);
        self.set_state(tid, ThreadState::Dead);
        self.sched.forget(tid);
        let joined = self.wake_all(Wait::Join(tid), value as i64) > 0;
        if let Some(pid) = process
            && let Some(p) = self.processes.get_mut(&pid)
        {
            p.threads.retain(|&t| t != tid);
            if !joined {
                p.exited_threads.insert(tid, value);
                if p.exited_threads.len() > EXITED_THREADS_KEPT {
                    p.exited_threads.pop_first();
                }
            }
            if p.threads.is_empty() && !p.has_exited() {
                self.exit_process(pid, 0);
            }
        }
    }

    /// Ends a process: threads die, mappings go, its segments are
    /// destroyed, waiters hear the status, and the services get
    /// [`Event::ProcessExited`].
    pub fn exit_process(&mut self, pid: Pid, status: i32) {
        let Some(process) = self.processes.get_mut(&pid).filter(|p| !p.has_exited()) else {
            return;
        };
        process.state = ProcessState::Exited(status);
        let threads = core::mem::take(&mut process.threads);
        let mappings = core::mem::take(&mut process.mappings);
        let space = process.space.take();
        if let Some(space) = space {
            // Kernel threads run on whichever user space was last in place.
            mmu::deactivate(space.ttbr0());
            let asid = space.asid();
            // Dropping the space invalidates the TLB entries of its ASID,
            // so the next owner of the id sees none of them.
            drop(space);
            self.asids.release(asid);
        }
        for &tid in &threads {
            self.kill_thread(tid);
        }
        if let Some(process) = self.processes.get_mut(&pid) {
            process.exited_threads.clear(); // nobody can join them any more
        }
        for mapping in mappings {
            self.segments.unmapped(mapping.segment);
        }
        self.segments.destroy_owned_by(pid);
        self.wake_all(Wait::ProcessExit(pid), status as i64);
        if let Some(record) = self.processes.remove(&pid) {
            self.exited_processes.insert(pid, record);
        }
        self.keep_exit_record(pid);
        self.push_event(Event::ProcessExited { pid, status, threads });
        crate::println!("nucleus: process {pid} exited with status {status}");
    }

    /// Keeps the exit status of `pid`, forgetting the oldest beyond
    /// [`EXITED_RECORDS`].
    fn keep_exit_record(&mut self, pid: Pid) {
        self.exited.push_back(pid);
        while self.exited.len() > EXITED_RECORDS {
            if let Some(oldest) = self.exited.pop_front() {
                self.exited_processes.remove(&oldest);
            }
        }
    }

    /// Removes an exited process whose status nobody can ask for any more.
    pub fn forget_process(&mut self, pid: Pid) {
        if self.exited_processes.remove(&pid).is_some() {
            self.exited.retain(|&exited| exited != pid);
        }
    }

    /// The record of process `pid`, live or ended (while kept).
    pub fn process_record(&self, pid: Pid) -> Option<&Process> {
        self.processes.get(&pid).or_else(|| self.exited_processes.get(&pid))
    }

    /// Every process record, live and ended, by pid.
    pub fn process_records(&self) -> Vec<(Pid, &Process)> {
        let mut records: Vec<(Pid, &Process)> =
            self.processes.iter().chain(self.exited_processes.iter()).map(|(&pid, p)| (pid, p)).collect();
        records.sort_unstable_by_key(|&(pid, _)| pid);
        records
    }

    /// Creates an empty process (no threads yet) that may hold what
    /// `quotas` allow.
    pub fn new_process(
        &mut self,
        name: &str,
        run_to_completion: bool,
        quotas: Quotas,
    ) -> Result<Pid, Status> {
        // Its first thread's stack and its first tables, with room to spare.
        crate::heap::admit(thread::KERNEL_STACK_SIZE + 8 * mmu::PAGE_SIZE)?;
        let asid = self.asids.allocate().ok_or(Status::NoSpace)?;
        let space = match AddressSpace::new(asid) {
            Ok(space) => space,
            Err(_) => {
                self.asids.release(asid);
                return Err(Status::NoMem);
            }
        };
        let Some(pid) = self.new_object_number() else {
            self.asids.release(asid);
            return Err(Status::NoSpace);
        };
        self.processes_created += 1;
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
                signals: [Disposition::Default; SIGNALS as usize],
                exited_threads: BTreeMap::new(),
                cpu_us: 0,
                created_us: crate::drivers::timer::uptime_micros(),
                quotas,
                usage: Usage::default(),
            },
        );
        Ok(pid)
    }

    /// An object number no process or segment has: processes and segments
    /// are objects of the same process server. Numbers above
    /// [`RESERVED_OBJECTS_START`] are the process server's own.
    fn new_object_number(&mut self) -> Option<u32> {
        for _ in 0..RESERVED_OBJECTS_START {
            let candidate = self.next_object;
            self.next_object = if candidate + 1 >= RESERVED_OBJECTS_START { 1 } else { candidate + 1 };
            if self.process_record(candidate).is_none() && !self.segments.contains(candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// A new zeroed segment of at least `size` bytes (owned by `owner`, which
    /// destroys it when it ends).
    pub fn create_segment(
        &mut self,
        size: usize,
        owner: Option<Pid>,
    ) -> Result<(SegmentId, amoeba_abi::Capability), Status> {
        let id = self.new_object_number().ok_or(Status::NoSpace)?;
        let random = self.rng.check();
        self.segments.create(id, size, 0, owner, random)
    }

    /// Maps segment `id` into process `pid` at `va`.
    pub fn map_segment(&mut self, pid: Pid, id: SegmentId, va: usize, flags: MapFlags) -> Result<(), Status> {
        let segment = self.segments.get(id).ok_or(Status::CapBad)?;
        let (len, phys) = (segment.len(), segment.phys.start);
        let process = self.processes.get_mut(&pid).ok_or(Status::NotFound)?;
        let end = va.checked_add(len).ok_or(Status::ArgBad)?;
        if !va.is_multiple_of(mmu::PAGE_SIZE) || end > mmu::USER_TOP || va == 0 {
            return Err(Status::ArgBad);
        }
        if process.mappings.iter().any(|m| m.va < end && va < m.va + m.len) {
            return Err(Status::Exists);
        }
        let max_tables = process.quotas.translation_tables as usize;
        let space = process.space.as_mut().ok_or(Status::NotFound)?;
        space.map(va, phys, len, flags, max_tables).map_err(|error| match error {
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
            self.sched.need_resched = true;
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
        self.sched.need_resched = true;
        Ok(())
    }
}
