//! Segment calls and the memory report.

#![forbid(unsafe_code)]

use crate::arch::mmu::MapFlags;
use crate::memory::segments::Place;
use crate::process::Core;
use crate::process::outcome::Outcome;
use crate::process::thread::Pid;
use amoeba_abi::{Rights, Status};
use nucleus::syscall_args::SegmentCopy;

/// segment_create: a segment owned by (and charged to) the caller, within
/// its quota of segments by count and by bytes.
pub fn create(core: &mut Core, pid: Pid, size: usize, cap_out: u64) -> Outcome {
    let result = (|| {
        // Check the output first, so a bad pointer creates nothing.
        core.check_capability_out(pid, cap_out)?;
        let quotas = core.processes.get(&pid).ok_or(Status::NotFound)?.quotas;
        let (count, bytes) = core.segments.charged_to(pid);
        let fits = (size as u64).checked_add(bytes).is_some_and(|total| total <= quotas.segment_bytes);
        if count >= quotas.segments || !fits {
            return Err(Status::NoSpace);
        }
        let (id, cap) = core.create_segment(size, Some(pid))?;
        if let Some(segment) = core.segments.get_mut(id) {
            segment.charged = true;
        }
        if let Err(status) = core.copy_to_user(pid, cap_out, &cap.encode()) {
            core.segments.destroy(id);
            return Err(status);
        }
        Ok(())
    })();
    Outcome::of(result)
}

pub fn map(core: &mut Core, pid: Pid, cap: u64, va: usize, flags: MapFlags, needed: Rights) -> Outcome {
    let result = (|| {
        let cap = core.read_user_capability(pid, cap)?;
        let (id, _) = core.segments.lookup(&cap, needed)?;
        core.map_segment(pid, id, va, flags)
    })();
    Outcome::of(result)
}

/// segment_read (`write` false) or segment_write: between the segment and
/// the caller's buffer.
pub fn copy(core: &mut Core, pid: Pid, args: &SegmentCopy, write: bool) -> Outcome {
    let result = (|| {
        let cap = core.read_user_capability(pid, args.cap)?;
        let needed = if write { Rights::MODIFY } else { Rights::READ };
        let (id, segment) = core.segments.lookup(&cap, needed)?;
        let len = args.buffer.len;
        let end = args.offset.checked_add(len).ok_or(Status::ArgBad)?;
        if end > segment.len() as u64 {
            return Err(Status::ArgBad);
        }
        if len == 0 {
            return Ok(0);
        }
        let segment_place = Place { segment: id, offset: args.offset as usize };
        // The user buffer is checked before anything is copied.
        let user = core.user_place(pid, args.buffer.va, len, !write)?;
        let (from, to) = if write { (user, segment_place) } else { (segment_place, user) };
        core.segments.copy(from, to, len as usize)?;
        Ok(len)
    })();
    Outcome::from(result)
}

pub fn destroy(core: &mut Core, pid: Pid, cap: u64) -> Outcome {
    let result = (|| {
        let cap = core.read_user_capability(pid, cap)?;
        let (id, _) = core.segments.lookup(&cap, Rights::DELETE)?;
        core.segments.destroy(id);
        Ok(())
    })();
    Outcome::of(result)
}

/// memory_info: free bytes, largest free run, number of free runs.
pub fn info(core: &mut Core, pid: Pid, out: u64) -> Outcome {
    let info = core.segments.memory.fragmentation();
    let mut bytes = [0u8; 24];
    for (field, value) in bytes.chunks_exact_mut(8).zip([info.free_bytes, info.largest_free, info.free_runs])
    {
        field.copy_from_slice(&(value as u64).to_le_bytes());
    }
    Outcome::of(core.copy_to_user(pid, out, &bytes))
}
