//! Memory segments: contiguous memory named by a capability, which can be
//! read and written through the nucleus, and mapped into this and other
//! processes (shared memory).

use super::sys;
use amoeba_abi::syscall::MAP_WRITE;
use amoeba_abi::{Capability, Status};
use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, AtomicU64};

/// A segment this process can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    cap: Capability,
    size: u64,
}

impl Segment {
    /// Creates a zeroed segment of at least `size` bytes, owned by this
    /// process (destroyed when it exits, unless destroyed before).
    pub fn create(size: u64) -> Result<Segment, Status> {
        Ok(Segment { cap: sys::segment_create(size)?, size })
    }

    /// A segment known by capability, of `size` bytes (at most its real
    /// size: a [`Mapping`] from [`Segment::map`] covers `size` bytes).
    pub fn from_capability(cap: Capability, size: u64) -> Segment {
        Segment { cap, size }
    }

    /// The capability.
    pub fn capability(&self) -> &Capability {
        &self.cap
    }

    /// The size asked for at creation.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Maps the segment at `address` (page aligned, free), writable if
    /// `writable`.
    pub fn map(&self, address: u64, writable: bool) -> Result<Mapping, Status> {
        sys::segment_map(&self.cap, address, if writable { MAP_WRITE } else { 0 })?;
        Ok(Mapping { base: address, len: self.size as usize, _not_sync: PhantomData })
    }

    /// Maps the segment at `address` with raw `MAP_*` flags (including
    /// [`amoeba_abi::syscall::MAP_EXECUTE`]), returning nothing to access it with.
    pub fn map_raw(&self, address: u64, flags: u64) -> Result<(), Status> {
        sys::segment_map(&self.cap, address, flags)
    }

    /// Copies from offset `offset` of the segment into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Status> {
        sys::segment_read(&self.cap, offset, buf)
    }

    /// Copies `buf` to offset `offset` of the segment.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<usize, Status> {
        sys::segment_write(&self.cap, offset, buf)
    }

    /// A capability for the segment with only `rights` (of the nucleus's
    /// standard bits: read 0x02, modify 0x04, delete 0x08).
    pub fn restrict(&self, rights: u8) -> Result<Capability, Status> {
        sys::restrict(&self.cap, rights)
    }

    /// Destroys the segment (its memory goes once no process maps it).
    pub fn destroy(self) -> Result<(), Status> {
        sys::segment_destroy(&self.cap)
    }
}

/// A mapped range of memory that may be shared with other processes, so
/// it is reached only through volatile copies and atomics, never through
/// plain references. Not `Sync`: share atomics, not the mapping.
pub struct Mapping {
    base: u64,
    len: usize,
    _not_sync: PhantomData<Cell<u8>>,
}

impl Mapping {
    /// A mapping someone else made, for example a segment the parent put in
    /// the process descriptor, whose address came as the argument.
    ///
    /// # Safety
    ///
    /// `base..base+len` must be mapped (writable if written through this
    /// mapping) for as long as the `Mapping` lives, and not accessed in this
    /// process except through it.
    pub unsafe fn from_raw(base: u64, len: usize) -> Mapping {
        Mapping { base, len, _not_sync: PhantomData }
    }

    /// The address it starts at.
    pub fn address(&self) -> u64 {
        self.base
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, offset: usize, len: usize, align: usize) -> *mut u8 {
        let end = offset.checked_add(len).expect("mapping offset overflows");
        assert!(end <= self.len, "mapping access {offset}+{len} past its end {}", self.len);
        let address = self.base as usize + offset;
        assert!(address.is_multiple_of(align), "misaligned mapping access at {address:#x}");
        address as *mut u8
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        let from = self.at(offset, buf.len(), 1);
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: `at` checked the range lies in the mapping, which
            // `from_raw`/`map` guarantee is mapped.
            *byte = unsafe { from.add(i).read_volatile() };
        }
    }

    /// Copies `buf` to `offset`.
    pub fn write(&self, offset: usize, buf: &[u8]) {
        let to = self.at(offset, buf.len(), 1);
        for (i, byte) in buf.iter().enumerate() {
            // SAFETY: as in `read`; the mapping is writable (its maker's
            // promise; the nucleus kills the process otherwise).
            unsafe { to.add(i).write_volatile(*byte) };
        }
    }

    /// The aligned 32-bit word at `offset`, as an atomic (for flags and
    /// futexes shared with other processes).
    pub fn atomic_u32(&self, offset: usize) -> &AtomicU32 {
        let at = self.at(offset, 4, 4);
        // SAFETY: in the mapping, aligned, valid for any bits, and only ever
        // accessed atomically or volatilely; it lives as long as `self`.
        unsafe { AtomicU32::from_ptr(at.cast()) }
    }

    /// The aligned 64-bit word at `offset`, as an atomic.
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        let at = self.at(offset, 8, 8);
        // SAFETY: as in `atomic_u32`.
        unsafe { AtomicU64::from_ptr(at.cast()) }
    }

    /// Unmaps it.
    pub fn unmap(self) -> Result<(), Status> {
        // SAFETY: the memory is reached only through this mapping, which is
        // consumed here.
        unsafe { sys::segment_unmap(self.base) }
    }
}
