//! Builds a process from an ELF program of the board's bundle: one segment
//! per loadable ELF segment, a stack and a heap, and a first thread.
//!
//! The first thread starts at the ELF entry with x0 = heap base, x1 = heap
//! size, x2 = the descriptor's argument, x3 = the address of the capability
//! it was given, copied to the top of its stack, or 0 (see the user runtime
//! in `amoeba`).

#![forbid(unsafe_code)]

use super::Core;
use super::thread::Pid;
use crate::arch::mmu::{MapFlags, PAGE_SIZE};
use crate::memory::segments::{Place, SegmentId};
use alloc::string::String;
use amoeba_abi::{Capability, Status};
use amoeba_ipc::interfaces::process::{Quotas, Startup};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, elf};
use pool_control::bundle::Bundle;

pub const STACK_TOP: usize = 0x7000_0000;
pub const STACK_SIZE: usize = 64 * 1024;
pub const HEAP_BASE: usize = 0x1000_0000;
pub const HEAP_SIZE: usize = 4 << 20;

/// A process to start from a program of the board's bundle.
pub struct FromBundle<'a> {
    /// The program's name in the bundle.
    pub name: &'a str,
    /// `x2` of its first thread.
    pub argument: u64,
    /// Its capability environment (in a startup block at the top of its stack).
    pub capabilities: &'a [(&'a str, Capability)],
    /// Run-to-completion scheduling instead of time slices.
    pub run_to_completion: bool,
    /// Segments mapped besides the program's own: (segment, address, flags).
    pub extra: &'a [(SegmentId, usize, MapFlags)],
    /// What it may hold in the nucleus.
    pub quotas: Quotas,
}

/// Starts the process `what` describes from `bundle`.
pub fn spawn_from_bundle(core: &mut Core, bundle: &[u8], what: &FromBundle<'_>) -> Result<Pid, Status> {
    let bundle = Bundle::parse(bundle).map_err(|_| Status::NotFound)?;
    let program = bundle.find(what.name).ok_or(Status::NotFound)?;
    let pid = core.new_process(what.name, what.run_to_completion, what.quotas)?;
    match build(core, pid, program, what) {
        Ok(()) => Ok(pid),
        Err(status) => {
            core.exit_process(pid, status as i32);
            core.forget_process(pid);
            Err(status)
        }
    }
}

/// A fresh (zeroed) segment owned by `pid`, mapped at `va`; where it starts.
fn new_mapped_segment(
    core: &mut Core,
    pid: Pid,
    va: usize,
    len: usize,
    flags: MapFlags,
) -> Result<Place, Status> {
    let (id, _) = core.create_segment(len, Some(pid))?;
    core.map_segment(pid, id, va, flags)?;
    Ok(Place { segment: id, offset: 0 })
}

/// Writes `data` at `offset` of the segment that starts at `start`.
fn fill(core: &mut Core, start: Place, offset: usize, data: &[u8]) -> Result<(), Status> {
    let at = Place { segment: start.segment, offset: start.offset + offset };
    core.segments.bytes_mut(at, data.len())?.copy_from_slice(data);
    Ok(())
}

fn build(core: &mut Core, pid: Pid, program: &[u8], what: &FromBundle<'_>) -> Result<(), Status> {
    let FromBundle { argument, capabilities, extra, .. } = *what;
    let file = ElfFile64::<Endianness>::parse(program).map_err(|_| Status::ArgBad)?;
    let endian = file.endian();
    let header = file.elf_header();
    if header.e_machine(endian) != elf::EM_AARCH64 || header.e_type(endian) != elf::ET_EXEC {
        return Err(Status::ArgBad);
    }
    for segment in file.elf_program_headers() {
        if segment.p_type(endian) != elf::PT_LOAD || segment.p_memsz(endian) == 0 {
            continue;
        }
        let vaddr = usize::try_from(segment.p_vaddr(endian)).map_err(|_| Status::ArgBad)?;
        let memsz = usize::try_from(segment.p_memsz(endian)).map_err(|_| Status::ArgBad)?;
        let start = vaddr - vaddr % PAGE_SIZE;
        let end = vaddr
            .checked_add(memsz)
            .and_then(|e| e.checked_next_multiple_of(PAGE_SIZE))
            .ok_or(Status::ArgBad)?;
        let p_flags = segment.p_flags(endian);
        let flags = MapFlags { write: p_flags & elf::PF_W != 0, execute: p_flags & elf::PF_X != 0 };
        let data = segment.data(endian, program).map_err(|_| Status::ArgBad)?;
        if data.len() > memsz {
            return Err(Status::ArgBad);
        }
        let segment = new_mapped_segment(core, pid, start, end - start, flags)?;
        fill(core, segment, vaddr - start, data)?;
    }
    let writable = MapFlags { write: true, execute: false };
    let stack = new_mapped_segment(core, pid, STACK_TOP - STACK_SIZE, STACK_SIZE, writable)?;
    // The capabilities go into the startup block at the top of the stack,
    // above the first frame; the stack pointer stays below it.
    let (sp, capability_address) = if capabilities.is_empty() {
        (STACK_TOP, 0)
    } else {
        let startup = Startup {
            capabilities: capabilities.iter().map(|(name, cap)| (String::from(*name), *cap)).collect(),
            ..Startup::default()
        };
        let block = startup.to_block();
        if block.len() > STACK_SIZE / 2 {
            return Err(Status::ArgBad);
        }
        fill(core, stack, STACK_SIZE - block.len(), &block)?;
        (STACK_TOP - block.len(), (STACK_TOP - block.len()) as u64)
    };
    new_mapped_segment(core, pid, HEAP_BASE, HEAP_SIZE, writable)?;
    for &(id, va, flags) in extra {
        core.map_segment(pid, id, va, flags)?;
    }
    // Instruction fetches must see the code just written through the data side.
    crate::arch::cache::sync_instruction_cache();
    let entry = header.e_entry(endian);
    let args = [HEAP_BASE as u64, HEAP_SIZE as u64, argument, capability_address];
    core.spawn_user_thread(pid, entry, sp as u64, args)?;
    Ok(())
}
