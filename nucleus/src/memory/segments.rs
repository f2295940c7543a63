//! Segments: contiguous runs of physical memory, named by capabilities.
//! A segment lives until it is destroyed (or its creator exits); its memory
//! returns to the allocator when, in addition, no process maps it any more.

use crate::arch::mmu::BLOCK_SIZE;
use crate::board;
use alloc::collections::BTreeMap;
use amoeba_abi::{Capability, Check, Port, Rights, Status};
use core::ops::Range;
use nucleus::contiguous::{ContiguousAllocator, FRAME_SIZE};

pub type SegmentId = u32;

pub struct Segment {
    pub phys: Range<usize>,
    random: Check,
    pub mappings: u32,
    pub owner: Option<u32>,
    /// Counts against its owner's segment quota (it made the segment itself).
    pub charged: bool,
    /// `STD_AGE` calls since it was last used (only free-standing segments
    /// age: see [`SegmentTable::age`]).
    pub age: u8,
    pub destroyed: bool,
}

impl Segment {
    pub fn len(&self) -> usize {
        self.phys.end - self.phys.start
    }

    /// The kernel's (linear-map) address of `offset..offset + len` of the
    /// segment, if that range lies inside it.
    fn address(&self, offset: usize, len: usize) -> Result<*mut u8, Status> {
        let end = offset.checked_add(len).ok_or(Status::ArgBad)?;
        if end > self.len() {
            return Err(Status::ArgBad);
        }
        Ok(board::phys_to_virt(self.phys.start + offset) as *mut u8)
    }
}

/// A place in a segment: its id and an offset into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub segment: SegmentId,
    pub offset: usize,
}

/// The largest segment a board makes.
pub const MAX_SEGMENT: usize = 1 << 40;

pub struct SegmentTable {
    segments: BTreeMap<SegmentId, Segment>,
    /// The process server's put-port: segments are its objects, numbered
    /// with its processes (the core hands out the numbers).
    pub port: Port,
    pub memory: ContiguousAllocator,
}

impl SegmentTable {
    pub fn new(port: Port, memory: ContiguousAllocator) -> Self {
        Self { segments: BTreeMap::new(), port, memory }
    }

    /// Whether object number `id` is a segment (even one destroyed but
    /// still mapped).
    pub fn contains(&self, id: SegmentId) -> bool {
        self.segments.contains_key(&id)
    }

    /// The random check of a live segment.
    pub fn check_of(&self, id: SegmentId) -> Option<Check> {
        self.segments.get(&id).filter(|s| !s.destroyed).map(|s| s.random)
    }

    /// Hands a segment over to process `owner` (it goes when the process ends).
    pub fn set_owner(&mut self, id: SegmentId, owner: u32) {
        if let Some(segment) = self.segments.get_mut(&id) {
            segment.owner = Some(owner);
        }
    }

    /// Live segments: (id, length, owner).
    pub fn list(&self) -> impl Iterator<Item = (SegmentId, usize, Option<u32>)> + '_ {
        self.segments.iter().filter(|(_, s)| !s.destroyed).map(|(&id, s)| (id, s.len(), s.owner))
    }

    /// A new zeroed segment numbered `id` (unused: the core's
    /// `create_segment` picks it) of at least `size` bytes.
    pub fn create(
        &mut self,
        id: SegmentId,
        size: usize,
        align: usize,
        owner: Option<u32>,
        random: Check,
    ) -> Result<(SegmentId, Capability), Status> {
        if size == 0 || size > MAX_SEGMENT {
            return Err(Status::ArgBad);
        }
        if self.segments.contains_key(&id) {
            return Err(Status::Exists);
        }
        // Large segments start on a 2 MiB boundary when memory allows, so
        // that they can be mapped with 2 MiB blocks instead of pages.
        let large = size >= BLOCK_SIZE;
        let phys = large
            .then(|| self.memory.allocate(size, align.max(BLOCK_SIZE)).ok())
            .flatten()
            .map_or_else(|| self.memory.allocate(size, align.max(FRAME_SIZE)), Ok)
            .map_err(|_| Status::NoSpace)?;
        let len = phys.end - phys.start;
        self.segments.insert(
            id,
            Segment { phys, random, mappings: 0, owner, charged: false, age: 0, destroyed: false },
        );
        self.bytes_mut(Place { segment: id, offset: 0 }, len)?.fill(0);
        Ok((id, Capability::owner(self.port, id, random)))
    }

    /// `len` bytes of segment memory from `at`, for reading. Segment memory
    /// is reached only through the table, so a shared borrow of the table
    /// rules out writes (EL0 code does not run while the kernel does).
    pub fn bytes(&self, at: Place, len: usize) -> Result<&[u8], Status> {
        let address = self.segments.get(&at.segment).ok_or(Status::CapBad)?.address(at.offset, len)?;
        // SAFETY: the range lies inside the segment (checked by `address`),
        // memory the allocator gave this segment alone and that stays
        // allocated while the table holds it; the borrow of the table keeps
        // every writer away for the slice's lifetime.
        Ok(unsafe { core::slice::from_raw_parts(address, len) })
    }

    /// `len` bytes of segment memory from `at`, for writing.
    pub fn bytes_mut(&mut self, at: Place, len: usize) -> Result<&mut [u8], Status> {
        let address = self.segments.get(&at.segment).ok_or(Status::CapBad)?.address(at.offset, len)?;
        // SAFETY: as in `bytes`; the table is borrowed mutably, so this is
        // the only reference to segment memory.
        Ok(unsafe { core::slice::from_raw_parts_mut(address, len) })
    }

    /// Copies `len` bytes between two places of segment memory, which may
    /// be the same segment and may overlap.
    pub fn copy(&mut self, from: Place, to: Place, len: usize) -> Result<(), Status> {
        let source = self.segments.get(&from.segment).ok_or(Status::CapBad)?.address(from.offset, len)?;
        let target = self.segments.get(&to.segment).ok_or(Status::CapBad)?.address(to.offset, len)?;
        // SAFETY: both ranges lie inside live segments (checked by
        // `address`); the table is borrowed mutably, so no slice of segment
        // memory exists; `copy` allows the ranges to overlap.
        unsafe { core::ptr::copy(source, target, len) };
        Ok(())
    }

    /// Checks a capability and the rights it must carry.
    pub fn lookup(&self, cap: &Capability, needed: Rights) -> Result<(SegmentId, &Segment), Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let id = cap.object;
        let segment = self.segments.get(&id).filter(|s| !s.destroyed).ok_or(Status::CapBad)?;
        let rights = amoeba_abi::verify(&segment.random, cap).map_err(|_| Status::CapBad)?;
        if !rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok((id, segment))
    }

    pub fn get(&self, id: SegmentId) -> Option<&Segment> {
        self.segments.get(&id)
    }

    pub fn get_mut(&mut self, id: SegmentId) -> Option<&mut Segment> {
        self.segments.get_mut(&id)
    }

    /// Marks a segment destroyed; its memory goes once nobody maps it.
    pub fn destroy(&mut self, id: SegmentId) {
        if let Some(segment) = self.segments.get_mut(&id) {
            segment.destroyed = true;
        }
        self.release_if_unused(id);
    }

    /// Drops one mapping of `id`.
    pub fn unmapped(&mut self, id: SegmentId) {
        if let Some(segment) = self.segments.get_mut(&id) {
            segment.mappings = segment.mappings.saturating_sub(1);
        }
        self.release_if_unused(id);
    }

    fn release_if_unused(&mut self, id: SegmentId) {
        let unused = self.segments.get(&id).is_some_and(|s| s.destroyed && s.mappings == 0);
        if unused && let Some(segment) = self.segments.remove(&id) {
            let _ = self.memory.free(segment.phys);
        }
    }

    /// The segments charged to process `owner` (until their memory is free,
    /// even once destroyed): how many, and their bytes.
    pub fn charged_to(&self, owner: u32) -> (u32, u64) {
        self.segments
            .values()
            .filter(|s| s.charged && s.owner == Some(owner))
            .fold((0, 0), |(count, bytes), s| (count + 1, bytes + s.len() as u64))
    }

    /// Someone used segment `id` (a verified request named it): it starts
    /// its life again.
    pub fn touch(&mut self, id: SegmentId) {
        if let Some(segment) = self.segments.get_mut(&id) {
            segment.age = 0;
        }
    }

    /// One `STD_AGE`: every free-standing segment (no process owns or maps
    /// it: made by a remote client for a process not started yet) grows one
    /// older, and those `max_life` ages old without a touch are destroyed
    /// (a client that made one and then died, say). The number destroyed.
    pub fn age(&mut self, max_life: u8) -> u32 {
        let mut expired = alloc::vec::Vec::new();
        for (&id, segment) in self.segments.iter_mut() {
            if segment.owner.is_none() && segment.mappings == 0 && !segment.destroyed {
                segment.age = segment.age.saturating_add(1);
                if segment.age >= max_life {
                    expired.push(id);
                }
            }
        }
        for &id in &expired {
            self.destroy(id);
        }
        expired.len() as u32
    }

    /// Destroys every segment `owner` created.
    pub fn destroy_owned_by(&mut self, owner: u32) {
        let owned: alloc::vec::Vec<SegmentId> =
            self.segments.iter().filter(|(_, s)| s.owner == Some(owner)).map(|(&id, _)| id).collect();
        for id in owned {
            self.destroy(id);
        }
    }

    /// A capability with at most `rights`, for a holder of `cap`.
    pub fn restrict(&self, cap: &Capability, rights: Rights) -> Result<Capability, Status> {
        let (_, segment) = self.lookup(cap, Rights::NONE)?;
        let held = amoeba_abi::verify(&segment.random, cap).map_err(|_| Status::CapBad)?;
        let granted = Rights(held.bits() & rights.bits());
        Capability::owner(self.port, cap.object, segment.random).restrict(granted).map_err(|_| Status::CapBad)
    }
}
