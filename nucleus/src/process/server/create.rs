//! A process from a descriptor (`process_create`): the segments it names are
//! checked (this board's, live, not another process's, with the rights their
//! mappings need), mapped, and handed over to the new process; the startup
//! block (argv, environment, capabilities) goes below the first thread's
//! stack pointer; the first thread starts.

#![forbid(unsafe_code)]

use crate::arch::mmu::MapFlags;
use crate::memory::segments::{Place, SegmentId};
use crate::process::Core;
use crate::process::thread::Pid;
use alloc::vec::Vec;
use amoeba_abi::{Port, Status};
use amoeba_ipc::interfaces::process::{ProcessDescriptor, SegmentMapping};
use nucleus::server_requests::{is_run_to_completion, map_flags};

/// Most segments one descriptor may name.
const MAX_SEGMENTS: usize = 64;
/// Largest startup block (argv, environment, capabilities).
const MAX_STARTUP: usize = 16 * 1024;

/// A checked mapping of the descriptor.
struct Checked {
    id: SegmentId,
    va: usize,
    flags: MapFlags,
}

fn check_mapping(core: &Core, port: Port, mapping: &SegmentMapping) -> Result<Checked, Status> {
    if mapping.segment.port != port {
        return Err(Status::ArgBad); // a segment of another board
    }
    let (flags, needed) = map_flags(u64::from(mapping.flags))?;
    let (id, segment) = core.segments.lookup(&mapping.segment, needed)?;
    if segment.owner.is_some() {
        return Err(Status::Denied); // another process's memory
    }
    let va = usize::try_from(mapping.address).map_err(|_| Status::ArgBad)?;
    Ok(Checked { id, va, flags })
}

/// Makes the process; its pid. On failure nothing of it is left, and the
/// segments stay the caller's.
pub fn create_process(core: &mut Core, port: Port, descriptor: &ProcessDescriptor) -> Result<Pid, Status> {
    if descriptor.segments.is_empty() || descriptor.segments.len() > MAX_SEGMENTS {
        return Err(Status::ArgBad);
    }
    let checked =
        descriptor.segments.iter().map(|m| check_mapping(core, port, m)).collect::<Result<Vec<_>, _>>()?;
    if checked.iter().enumerate().any(|(i, a)| checked[..i].iter().any(|b| b.id == a.id)) {
        return Err(Status::ArgBad); // one segment twice
    }
    let block = descriptor.startup.to_block();
    if block.len() > MAX_STARTUP {
        return Err(Status::ArgBad);
    }
    let run_to_completion = is_run_to_completion(descriptor.scheduling);
    let pid = core.new_process(&descriptor.name, run_to_completion, descriptor.quotas)?;
    match build(core, pid, descriptor, &checked, &block) {
        Ok(()) => {
            for mapping in &checked {
                core.segments.set_owner(mapping.id, pid);
            }
            Ok(pid)
        }
        Err(status) => {
            core.exit_process(pid, status as i32);
            core.forget_process(pid);
            Err(status)
        }
    }
}

fn build(
    core: &mut Core,
    pid: Pid,
    descriptor: &ProcessDescriptor,
    checked: &[Checked],
    block: &[u8],
) -> Result<(), Status> {
    for mapping in checked {
        core.map_segment(pid, mapping.id, mapping.va, mapping.flags)?;
    }
    let thread = &descriptor.thread;
    let startup = place_startup(core, checked, thread.stack_pointer, block)?;
    if checked.iter().any(|m| m.flags.execute) {
        // Instruction fetches must see the code the segments were filled with.
        crate::arch::cache::sync_instruction_cache();
    }
    let [x0, x1, x2] = thread.arguments;
    core.spawn_user_thread(pid, thread.entry, startup, [x0, x1, x2, startup])?;
    Ok(())
}

/// Writes the startup block just below `stack_pointer` (16-byte aligned, in
/// the writable mapping that holds the stack); its address, which is also the
/// first thread's stack pointer.
fn place_startup(
    core: &mut Core,
    checked: &[Checked],
    stack_pointer: u64,
    block: &[u8],
) -> Result<u64, Status> {
    let address = stack_pointer.checked_sub(block.len() as u64).ok_or(Status::ArgBad)? & !0xf;
    let stack = checked
        .iter()
        .find(|m| {
            let len = core.segments.get(m.id).map_or(0, |s| s.len()) as u64;
            m.flags.write && m.va as u64 <= address && stack_pointer <= m.va as u64 + len
        })
        .ok_or(Status::ArgBad)?;
    let at = Place { segment: stack.id, offset: (address - stack.va as u64) as usize };
    core.segments.bytes_mut(at, block.len())?.copy_from_slice(block);
    Ok(address)
}
