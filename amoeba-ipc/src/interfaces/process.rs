//! The process server every board's nucleus runs (Amoeba's `pro_exec` and segment
//! server): behind the board's **host capability** (object 0 on the board's own
//! put-port, whose secret the pool's owner handed the board at boot) anyone holding
//! the right rights creates segments, fills them at offsets, creates processes from a
//! [`ProcessDescriptor`], and asks what placement needs ([`HostInfo`]). Segments and
//! processes are objects on the same port; so are the boot programs of the board's
//! bundle and its disks.

use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Rights};
use serde::{Deserialize, Serialize};

/// Host capability right: create segments and processes.
pub const HOST_CREATE: Rights = Rights(0x01);
/// Host capability right: read the board's info and its process list.
pub const HOST_INFO: Rights = Rights(0x02);
/// Host capability right: stun, resume, signal, destroy or wait for any process of
/// the board by process id (for `ps` / `kill` by name).
pub const HOST_CONTROL: Rights = Rights(0x04);
/// Host capability right: the board's disks (raw blocks).
pub const HOST_DISK: Rights = Rights(0x08);
/// What the run server needs of a board, and hands out to the callers it places:
/// creating processes and reading the info.
pub const HOST_PLACEMENT: Rights = Rights(HOST_CREATE.0 | HOST_INFO.0);

/// Segment right: read it.
pub const SEGMENT_READ: Rights = Rights::READ;
/// Segment right: write it.
pub const SEGMENT_WRITE: Rights = Rights::MODIFY;

/// Process right: inspect state and wait for the exit status.
pub const PROCESS_INSPECT: Rights = Rights(amoeba_abi::syscall::RIGHT_INSPECT);
/// Process right: stun and resume.
pub const PROCESS_STUN: Rights = Rights(amoeba_abi::syscall::RIGHT_STUN);
/// Process right: destroy.
pub const PROCESS_DESTROY: Rights = Rights(amoeba_abi::syscall::RIGHT_DESTROY);
/// Process right: raise signals.
pub const PROCESS_SIGNAL: Rights = Rights(amoeba_abi::syscall::RIGHT_SIGNAL);

/// Mapping flag: writable.
pub const MAP_WRITE: u32 = amoeba_abi::syscall::MAP_WRITE as u32;
/// Mapping flag: executable.
pub const MAP_EXECUTE: u32 = amoeba_abi::syscall::MAP_EXECUTE as u32;

/// Largest segment read or write in one call.
pub const SEGMENT_IO_MAX: usize = 1 << 20;

/// A segment to create from the contents of another object: `size` bytes (the rest
/// zero) read by the target board itself from `source` at `offset` with the read
/// operation of files (`bullet::BS_READ`), so a program's text goes from where it is
/// stored straight to the board that runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentSource {
    /// The object to read (a Bullet file, a boot program, another segment).
    pub source: Capability,
    /// Where in it to start.
    pub offset: u64,
    /// Bytes to read from it.
    pub length: u64,
    /// Size of the new segment (at least `length`).
    pub size: u64,
}

/// One segment of a new process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMapping {
    /// The segment (created on the same board, with read rights at least). The new
    /// process owns it from then on: it goes when the process ends.
    pub segment: Capability,
    /// Where it goes in the process's address space (page aligned).
    pub address: u64,
    /// [`MAP_WRITE`] | [`MAP_EXECUTE`].
    pub flags: u32,
}

/// The first thread of a new process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStart {
    /// Where it starts.
    pub entry: u64,
    /// Its stack pointer. The process server puts the [`Startup`] block just below it
    /// (in the segment mapped there) and passes its address in `x3`.
    pub stack_pointer: u64,
    /// `x0`, `x1`, `x2` (the user runtime's heap base, heap size, argument).
    pub arguments: [u64; 3],
}

/// What a new process gets to start with, besides its memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Startup {
    /// Its arguments, program name first.
    pub argv: Vec<String>,
    /// Environment strings (`NAME=value`).
    pub environment: Vec<String>,
    /// The capability environment: STDIN, STDOUT, STDERR, ROOT, WORK, ...
    pub capabilities: Vec<(String, Capability)>,
}

impl Startup {
    /// The block the process server writes below the first thread's stack pointer
    /// (and passes in `x3`): a little-endian u32 length, then the `postcard` form;
    /// padded to a multiple of 16 bytes so the stack stays aligned.
    pub fn to_block(&self) -> Vec<u8> {
        let body = postcard::to_allocvec(self).unwrap_or_default();
        let mut block = Vec::with_capacity(body.len() + 20);
        block.extend_from_slice(&(body.len() as u32).to_le_bytes());
        block.extend_from_slice(&body);
        block.resize(block.len().next_multiple_of(16), 0);
        block
    }

    /// The body of a block (after its length) back.
    pub fn from_body(body: &[u8]) -> Option<Startup> {
        postcard::from_bytes(body).ok()
    }

    /// The named capability of the environment.
    pub fn capability(&self, name: &str) -> Option<Capability> {
        self.capabilities.iter().find(|(n, _)| n == name).map(|(_, c)| *c)
    }
}

/// What one process may hold in its board's nucleus at once. Every kernel resource a
/// process can make the nucleus spend on its behalf is counted against one of these,
/// and a request past its quota fails with `NoSpace` instead of taking memory the
/// board's other processes (and the nucleus itself) need.
///
/// A descriptor within [`Quotas::DEFAULT`] needs only the host capability's create
/// right; one that asks for more needs the board's owner capability (all rights), and
/// nothing goes past [`Quotas::CEILING`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quotas {
    /// Threads alive at once (each costs a 32 KiB kernel stack).
    pub threads: u32,
    /// Segments the process has created itself and not destroyed.
    pub segments: u32,
    /// Bytes of those segments.
    pub segment_bytes: u64,
    /// Transactions (`trans`) outstanding at once; each holds its request and reply
    /// in the nucleus until it ends.
    pub transactions: u32,
    /// Group entries delivered to the process and not yet received, over all of its
    /// groups.
    pub group_messages: u32,
    /// Translation-table pages of its address space (4 KiB of kernel heap each):
    /// bounds what mapping many small regions far apart costs.
    pub translation_tables: u32,
}

impl Quotas {
    /// What a process gets unless its creator asks for more.
    pub const DEFAULT: Quotas = Quotas {
        threads: 128,
        segments: 256,
        segment_bytes: 64 << 20,
        transactions: 8,
        group_messages: 512,
        translation_tables: 256,
    };

    /// The most any process may be given, even by the board's owner.
    pub const CEILING: Quotas = Quotas {
        threads: 1024,
        segments: 4096,
        segment_bytes: 1 << 40,
        transactions: 64,
        group_messages: 8192,
        translation_tables: 4096,
    };

    /// Whether every limit of `self` is at most the same limit of `other`.
    pub fn within(&self, other: &Quotas) -> bool {
        self.threads <= other.threads
            && self.segments <= other.segments
            && self.segment_bytes <= other.segment_bytes
            && self.transactions <= other.transactions
            && self.group_messages <= other.group_messages
            && self.translation_tables <= other.translation_tables
    }
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas::DEFAULT
    }
}

/// A process to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessDescriptor {
    /// The program's name (what `ps` shows).
    pub name: String,
    /// Its segments.
    pub segments: Vec<SegmentMapping>,
    /// Its first thread.
    pub thread: ThreadStart,
    /// `SCHED_PREEMPTIVE` or `SCHED_RUN_TO_COMPLETION`.
    pub scheduling: u32,
    /// Arguments, environment and capabilities.
    pub startup: Startup,
    /// What it may hold in the nucleus (above [`Quotas::DEFAULT`] only with the
    /// board's owner capability).
    pub quotas: Quotas,
}

/// A process's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessState {
    /// Its threads run.
    Running,
    /// Frozen.
    Stunned,
    /// Ended with this status.
    Exited(i32),
}

/// What `inspect` tells about a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReport {
    /// Process id on its board.
    pub pid: u32,
    /// The program's name.
    pub name: String,
    /// Its state.
    pub state: ProcessState,
    /// Live threads.
    pub threads: u32,
    /// Microseconds of CPU its threads have used.
    pub cpu_us: u64,
    /// Its segments: (address, length, flags).
    pub segments: Vec<(u64, u64, u32)>,
    /// The first live thread's program counter and stack pointer (0 if none).
    pub pc: u64,
    /// Stack pointer.
    pub sp: u64,
    /// What its threads are doing (for `ps`: running, or blocked, and on what).
    pub activity: Activity,
    /// Whether its board checks an owner for it and ends it once the owner
    /// stops answering (see [`process_server::Client::set_owner`]).
    pub owned: bool,
}

/// What a live process's threads are doing, as `ps` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activity {
    /// A thread is ready or running (or the process has no thread to tell by).
    #[default]
    Runnable,
    /// Every thread waits, one of them for a transaction's reply: output to a
    /// terminal or a log, a file, any server that has not answered yet.
    Transaction,
    /// Every thread waits, one of them for a request to serve (and none for a
    /// transaction).
    Serving,
    /// Every thread sleeps or waits for a lock, a thread, a process, a group.
    Waiting,
}

/// The signal `ax` raises in a program on the user's Ctrl-C. A program that
/// does not catch it ends with status `EXIT_SIGNAL_BASE - SIGNAL_INTERRUPT`.
pub const SIGNAL_INTERRUPT: u32 = 2;

/// How often a board asks a process's owner whether it still exists (µs).
pub const OWNER_CHECK_PERIOD_US: u64 = 1_000_000;

/// A process whose owner has answered none of its board's checks for this
/// long (µs) is destroyed: the owner (the user's terminal) is gone or cut off.
/// An owner that answers that it no longer exists ends it at once.
pub const OWNER_SILENCE_US: u64 = 5_000_000;

/// One board's state as its process server reports it (what the run server scores).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// User threads ready or running, in thousandths: their average over about
    /// the last second, with the threads of processes younger than that counted
    /// as they are now for the part of the second before they existed (so a
    /// program that has just started counts in full, and a thread that wakes
    /// now and then only for the time it runs).
    pub runnable_milli: u32,
    /// Share of the last second the processor was busy, in thousandths (0..=1000).
    pub cpu_load_milli: u32,
    /// Bytes free for segments.
    pub free_bytes: u64,
    /// The largest contiguous free run: no segment larger than this can be made.
    pub largest_free: u64,
    /// Processes alive on the board.
    pub processes: u32,
    /// Processes created since boot (never goes down until the board reboots).
    pub processes_created: u64,
    /// Microseconds since the board booted.
    pub uptime_us: u64,
    /// Identifiers of the program texts the board holds cached.
    pub cached_texts: Vec<u64>,
    /// Bytes of the nucleus's own heap not in use (threads' kernel stacks,
    /// messages in transit, translation tables come from it).
    pub kernel_heap_free: u64,
}

/// 1.0 in the thousandths loads are given in.
pub const LOAD_UNIT: u32 = 1000;

/// At most this many cached program texts are reported (most recently used first).
pub const MAX_CACHED_TEXTS: usize = 64;

impl HostInfo {
    /// Demand on the processor in thousandths of one always-busy thread: the
    /// larger of the runnable threads and the busy share of the last second.
    /// The threads tell how many compete; the busy share also sees the
    /// nucleus's own work.
    pub fn load_milli(&self) -> u64 {
        u64::from(self.runnable_milli).max(u64::from(self.cpu_load_milli))
    }

    /// Whether the board holds the program text `text` cached.
    pub fn has_cached(&self, text: u64) -> bool {
        self.cached_texts.contains(&text)
    }

    /// Whether the fields can all be true of a board: a busy share of at most
    /// 100 %, a largest free run no bigger than all free memory, no more memory
    /// free than a board has, no more runnable threads than its nucleus can hold,
    /// no more processes alive than were ever created, an uptime that is neither
    /// zero (it answered, so it has booted) nor absurd, not too many cached texts.
    /// A report that fails this is not believed (the run server takes it as no
    /// answer).
    pub fn is_consistent(&self) -> bool {
        // The nucleus maps 1 GiB of RAM (`nucleus::board::RAM_MAPPED`): its heap
        // and every free segment come out of it.
        const BOARD_MEMORY: u64 = 1 << 30;
        // Each thread takes a 32 KiB kernel stack from the nucleus's heap, which is
        // at most 48 MiB (`KERNEL_STACK_SIZE`, `KERNEL_HEAP_MAX`).
        const THREAD_CEILING: u64 = (48 << 20) / (32 << 10);
        // Ten years.
        const UPTIME_CEILING_US: u64 = 10 * 365 * 24 * 3600 * 1_000_000;
        self.cpu_load_milli <= LOAD_UNIT
            && self.largest_free <= self.free_bytes
            && self.free_bytes.checked_add(self.kernel_heap_free).is_some_and(|total| total <= BOARD_MEMORY)
            && u64::from(self.runnable_milli) <= THREAD_CEILING * u64::from(LOAD_UNIT)
            && u64::from(self.processes) <= self.processes_created
            && (1..=UPTIME_CEILING_US).contains(&self.uptime_us)
            && self.cached_texts.len() <= MAX_CACHED_TEXTS
    }
}

/// The identity of a program text for the run server's cache bonus: where it is
/// stored (the file's port and object), not which capability names it.
pub fn text_id(file: &Capability) -> u64 {
    (file.port.to_u64() << 16) ^ u64::from(file.object)
}

/// A disk of the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskGeometry {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks.
    pub block_count: u64,
}

crate::interface! {
    /// The per-board process server.
    pub mod process_server {
        /// A new segment of `size` bytes (zeroed); its owner capability.
        fn segment_create as PS_SEGMENT_CREATE = 3110, server(HOST_CREATE) (size: offset<u64>) -> (segment: cap);
        /// A new segment filled from another object, read by this board itself.
        fn segment_create_from as PS_SEGMENT_CREATE_FROM = 3111, server(HOST_CREATE)
            (source: data<SegmentSource>) -> (segment: cap);
        /// A new process; its owner capability.
        fn process_create as PS_PROCESS_CREATE = 3112, server(HOST_CREATE)
            (descriptor: data<ProcessDescriptor>) -> (process: cap);
        /// Load, memory and processes, for placement.
        fn info as PS_INFO = 3113, server(HOST_INFO) () -> (info: data<HostInfo>);
        /// Every process of the board.
        fn processes as PS_PROCESSES = 3114, server(HOST_INFO) () -> (list: data<Vec<ProcessReport>>);
        /// The owner capability of process `pid` (for control by name).
        fn process_capability as PS_PROCESS_CAPABILITY = 3115, server(HOST_CONTROL)
            (pid: extra<u32>) -> (process: cap);
        /// A capability for blocks `first .. first + count` of disk `index` (count 0:
        /// to the end), with all disk rights.
        fn disk as PS_DISK = 3116, server(HOST_DISK) (index: extra<u32>, first: offset<u64>, count: size<u32>)
            -> (disk: cap);
        /// A program of the board's boot bundle, as a read-only object.
        fn boot_program as PS_BOOT_PROGRAM = 3117, server(HOST_CREATE) (name: text) -> (program: cap);

        /// Write `data` into a segment at `offset` (at most `SEGMENT_IO_MAX` bytes).
        fn segment_write as PS_SEGMENT_WRITE = 3120, object(SEGMENT_WRITE) (offset: offset<u64>, data: bytes) -> ();
        /// Read `size` bytes of a segment or a boot program at `offset`; the same
        /// operation as reading a Bullet file, so either can be a segment's source.
        fn read as PS_READ = crate::interfaces::bullet::BS_READ, object(SEGMENT_READ)
            (offset: offset<u64>, size: size<u32>) -> (data: bytes) limit size;

        /// Freeze every thread of the process.
        fn stun as PS_STUN = 3100, object(PROCESS_STUN) () -> ();
        /// Let a stunned process run again.
        fn resume as PS_RESUME = 3101, object(PROCESS_STUN) () -> ();
        /// Raise a signal in the process's first thread.
        fn signal as PS_SIGNAL = 3102, object(PROCESS_SIGNAL) (signal: extra<u32>) -> ();
        /// State, threads, registers, segments.
        fn inspect as PS_INSPECT = 3103, object(PROCESS_INSPECT) () -> (report: data<ProcessReport>);
        /// Wait until the process ends; its exit status.
        fn wait as PS_WAIT = 3104, object(PROCESS_INSPECT) () -> (status: extra<i32>);
        /// Ties the process to an owner (Amoeba's `pro_setowner`): its board
        /// touches the owner (`STD_TOUCH`) every `OWNER_CHECK_PERIOD_US` and
        /// destroys the process when the owner says it no longer exists or has
        /// answered nothing for `OWNER_SILENCE_US`. A user's session names its
        /// terminal, so a program outlives neither a killed `ax` nor a lost host.
        /// `None` unties it.
        fn set_owner as PS_SET_OWNER = 3105, object(PROCESS_DESTROY) (owner: data<Option<Capability>>) -> ();
    }
}
