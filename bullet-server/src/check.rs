//! Self-checks the tests call: the in-memory bookkeeping adds up (every data block is
//! exactly one of: a committed file's, a file's being written, free, or waiting to be
//! free), and the superblock copies and the inode table on disk say what memory says.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::device::{BlockDevice, read_run};
use amoeba_abi::Check;

use crate::layout::{DiskInode, Placement, Superblock, check_inode, decode_inode_block};
use crate::store::{File, Store};

/// What a self-check found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inconsistency(pub String);

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bullet store inconsistent: {}", self.0)
    }
}

impl core::error::Error for Inconsistency {}

fn fail<T>(what: String) -> Result<T, Inconsistency> {
    Err(Inconsistency(what))
}

/// Who a run of blocks belongs to, for the messages.
#[derive(Clone, Copy, Debug)]
enum Owner {
    /// The committed file of this inode.
    File(u32),
    /// The run reserved for the file of this inode, being written.
    Reserved(u32),
    /// The free list.
    Free,
    /// Blocks given up, waiting for this inode block to be written.
    Waiting(u32),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::File(inode) => write!(f, "the file of inode {inode}"),
            Owner::Reserved(inode) => write!(f, "the run reserved for inode {inode}"),
            Owner::Free => f.write_str("the free list"),
            Owner::Waiting(block) => write!(f, "blocks waiting for inode block {block}"),
        }
    }
}

impl<D: BlockDevice> Store<D> {
    /// Check the in-memory state: every data block belongs to exactly one committed
    /// file, the free list or the blocks waiting to be freed (nothing leaked, nothing
    /// doubly allocated); files fit the geometry; waiting blocks wait for a changed
    /// inode block; the memory and cache counts add up.
    pub fn check_consistency(&self) -> Result<(), Inconsistency> {
        let mut runs = Vec::new();
        let mut uncommitted = 0;
        for (n, file) in self.files.iter().enumerate() {
            match file {
                Some(File::Committed { random, size, place }) => {
                    let inode = DiskInode { random: *random, size: *size, place: *place };
                    if place.blocks != self.geo.blocks_for(*size as u64)
                        || check_inode(&inode, &self.geo).is_err()
                    {
                        return fail(format!("file {n} has a bad placement {place:?} for {size} bytes"));
                    }
                    runs.extend(place.runs().map(|(s, l)| (s, l, Owner::File(n as u32))));
                }
                Some(File::Uncommitted { data, .. }) => uncommitted += data.len(),
                Some(File::Reserved { size, start, written, .. }) => {
                    let blocks = self.geo.blocks_for(*size as u64);
                    let place = Placement::single(*start, blocks);
                    let inode = DiskInode { random: Check([0; 6]), size: *size, place };
                    if *written > *size as u64 || check_inode(&inode, &self.geo).is_err() {
                        return fail(format!("reserved file {n} has a bad run {place:?} for {size} bytes"));
                    }
                    if blocks > 0 {
                        runs.push((*start, blocks, Owner::Reserved(n as u32)));
                    }
                }
                None => {}
            }
        }
        runs.extend(self.free.holes().map(|(s, l)| (s, l, Owner::Free)));
        for f in &self.freed {
            if !self.dirty.contains(&f.block) {
                return fail(format!("blocks {f:?} wait for an inode block that is not dirty"));
            }
            runs.push((f.start, f.len, Owner::Waiting(f.block)));
        }
        self.check_tiling(runs)?;
        if uncommitted != self.uncommitted_bytes {
            return fail(format!("uncommitted bytes {} counted as {}", uncommitted, self.uncommitted_bytes));
        }
        self.check_cache()
    }

    /// The runs must tile the data area exactly: no gap (leak), no overlap.
    fn check_tiling(&self, mut runs: Vec<(u64, u64, Owner)>) -> Result<(), Inconsistency> {
        runs.sort_unstable_by_key(|r| r.0);
        let mut next = self.geo.data_start;
        let mut previous = Owner::Free;
        for (start, len, owner) in runs {
            if start > next {
                return fail(format!("blocks {next}..{start} belong to nobody (leaked)"));
            }
            if start < next {
                return fail(format!("block {start} of {owner} also belongs to {previous}"));
            }
            if len == 0 {
                return fail(format!("empty run at {start} for {owner}"));
            }
            next = start + len;
            previous = owner;
        }
        if next != self.geo.data_end {
            return fail(format!("blocks {next}..{} belong to nobody (leaked)", self.geo.data_end));
        }
        Ok(())
    }

    fn check_cache(&self) -> Result<(), Inconsistency> {
        self.cache.check().map_err(|e| Inconsistency(e.into()))?;
        for inode in self.cache.lru_order() {
            if !matches!(self.files[inode as usize], Some(File::Committed { .. })) {
                return fail(format!("cache holds inode {inode}, which is not a committed file"));
            }
        }
        Ok(())
    }

    /// Read both superblock copies and the inode table back and check that each copy
    /// describes this store, that every inode block's durable slot holds the version
    /// memory expects, and that unchanged blocks record exactly the committed files
    /// memory has.
    pub fn check_disk(&mut self) -> Result<(), Inconsistency> {
        let geo = self.geo;
        let copies = [Some(0), geo.backup_block()];
        for (which, at) in ["superblock", "backup superblock"].into_iter().zip(copies) {
            let Some(at) = at else { continue };
            let mut block = vec![0u8; geo.block_size];
            self.dev.read(at, &mut block).map_err(|e| Inconsistency(format!("reading the {which}: {e}")))?;
            let sb = Superblock::decode(&block, self.dev.block_count())
                .map_err(|e| Inconsistency(format!("{which} at block {at}: {e}")))?;
            if sb != self.superblock() {
                return fail(format!("{which} at block {at} does not describe this store"));
            }
        }
        let mut table = vec![0u8; 2 * geo.inode_blocks as usize * geo.block_size];
        read_run(&mut self.dev, geo.table_start, &mut table)
            .map_err(|e| Inconsistency(format!("reading the inode table: {e}")))?;
        for (i, state) in self.blocks.iter().enumerate() {
            let at = (2 * i + state.durable_slot as usize) * geo.block_size;
            let slot = &table[at..at + geo.block_size];
            let Some(version) = decode_inode_block(&geo, self.volume, i as u32, slot) else {
                return fail(format!("inode block {i}: durable slot {} unreadable", state.durable_slot));
            };
            if version.seq != state.seq {
                return fail(format!(
                    "inode block {i}: durable seq {} but memory says {}",
                    version.seq, state.seq
                ));
            }
            if !self.dirty.contains(&(i as u32)) && version.inodes != self.disk_inodes(i as u32) {
                return fail(format!("inode block {i} is clean but differs from memory"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::sim::SimDisk;
    use amoeba_abi::{Capability, Rng};
    use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};

    /// Three committed files of 2, 3 and 4 blocks, one uncommitted, all synced.
    fn store() -> (Store<SimDisk>, Vec<Capability>) {
        let config = Config { inode_count: 32, ..Config::default() };
        let mut s = Store::format(SimDisk::new(512, 256), config, Rng::from_seed([5; 32])).unwrap();
        let sup = s.super_capability();
        let mut caps: Vec<_> =
            (2..5).map(|n| s.create(&sup, &vec![n as u8; n * 512], BS_COMMIT | BS_SAFETY).unwrap()).collect();
        caps.push(s.create(&sup, b"open", 0).unwrap());
        s.check_consistency().unwrap();
        s.check_disk().unwrap();
        (s, caps)
    }

    fn inode(cap: &Capability) -> usize {
        cap.object as usize - 1
    }

    fn expect_err(r: Result<(), Inconsistency>, what: &str) {
        let e = r.expect_err(what);
        assert!(e.0.contains(what), "{e} does not say {what:?}");
    }

    #[test]
    fn leaked_blocks_are_found() {
        let (mut s, _) = store();
        let hole = s.free.holes().next().unwrap();
        assert!(s.free.take(hole.0 + 1, 1));
        expect_err(s.check_consistency(), "leaked");
    }

    #[test]
    fn doubly_allocated_blocks_are_found() {
        let (mut s, caps) = store();
        let Some(File::Committed { place, .. }) = &s.files[inode(&caps[0])] else { panic!() };
        let overlap = Placement::single(place.head + 1, 3);
        let Some(File::Committed { place, .. }) = &mut s.files[inode(&caps[1])] else { panic!() };
        *place = overlap;
        expect_err(s.check_consistency(), "also belongs");
        // A block both free and a file's.
        let (mut s, caps) = store();
        let Some(File::Committed { place, .. }) = &s.files[inode(&caps[2])] else { panic!() };
        assert!(s.free.release(place.head + 3, 1));
        expect_err(s.check_consistency(), "also belongs");
    }

    #[test]
    fn a_placement_that_does_not_fit_the_size_is_found() {
        let (mut s, caps) = store();
        let Some(File::Committed { size, .. }) = &mut s.files[inode(&caps[0])] else { panic!() };
        *size += 512;
        expect_err(s.check_consistency(), "bad placement");
    }

    #[test]
    fn waiting_blocks_need_a_changed_inode_block() {
        let (mut s, caps) = store();
        s.destroy(&caps[1]).unwrap();
        s.check_consistency().unwrap();
        s.dirty.clear();
        expect_err(s.check_consistency(), "not dirty");
    }

    #[test]
    fn miscounted_memory_and_cache_are_found() {
        let (mut s, caps) = store();
        s.uncommitted_bytes += 1;
        expect_err(s.check_consistency(), "uncommitted bytes");
        let (mut s, _) = store();
        s.cache.insert(20, vec![0; 10]);
        expect_err(s.check_consistency(), "not a committed file");
        let (mut s, _) = store();
        s.cache.insert(inode(&caps[3]) as u32, vec![0; 4]);
        expect_err(s.check_consistency(), "not a committed file");
    }

    #[test]
    fn check_disk_finds_memory_and_disk_apart() {
        let (mut s, caps) = store();
        let Some(File::Committed { random, .. }) = &mut s.files[inode(&caps[0])] else { panic!() };
        random.0[0] ^= 1;
        expect_err(s.check_disk(), "differs from memory");
        // Dirty blocks may differ (they are written at the next round).
        s.dirty.insert(0);
        s.check_disk().unwrap();
        // A wrong durable slot, a damaged one, a wrong sequence number.
        let (mut s, _) = store();
        s.blocks[0].durable_slot ^= 1;
        assert!(s.check_disk().is_err());
        let (mut s, _) = store();
        let slot = s.geo.slot_block(0, s.blocks[0].durable_slot);
        s.dev.damage(slot, &[0; 40]);
        expect_err(s.check_disk(), "unreadable");
        let (mut s, _) = store();
        s.blocks[0].seq += 1;
        expect_err(s.check_disk(), "durable seq");
    }
}
