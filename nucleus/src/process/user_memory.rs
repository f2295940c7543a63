//! Access to a process's memory from the kernel. Every user address and
//! length is checked against the process's own mappings (with checked
//! arithmetic), and the bytes are reached through the kernel's linear map of
//! the segment, never through the user's translation table: a bad pointer
//! becomes an error, never a kernel fault.

use super::{Kernel, Pid};
use crate::board;
use alloc::vec::Vec;
use amoeba::Status;

pub const BAD_ADDRESS: Status = Status::RpcBadAddress;

impl Kernel {
    /// The physical address of `va..va+len` in `pid`, which must lie in one
    /// mapping (writable if `write`).
    pub fn user_phys(&self, pid: Pid, va: u64, len: u64, write: bool) -> Result<usize, Status> {
        let process = self.processes.get(&pid).ok_or(Status::NotFound)?;
        let mapping = process.mapping_for(va, len).ok_or(BAD_ADDRESS)?;
        if write && !mapping.flags.write {
            return Err(BAD_ADDRESS);
        }
        let segment = self.segments.get(mapping.segment).ok_or(BAD_ADDRESS)?;
        Ok(segment.phys.start + (va as usize - mapping.va))
    }

    pub fn copy_from_user(&self, pid: Pid, va: u64, len: u64) -> Result<Vec<u8>, Status> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let phys = self.user_phys(pid, va, len, false)?;
        // SAFETY: `user_phys` checked that the whole range lies in a segment
        // mapped by this process; segments are linearly mapped kernel memory.
        let bytes =
            unsafe { core::slice::from_raw_parts(board::phys_to_virt(phys) as *const u8, len as usize) };
        Ok(bytes.to_vec())
    }

    pub fn copy_to_user(&self, pid: Pid, va: u64, data: &[u8]) -> Result<(), Status> {
        if data.is_empty() {
            return Ok(());
        }
        let phys = self.user_phys(pid, va, data.len() as u64, true)?;
        // SAFETY: as in `copy_from_user`, and the mapping is writable.
        let bytes =
            unsafe { core::slice::from_raw_parts_mut(board::phys_to_virt(phys) as *mut u8, data.len()) };
        bytes.copy_from_slice(data);
        Ok(())
    }

    pub fn read_user_u32(&self, pid: Pid, va: u64) -> Result<u32, Status> {
        if !va.is_multiple_of(4) {
            return Err(BAD_ADDRESS);
        }
        let bytes = self.copy_from_user(pid, va, 4)?;
        Ok(u32::from_le_bytes(bytes.try_into().map_err(|_| BAD_ADDRESS)?))
    }

    pub fn read_user_capability(&self, pid: Pid, va: u64) -> Result<amoeba::Capability, Status> {
        let bytes = self.copy_from_user(pid, va, amoeba::Capability::LEN as u64)?;
        amoeba::Capability::from_slice(&bytes).ok_or(BAD_ADDRESS)
    }
}
