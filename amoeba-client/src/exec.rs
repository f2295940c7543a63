//! Starting a program on a board, client side (as Amoeba's `exec_file`): parse the
//! ELF program, create its segments on the target board through the board's process
//! server and fill them (by writing the bytes, or by having the board read them
//! itself from the file's capability), add a stack and a heap, and send the process
//! descriptor. The same code runs on the host (over its FLIP endpoint) and in user
//! programs (over the nucleus), so any holder of a board's host capability can start
//! programs on it from anywhere.
//!
//! The address-space layout is the user runtime's: the program where its ELF says, a
//! stack below [`STACK_TOP`], a heap at [`HEAP_BASE`]; the first thread starts with
//! `x0` = heap base, `x1` = heap size, `x2` = the numeric argument, `x3` = the startup
//! block ([`Startup`]: argv, environment, capabilities) that the process server
//! writes below the stack pointer.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, elf};

use amoeba_abi::syscall::{HOST_CAPABILITY_NAME, SCHED_PREEMPTIVE};
use amoeba_abi::{Capability, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::bullet;
use amoeba_ipc::interfaces::process::text_id;
use amoeba_ipc::interfaces::process::{
    HOST_CREATE, MAP_EXECUTE, MAP_WRITE, ProcessDescriptor, Quotas, SEGMENT_IO_MAX, SegmentMapping,
    SegmentSource, Startup, ThreadStart, process_server,
};
use amoeba_ipc::interfaces::run::{self, PlacementRequest};
use amoeba_ipc::interfaces::standard;

/// Page size of the boards' address spaces.
pub const PAGE_SIZE: u64 = 4096;
/// The top of the first thread's stack.
pub const STACK_TOP: u64 = 0x7000_0000;
/// Size of the first thread's stack.
pub const STACK_SIZE: u64 = 64 * 1024;
/// Where the heap starts.
pub const HEAP_BASE: u64 = 0x1000_0000;
/// Heap size unless the caller asks for another.
pub const DEFAULT_HEAP_SIZE: u64 = 4 << 20;
/// Bytes of a program file read to find its program headers.
const HEADER_READ: u32 = 4096;

/// Whom a step of starting a program depends on: the one to blame when it fails,
/// and to name when it cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    /// The program's bytes, here (no server involved).
    Program,
    /// The file server that holds the program's file.
    FileServer,
    /// The run server, choosing a processor.
    RunServer,
    /// The chosen processor's process server.
    Processor,
}

/// Why a program could not be started: what was being done, whom it depended
/// on, and the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    /// The step that failed, in words ("creating the stack segment").
    pub step: String,
    /// Whom that step depended on.
    pub party: Party,
    /// Its status.
    pub status: Status,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.status)
    }
}

fn failed(step: &str, party: Party) -> impl FnOnce(Status) -> ExecError + '_ {
    move |status| ExecError { step: String::from(step), party, status }
}

/// One loadable segment of a program: `file_length` bytes of the file from
/// `file_offset` go to `address` (page aligned), in a segment of `size` bytes (the
/// rest zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Page-aligned start address.
    pub address: u64,
    /// Segment size (page multiple).
    pub size: u64,
    /// Where in the file the bytes at `address` are.
    pub file_offset: u64,
    /// How many bytes come from the file.
    pub file_length: u64,
    /// [`MAP_WRITE`] | [`MAP_EXECUTE`].
    pub flags: u32,
}

/// What a program file says about its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramImage {
    /// Entry point.
    pub entry: u64,
    /// Loadable segments.
    pub segments: Vec<LoadSegment>,
    /// Bytes of memory the program's segments take (without stack and heap).
    pub memory: u64,
}

impl ProgramImage {
    /// Parses the ELF header and program headers of an aarch64 executable; `bytes`
    /// is the file's beginning, at least up to the end of its program headers.
    pub fn parse(bytes: &[u8]) -> Result<ProgramImage, Status> {
        let header = elf::FileHeader64::<Endianness>::parse(bytes).map_err(|_| Status::ArgBad)?;
        let endian = header.endian().map_err(|_| Status::ArgBad)?;
        if header.e_machine(endian) != elf::EM_AARCH64 || header.e_type(endian) != elf::ET_EXEC {
            return Err(Status::ArgBad);
        }
        let mut segments = Vec::new();
        for program_header in header.program_headers(endian, bytes).map_err(|_| Status::ArgBad)? {
            if program_header.p_type(endian) != elf::PT_LOAD || program_header.p_memsz(endian) == 0 {
                continue;
            }
            segments.push(load_segment(program_header, endian)?);
        }
        let memory = segments.iter().map(|s| s.size).sum();
        Ok(ProgramImage { entry: header.e_entry(endian), segments, memory })
    }

    /// The bytes of the program header table's end: how much of the file
    /// [`ProgramImage::parse`] needs.
    pub fn headers_end(bytes: &[u8]) -> Result<u64, Status> {
        let header = elf::FileHeader64::<Endianness>::parse(bytes).map_err(|_| Status::ArgBad)?;
        let endian = header.endian().map_err(|_| Status::ArgBad)?;
        let count = u64::from(header.e_phnum(endian));
        Ok(header.e_phoff(endian) + count * u64::from(header.e_phentsize(endian)))
    }
}

fn load_segment(
    header: &elf::ProgramHeader64<Endianness>,
    endian: Endianness,
) -> Result<LoadSegment, Status> {
    let vaddr = header.p_vaddr(endian);
    let start = vaddr - vaddr % PAGE_SIZE;
    let lead = vaddr - start;
    let end = vaddr
        .checked_add(header.p_memsz(endian))
        .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
        .ok_or(Status::ArgBad)?;
    // The bytes from the page start: the file holds them just before the segment's
    // own (ELF segments are congruent to their file offset modulo the page size).
    let file_offset = header.p_offset(endian).checked_sub(lead).ok_or(Status::ArgBad)?;
    if header.p_filesz(endian) > header.p_memsz(endian) {
        return Err(Status::ArgBad);
    }
    let p_flags = header.p_flags(endian);
    let flags = if p_flags & elf::PF_W != 0 { MAP_WRITE } else { 0 }
        | if p_flags & elf::PF_X != 0 { MAP_EXECUTE } else { 0 };
    Ok(LoadSegment {
        address: start,
        size: end - start,
        file_offset,
        file_length: lead + header.p_filesz(endian),
        flags,
    })
}

/// Where the program's bytes are.
#[derive(Clone, Copy, Debug)]
pub enum Program<'a> {
    /// Here, in memory: the client writes them into the segments.
    Bytes(&'a [u8]),
    /// In a file (Bullet, or a board's boot program): the target board reads them.
    File(Capability),
}

/// A process to start: what it is called and what it starts with.
#[derive(Clone, Debug)]
pub struct Exec {
    /// The name `ps` shows.
    pub name: String,
    /// argv, environment, capabilities.
    pub startup: Startup,
    /// `x2` of the first thread (the numeric argument of `fn main(u64)` programs).
    pub argument: u64,
    /// `SCHED_PREEMPTIVE` or `SCHED_RUN_TO_COMPLETION`.
    pub scheduling: u32,
    /// Heap size.
    pub heap_size: u64,
    /// What it may hold in the nucleus (more than the default needs the board's
    /// owner capability).
    pub quotas: Quotas,
}

impl Exec {
    /// A process named `name` with `argv` (the name first) and nothing else.
    pub fn new(name: &str, argv: &[&str]) -> Exec {
        Exec {
            name: String::from(name),
            startup: Startup { argv: argv.iter().map(|a| String::from(*a)).collect(), ..Startup::default() },
            argument: 0,
            scheduling: SCHED_PREEMPTIVE,
            heap_size: DEFAULT_HEAP_SIZE,
            quotas: Quotas::DEFAULT,
        }
    }

    /// With `argument` in the first thread's `x2` (what `fn main(u64)` gets).
    pub fn with_argument(mut self, argument: u64) -> Exec {
        self.argument = argument;
        self
    }

    /// With `scheduling` (`SCHED_PREEMPTIVE` or `SCHED_RUN_TO_COMPLETION`).
    pub fn with_scheduling(mut self, scheduling: u32) -> Exec {
        self.scheduling = scheduling;
        self
    }

    /// Adds a named capability to the environment.
    pub fn with_capability(mut self, name: &str, capability: Capability) -> Exec {
        self.startup.capabilities.push((String::from(name), capability));
        self
    }

    /// Memory the process needs on the board (program, stack, heap).
    pub fn memory_needed(&self, image: &ProgramImage) -> u64 {
        image.memory + STACK_SIZE + self.heap_size
    }
}

impl ProgramImage {
    /// The most contiguous memory the program needs in one piece: its largest
    /// segment, its stack or its heap.
    pub fn largest_piece(&self, heap_size: u64) -> u64 {
        self.segments.iter().map(|s| s.size).chain([STACK_SIZE, heap_size]).max().unwrap_or(0)
    }
}

/// Starts the program in `file` on the processor the run server `run_server`
/// chooses for it; the processor's name and the new process's capability.
pub fn exec_placed<T: Transport>(
    transport: &mut T,
    run_server: &Capability,
    file: &Capability,
    exec: &Exec,
) -> Result<(String, Capability), ExecError> {
    let image = read_image(transport, file)?;
    let request = PlacementRequest {
        program: exec.name.clone(),
        memory: image.largest_piece(exec.heap_size),
        text: Some(text_id(file)),
    };
    let placement = run::run_server::Client::new(&mut *transport)
        .find_host(run_server, &request)
        .map_err(failed("asking the run server for a processor", Party::RunServer))?;
    let process = self::exec(transport, &placement.capability, Program::File(*file), exec)?;
    Ok((placement.host, process))
}

/// Reads the program headers of a program file through its read operation.
pub fn read_image<T: Transport>(transport: &mut T, file: &Capability) -> Result<ProgramImage, ExecError> {
    let mut files = bullet::Client::new(&mut *transport);
    let mut head = files
        .read(file, 0, HEADER_READ)
        .map_err(failed("reading the program's headers", Party::FileServer))?;
    let end = ProgramImage::headers_end(&head)
        .map_err(failed("reading the program's headers", Party::FileServer))?;
    if end > head.len() as u64 {
        let size = u32::try_from(end)
            .map_err(|_| failed("reading the program's headers", Party::FileServer)(Status::ArgBad))?;
        head =
            files.read(file, 0, size).map_err(failed("reading the program's headers", Party::FileServer))?;
    }
    ProgramImage::parse(&head).map_err(failed("reading the program's headers", Party::FileServer))
}

/// Starts `exec` on the board whose host capability is `host`; returns the new
/// process's owner capability. Segments made before a failure are destroyed again.
///
/// A board that rebooted since this client last spoke to it answers
/// `ServerRestarted`: what the old incarnation held is gone and the new one did
/// nothing, so the whole exec starts over once.
pub fn exec<T: Transport>(
    transport: &mut T,
    host: &Capability,
    program: Program<'_>,
    exec: &Exec,
) -> Result<Capability, ExecError> {
    match exec_once(transport, host, program, exec) {
        Err(error) if error.status == Status::ServerRestarted => exec_once(transport, host, program, exec),
        result => result,
    }
}

fn exec_once<T: Transport>(
    transport: &mut T,
    host: &Capability,
    program: Program<'_>,
    exec: &Exec,
) -> Result<Capability, ExecError> {
    let image = match program {
        Program::Bytes(bytes) => {
            ProgramImage::parse(bytes).map_err(failed("reading the program", Party::Program))?
        }
        Program::File(file) => read_image(transport, &file)?,
    };
    let mut made = Vec::new();
    let result = build(transport, host, program, &image, exec, &mut made);
    if result.is_err() {
        let mut cleanup = standard::Client::new(&mut *transport);
        for mapping in &made {
            let _ = cleanup.destroy(&mapping.segment);
        }
    }
    result
}

fn build<T: Transport>(
    transport: &mut T,
    host: &Capability,
    program: Program<'_>,
    image: &ProgramImage,
    exec: &Exec,
    made: &mut Vec<SegmentMapping>,
) -> Result<Capability, ExecError> {
    for segment in &image.segments {
        let capability = program_segment(transport, host, program, segment)?;
        made.push(SegmentMapping { segment: capability, address: segment.address, flags: segment.flags });
    }
    let mut server = process_server::Client::new(&mut *transport);
    let stack =
        server.segment_create(host, STACK_SIZE).map_err(failed("creating the stack", Party::Processor))?;
    made.push(SegmentMapping { segment: stack, address: STACK_TOP - STACK_SIZE, flags: MAP_WRITE });
    let heap =
        server.segment_create(host, exec.heap_size).map_err(failed("creating the heap", Party::Processor))?;
    made.push(SegmentMapping { segment: heap, address: HEAP_BASE, flags: MAP_WRITE });
    let descriptor = ProcessDescriptor {
        name: exec.name.clone(),
        segments: made.clone(),
        thread: ThreadStart {
            entry: image.entry,
            stack_pointer: STACK_TOP,
            arguments: [HEAP_BASE, exec.heap_size, exec.argument],
        },
        scheduling: exec.scheduling,
        startup: startup_with_host(&exec.startup, host),
        quotas: exec.quotas,
    };
    server.process_create(host, &descriptor).map_err(failed("creating the process", Party::Processor))
}

/// `startup` with the board's host capability as `HOST`, unless it names one
/// already: a process may start processes on its own board (the
/// `process_create` system call wants that capability with the create
/// right). An owner capability is handed on restricted to the create right;
/// a restricted one (the run server's placement capability) as it is.
fn startup_with_host(startup: &Startup, host: &Capability) -> Startup {
    let mut startup = startup.clone();
    if startup.capability(HOST_CAPABILITY_NAME).is_none() {
        let handed = host.restrict(HOST_CREATE).unwrap_or(*host);
        startup.capabilities.push((String::from(HOST_CAPABILITY_NAME), handed));
    }
    startup
}

/// One program segment on the board, filled from the program.
fn program_segment<T: Transport>(
    transport: &mut T,
    host: &Capability,
    program: Program<'_>,
    segment: &LoadSegment,
) -> Result<Capability, ExecError> {
    let step = format!("loading the program segment at {:#x}", segment.address);
    let mut server = process_server::Client::new(&mut *transport);
    match program {
        Program::File(file) => {
            let source = SegmentSource {
                source: file,
                offset: segment.file_offset,
                length: segment.file_length,
                size: segment.size,
            };
            server.segment_create_from(host, &source).map_err(|status| {
                // The processor reads the file itself and passes on the file
                // server's failures as its own: ask the file server whether it
                // (and the file) can be reached from here, to blame the right one.
                let party = match bullet::Client::new(&mut *transport).size(&file) {
                    Ok(_) => Party::Processor,
                    Err(_) => Party::FileServer,
                };
                failed(&step, party)(status)
            })
        }
        Program::Bytes(bytes) => {
            let bad = |_| failed(&step, Party::Program)(Status::ArgBad);
            let start = usize::try_from(segment.file_offset).map_err(bad)?;
            let end = usize::try_from(segment.file_offset + segment.file_length).map_err(bad)?;
            let data = bytes.get(start..end).ok_or_else(|| failed(&step, Party::Program)(Status::ArgBad))?;
            let capability =
                server.segment_create(host, segment.size).map_err(failed(&step, Party::Processor))?;
            let written = data.chunks(SEGMENT_IO_MAX).enumerate().try_for_each(|(index, chunk)| {
                server.segment_write(&capability, (index * SEGMENT_IO_MAX) as u64, chunk)
            });
            if let Err(status) = written {
                let _ = standard::Client::new(&mut *transport).destroy(&capability);
                return Err(failed(&step, Party::Processor)(status));
            }
            Ok(capability)
        }
    }
}
