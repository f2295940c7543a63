//! Self-checks the tests call: the in-memory bookkeeping adds up (every data block is
//! exactly one of: a committed file's, free, or waiting to be free), and the inode
//! table on disk says what memory says.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::device::{BlockDevice, read_run};
use crate::layout::{DiskInode, Superblock, check_inode, decode_inode_block};
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
    /// The free list.
    Free,
    /// Blocks given up, waiting for this inode block to be written.
    Waiting(u32),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::File(inode) => write!(f, "the file of inode {inode}"),
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
        if next != self.geo.block_count {
            return fail(format!("blocks {next}..{} belong to nobody (leaked)", self.geo.block_count));
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

    /// Read the superblock and the inode table back and check that every inode block's
    /// durable slot holds the version memory expects, and that unchanged blocks record
    /// exactly the committed files memory has.
    pub fn check_disk(&mut self) -> Result<(), Inconsistency> {
        let geo = self.geo;
        let mut block0 = vec![0u8; geo.block_size];
        self.dev.read(0, &mut block0).map_err(|e| Inconsistency(format!("reading the superblock: {e}")))?;
        let sb = Superblock::decode(&block0, self.dev.block_count())
            .map_err(|e| Inconsistency(format!("superblock: {e}")))?;
        if sb.geometry != geo || sb.volume != self.volume || sb.get_port != self.get_port {
            return fail("superblock does not describe this store".into());
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
