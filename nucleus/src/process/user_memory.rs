//! Access to a process's memory from the kernel. Every user address and
//! length is checked against the process's own mappings (with checked
//! arithmetic), and the bytes are reached through the segment table (the
//! kernel's linear map of the segment), never through the user's
//! translation table: a bad pointer becomes an error, never a kernel fault.

#![forbid(unsafe_code)]

use super::Core;
use super::thread::Pid;
use crate::memory::segments::Place;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Status};

pub const BAD_ADDRESS: Status = Status::RpcBadAddress;

pub use nucleus::call_types::UserRange;

impl Core {
    /// Where `va..va+len` of `pid` lives, which must lie in one mapping
    /// (writable if `write`).
    pub fn user_place(&self, pid: Pid, va: u64, len: u64, write: bool) -> Result<Place, Status> {
        let process = self.processes.get(&pid).ok_or(Status::NotFound)?;
        let mapping = process.mapping_for(va, len).ok_or(BAD_ADDRESS)?;
        if write && !mapping.flags.write {
            return Err(BAD_ADDRESS);
        }
        Ok(Place { segment: mapping.segment, offset: va as usize - mapping.va })
    }

    /// Checks that `va..va+len` of `pid` is mapped (writable if `write`).
    pub fn check_user(&self, pid: Pid, va: u64, len: u64, write: bool) -> Result<(), Status> {
        self.user_place(pid, va, len, write).map(drop)
    }

    /// A copy of `va..va+len` of `pid` on the kernel heap (`NoSpace` when the
    /// heap cannot take it).
    pub fn copy_from_user(&self, pid: Pid, va: u64, len: u64) -> Result<Vec<u8>, Status> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let place = self.user_place(pid, va, len, false)?;
        crate::heap::try_copy(self.segments.bytes(place, len as usize).map_err(|_| BAD_ADDRESS)?)
    }

    pub fn copy_to_user(&mut self, pid: Pid, va: u64, data: &[u8]) -> Result<(), Status> {
        if data.is_empty() {
            return Ok(());
        }
        let place = self.user_place(pid, va, data.len() as u64, true)?;
        self.segments.bytes_mut(place, data.len()).map_err(|_| BAD_ADDRESS)?.copy_from_slice(data);
        Ok(())
    }

    /// `N` bytes at `va` of `pid`, copied without the heap (a futex word, a
    /// capability: their cost must not follow the heap's state).
    fn read_user_array<const N: usize>(&self, pid: Pid, va: u64) -> Result<[u8; N], Status> {
        let place = self.user_place(pid, va, N as u64, false)?;
        let bytes = self.segments.bytes(place, N).map_err(|_| BAD_ADDRESS)?;
        bytes.try_into().map_err(|_| BAD_ADDRESS)
    }

    pub fn read_user_u32(&self, pid: Pid, va: u64) -> Result<u32, Status> {
        if !va.is_multiple_of(4) {
            return Err(BAD_ADDRESS);
        }
        self.read_user_array(pid, va).map(u32::from_le_bytes)
    }

    pub fn read_user_capability(&self, pid: Pid, va: u64) -> Result<Capability, Status> {
        let bytes: [u8; Capability::LEN] = self.read_user_array(pid, va)?;
        Ok(Capability::decode(&bytes))
    }

    /// Checks that a capability can be written at `va` of `pid`.
    pub fn check_capability_out(&self, pid: Pid, va: u64) -> Result<(), Status> {
        self.check_user(pid, va, Capability::LEN as u64, true)
    }
}
