//! The store's state and its disk discipline: format, mount, commit, the inode-table
//! write round (`sync`), and allocation. The capability-checked operations clients
//! call are in `ops.rs`, compaction in `compact.rs`, the self-checks in `check.rs`.
//!
//! The order of writes is what makes crashes harmless:
//! 1. a commit writes the file's data into blocks that no on-disk inode names;
//! 2. a write round flushes (so every committed file's data is durable), then writes
//!    each changed inode block into the slot that does not hold its last durable
//!    version, then flushes again;
//! 3. blocks a file gave up (destroy, a compaction move) return to the free list only
//!    after the round that wrote the inode without them — until then a crash could
//!    bring back the old inode, which must still find its data intact.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use amoeba::{Capability, Check, GetPort, Port, Rights, Rng, Status};

use crate::cache::Cache;
use crate::device::{BlockDevice, read_run, write_padded, write_run};
use crate::free::FreeMap;
use crate::layout::{
    DiskInode, Geometry, Placement, Superblock, check_inode, decode_inode_block, encode_inode_block,
};
use crate::{Config, MountError, MountFailure};

/// A file: uncommitted (in memory only, still changing) or committed (immutable, its
/// data on disk, its inode on disk after the next write round).
pub(crate) enum File {
    Uncommitted { random: Check, data: Vec<u8>, life: u8 },
    Committed { random: Check, size: u32, place: Placement },
}

impl File {
    pub fn random(&self) -> Check {
        match self {
            File::Uncommitted { random, .. } | File::Committed { random, .. } => *random,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            File::Uncommitted { data, .. } => data.len() as u64,
            File::Committed { size, .. } => *size as u64,
        }
    }
}

/// What the store knows about one inode block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockState {
    /// Sequence number of the last durable version.
    pub seq: u64,
    /// The slot (0 or 1) holding it; the next version goes into the other one.
    pub durable_slot: u8,
}

/// Blocks a file gave up, waiting for the write round that makes inode block `block`
/// durable without them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Freed {
    pub start: u64,
    pub len: u64,
    pub block: u32,
}

/// Work done since mount, for tests and the server's status text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Write rounds that wrote inode blocks.
    pub inode_rounds: u64,
    /// Compactions run.
    pub compactions: u64,
    /// Data blocks copied by compaction (and by mount finishing a move).
    pub blocks_moved: u64,
    /// Files read from disk into memory.
    pub disk_loads: u64,
}

/// Deliberate defects, to show that the crash tests catch them.
#[cfg(feature = "sim")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Write inode blocks without first flushing the data they point to.
    pub skip_data_barrier: bool,
    /// Always write an inode block's slot 0, over its last durable version.
    pub single_slot: bool,
    /// Reuse a destroyed file's blocks before its inode is durably gone.
    pub early_reuse: bool,
}

/// The Bullet store over a block device `D`.
pub struct Store<D: BlockDevice> {
    pub(crate) dev: D,
    pub(crate) geo: Geometry,
    pub(crate) volume: u64,
    pub(crate) get_port: GetPort,
    pub(crate) port: Port,
    pub(crate) super_random: Check,
    pub(crate) rng: Rng,
    pub(crate) config: Config,
    /// Inode number → file (object number = inode number + 1).
    pub(crate) files: Vec<Option<File>>,
    /// Where the search for a free inode starts (spreads reuse of numbers).
    pub(crate) next_inode: u32,
    pub(crate) blocks: Vec<BlockState>,
    /// Inode blocks whose in-memory contents differ from their durable version.
    pub(crate) dirty: BTreeSet<u32>,
    pub(crate) free: FreeMap,
    pub(crate) freed: Vec<Freed>,
    pub(crate) cache: Cache,
    pub(crate) uncommitted_bytes: usize,
    /// Holds direct reads of files too large for the cache.
    pub(crate) scratch: Vec<u8>,
    pub(crate) counters: Counters,
    #[cfg(feature = "sim")]
    pub(crate) faults: Faults,
}

pub(crate) fn disk_status(_: crate::DiskError) -> Status {
    Status::SysErr
}

impl<D: BlockDevice> Store<D> {
    /// Make a new, empty store on `dev` (everything on it is lost): a fresh get-port
    /// and super capability from `rng`, `config.inode_count` inodes. Returns once the
    /// empty store is durable; on failure hands the device back.
    pub fn format(mut dev: D, config: Config, mut rng: Rng) -> Result<Store<D>, MountFailure<D>> {
        match write_empty_store(&mut dev, &config, &mut rng) {
            Ok(sb) => {
                let geo = sb.geometry;
                let blocks = vec![BlockState { seq: 1, durable_slot: 0 }; geo.inode_blocks as usize];
                let mut store = Store::assemble(dev, sb, config, rng, blocks);
                let released = store.free.release(geo.data_start, geo.data_blocks());
                debug_assert!(released);
                Ok(store)
            }
            Err(error) => Err(MountFailure { error, device: dev }),
        }
    }

    /// Recover the store on `dev` after a clean stop or a crash: the newest valid
    /// version of every inode block, the free list rebuilt as the complement of the
    /// committed files, and any compaction move a crash interrupted finished.
    /// `config.inode_count` is ignored (the superblock has it); `rng` makes the
    /// random checks of new files. On failure hands the device back (e.g. to format
    /// it when it holds no store).
    pub fn mount(mut dev: D, config: Config, rng: Rng) -> Result<Store<D>, MountFailure<D>> {
        let (sb, blocks, inodes) = match read_inode_table(&mut dev) {
            Ok(found) => found,
            Err(error) => return Err(MountFailure { error, device: dev }),
        };
        let mut store = Store::assemble(dev, sb, config, rng, blocks);
        match store.load_inodes(inodes).and_then(|_| store.finish_interrupted_moves()) {
            Ok(()) => Ok(store),
            Err(error) => Err(MountFailure { error, device: store.into_device() }),
        }
    }

    fn assemble(dev: D, sb: Superblock, config: Config, rng: Rng, blocks: Vec<BlockState>) -> Store<D> {
        let geo = sb.geometry;
        let mut files = Vec::new();
        files.resize_with(geo.inode_count as usize, || None);
        Store {
            dev,
            geo,
            volume: sb.volume,
            get_port: sb.get_port,
            port: sb.get_port.put_port(),
            super_random: sb.super_random,
            rng,
            config,
            files,
            next_inode: 0,
            blocks,
            dirty: BTreeSet::new(),
            free: FreeMap::default(),
            freed: Vec::new(),
            cache: Cache::new(config.cache_bytes),
            uncommitted_bytes: 0,
            scratch: Vec::new(),
            counters: Counters::default(),
            #[cfg(feature = "sim")]
            faults: Faults::default(),
        }
    }

    /// Install the committed files found on disk and make every other data block free;
    /// refuses overlapping files.
    fn load_inodes(&mut self, inodes: Vec<Option<DiskInode>>) -> Result<(), MountError> {
        let mut runs = Vec::new();
        for (n, inode) in inodes.into_iter().enumerate() {
            let Some(inode) = inode else { continue };
            check_inode(&inode, &self.geo)?;
            runs.extend(inode.place.runs());
            self.files[n] =
                Some(File::Committed { random: inode.random, size: inode.size, place: inode.place });
        }
        runs.sort_unstable();
        let mut next = self.geo.data_start;
        for (start, len) in runs {
            if start < next {
                return Err(MountError::Corrupt("two files share blocks"));
            }
            let released = self.free.release(next, start - next);
            debug_assert!(released);
            next = start + len;
        }
        let released = self.free.release(next, self.geo.block_count - next);
        debug_assert!(released);
        Ok(())
    }

    /// Finish every move a crash interrupted, so every file is one run again. The
    /// blocks between the moved head and the unmoved tail must be free: no crash can
    /// make them otherwise.
    fn finish_interrupted_moves(&mut self) -> Result<(), MountError> {
        for inode in 0..self.geo.inode_count {
            let Some(File::Committed { place, .. }) = &self.files[inode as usize] else { continue };
            if place.is_single() {
                continue;
            }
            let gap_start = place.head + place.split;
            if !self.free.contains(gap_start, place.tail - gap_start) {
                return Err(MountError::Corrupt("an interrupted move's destination is in use"));
            }
            self.continue_move(inode).map_err(|_| MountError::Disk(crate::DiskError::Io))?;
        }
        Ok(())
    }

    /// The owner capability of inode `inode`'s file.
    pub(crate) fn owner_capability(&self, inode: u32, random: Check) -> Capability {
        Capability::owner(self.port, inode + 1, random)
    }

    /// The inodes of inode block `block` as the next version on disk should record them.
    pub(crate) fn disk_inodes(&self, block: u32) -> Vec<Option<DiskInode>> {
        let per = self.geo.inodes_per_block;
        (block * per..(block + 1) * per)
            .map(|n| match self.files.get(n as usize) {
                Some(Some(File::Committed { random, size, place })) => {
                    Some(DiskInode { random: *random, size: *size, place: *place })
                }
                _ => None,
            })
            .collect()
    }

    /// The write round: make every committed file's data durable, then every changed
    /// inode block, then give the blocks files gave up back to the free list. With
    /// nothing changed it is just a flush.
    pub(crate) fn write_inode_blocks(&mut self) -> Result<(), Status> {
        if !self.fault_skip_data_barrier() {
            self.dev.flush().map_err(disk_status)?;
        }
        let dirty: Vec<u32> = self.dirty.iter().copied().collect();
        if dirty.is_empty() {
            return Ok(());
        }
        for &b in &dirty {
            let state = self.blocks[b as usize];
            let slot = self.next_slot(state);
            let data = encode_inode_block(&self.geo, self.volume, b, state.seq + 1, &self.disk_inodes(b));
            self.dev.write(self.geo.slot_block(b, slot), &data).map_err(disk_status)?;
        }
        self.dev.flush().map_err(disk_status)?;
        for &b in &dirty {
            let state = self.blocks[b as usize];
            self.blocks[b as usize] = BlockState { seq: state.seq + 1, durable_slot: self.next_slot(state) };
            self.dirty.remove(&b);
        }
        self.counters.inode_rounds += 1;
        self.release_freed();
        Ok(())
    }

    fn next_slot(&self, state: BlockState) -> u8 {
        if self.fault_single_slot() { 0 } else { 1 - state.durable_slot }
    }

    /// Return to the free list every run whose inode block is durable again.
    fn release_freed(&mut self) {
        let (done, waiting): (Vec<Freed>, Vec<Freed>) =
            self.freed.iter().partition(|f| !self.dirty.contains(&f.block));
        self.freed = waiting;
        for f in done {
            let released = self.free.release(f.start, f.len);
            debug_assert!(released, "freed run {f:?} was already free");
        }
    }

    /// Note that the file of `inode` gave up `place`'s blocks and that its inode block
    /// must be written.
    pub(crate) fn give_up(&mut self, inode: u32, runs: impl Iterator<Item = (u64, u64)>) {
        let block = self.geo.block_of(inode);
        self.dirty.insert(block);
        for (start, len) in runs {
            self.freed.push(Freed { start, len, block });
        }
        if self.fault_early_reuse() {
            self.freed.retain(|f| {
                let released = self.free.release(f.start, f.len);
                !released
            });
        }
    }

    /// A free inode, searching from the last one handed out.
    pub(crate) fn free_inode(&mut self) -> Option<u32> {
        let n = self.geo.inode_count;
        let found = (0..n).map(|k| (self.next_inode + k) % n).find(|&i| self.files[i as usize].is_none())?;
        self.next_inode = (found + 1) % n;
        Some(found)
    }

    /// Take `blocks` contiguous data blocks: best fit; else after returning freed
    /// runs; else after compaction; else `NoSpace`.
    pub(crate) fn allocate(&mut self, blocks: u64) -> Result<u64, Status> {
        if blocks == 0 {
            return Ok(0);
        }
        if self.free.best_fit(blocks).is_none() && !self.freed.is_empty() {
            self.write_inode_blocks()?;
        }
        if self.free.best_fit(blocks).is_none() {
            if self.free.total() < blocks {
                return Err(Status::NoSpace);
            }
            self.compact_for(blocks)?;
        }
        let start = self.free.best_fit(blocks).ok_or(Status::SysErr)?;
        let taken = self.free.take(start, blocks);
        debug_assert!(taken);
        Ok(start)
    }

    /// Commit the uncommitted file of `inode`: write its data into fresh blocks, then
    /// (with `safe`) run a write round so it is durable before this returns. On
    /// failure before the file became committed, it stays uncommitted.
    pub(crate) fn commit(&mut self, inode: u32, safe: bool) -> Result<(), Status> {
        let Some(File::Uncommitted { data, .. }) = &self.files[inode as usize] else {
            return Err(Status::SysErr);
        };
        let blocks = self.geo.blocks_for(data.len() as u64);
        let start = self.allocate(blocks)?;
        let Some(File::Uncommitted { random, data, .. }) = &self.files[inode as usize] else {
            return Err(Status::SysErr);
        };
        if let Err(e) = write_padded(&mut self.dev, start, data) {
            // No inode names these blocks on disk: they are free again at once.
            let released = self.free.release(start, blocks);
            debug_assert!(released);
            return Err(disk_status(e));
        }
        let committed = File::Committed {
            random: *random,
            size: data.len() as u32,
            place: Placement::single(start, blocks),
        };
        let Some(File::Uncommitted { data, .. }) = self.files[inode as usize].replace(committed) else {
            return Err(Status::SysErr);
        };
        self.uncommitted_bytes -= data.len();
        self.cache.insert(inode, data);
        self.dirty.insert(self.geo.block_of(inode));
        if safe { self.write_inode_blocks() } else { Ok(()) }
    }

    /// Remove the file of `inode`. A committed file's blocks come back once its inode
    /// is durably gone.
    pub(crate) fn remove_file(&mut self, inode: u32) {
        match self.files[inode as usize].take() {
            Some(File::Uncommitted { data, .. }) => self.uncommitted_bytes -= data.len(),
            Some(File::Committed { place, .. }) => {
                self.cache.remove(inode);
                self.give_up(inode, place.runs());
            }
            None => {}
        }
    }

    /// Read the blocks of a committed file's `place` into a buffer of `size` bytes.
    pub(crate) fn load_from_disk(&mut self, size: u32, place: Placement) -> Result<Vec<u8>, Status> {
        let bs = self.geo.block_size;
        let mut buf = vec![0u8; place.blocks as usize * bs];
        let mut at = 0;
        for (start, len) in place.runs() {
            let bytes = len as usize * bs;
            read_run(&mut self.dev, start, &mut buf[at..at + bytes]).map_err(disk_status)?;
            at += bytes;
        }
        buf.truncate(size as usize);
        self.counters.disk_loads += 1;
        Ok(buf)
    }

    /// Check rights: `Denied` unless `rights` has all of `needed`.
    pub(crate) fn require(rights: Rights, needed: Rights) -> Result<(), Status> {
        if rights.contains(needed) { Ok(()) } else { Err(Status::Denied) }
    }

    #[cfg(feature = "sim")]
    fn fault_skip_data_barrier(&self) -> bool {
        self.faults.skip_data_barrier
    }
    #[cfg(not(feature = "sim"))]
    fn fault_skip_data_barrier(&self) -> bool {
        false
    }
    #[cfg(feature = "sim")]
    fn fault_single_slot(&self) -> bool {
        self.faults.single_slot
    }
    #[cfg(not(feature = "sim"))]
    fn fault_single_slot(&self) -> bool {
        false
    }
    #[cfg(feature = "sim")]
    fn fault_early_reuse(&self) -> bool {
        self.faults.early_reuse
    }
    #[cfg(not(feature = "sim"))]
    fn fault_early_reuse(&self) -> bool {
        false
    }
}

/// Write an empty store: first make block 0 no superblock (so a cut format never
/// looks like the old store), then the inode table, then the new superblock.
fn write_empty_store<D: BlockDevice>(
    dev: &mut D,
    config: &Config,
    rng: &mut Rng,
) -> Result<Superblock, MountError> {
    let geo = Geometry::new(dev.block_size(), dev.block_count(), config.inode_count)?;
    let sb = Superblock {
        geometry: geo,
        volume: rng.next_u64(),
        get_port: GetPort::random(rng),
        super_random: rng.check(),
    };
    dev.write(0, &vec![0u8; geo.block_size])?;
    dev.flush()?;
    // Slot 0 of every inode block holds version 1, slot 1 version 0: both valid and
    // empty, so the first round may overwrite slot 1.
    let empty = vec![None; geo.inodes_per_block as usize];
    let mut table = Vec::with_capacity(2 * geo.inode_blocks as usize * geo.block_size);
    for i in 0..geo.inode_blocks {
        table.extend(encode_inode_block(&geo, sb.volume, i, 1, &empty));
        table.extend(encode_inode_block(&geo, sb.volume, i, 0, &empty));
    }
    write_run(dev, geo.table_start, &table)?;
    dev.flush()?;
    dev.write(0, &sb.encode())?;
    dev.flush()?;
    Ok(sb)
}

/// What the disk says: the superblock, and for every inode block its newest valid
/// version. Flushes first, so that whatever a crash left in the device's cache is
/// durable from here on.
#[allow(clippy::type_complexity)]
fn read_inode_table<D: BlockDevice>(
    dev: &mut D,
) -> Result<(Superblock, Vec<BlockState>, Vec<Option<DiskInode>>), MountError> {
    dev.flush()?;
    let mut block0 = vec![0u8; dev.block_size()];
    dev.read(0, &mut block0)?;
    let sb = Superblock::decode(&block0, dev.block_count())?;
    let geo = sb.geometry;
    let mut table = vec![0u8; 2 * geo.inode_blocks as usize * geo.block_size];
    read_run(dev, geo.table_start, &mut table)?;
    let mut blocks = Vec::with_capacity(geo.inode_blocks as usize);
    let mut inodes = Vec::with_capacity(geo.inode_count as usize);
    for (i, pair) in table.chunks(2 * geo.block_size).enumerate() {
        let (state, found) = newest_version(&geo, sb.volume, i as u32, pair)?;
        blocks.push(state);
        inodes.extend(found);
    }
    inodes.truncate(geo.inode_count as usize);
    Ok((sb, blocks, inodes))
}

/// The newest valid version among the two slots of inode block `index` (`pair` holds
/// both), and what it records.
fn newest_version(
    geo: &Geometry,
    volume: u64,
    index: u32,
    pair: &[u8],
) -> Result<(BlockState, Vec<Option<DiskInode>>), MountError> {
    let (a, b) = pair.split_at(geo.block_size);
    let versions = [decode_inode_block(geo, volume, index, a), decode_inode_block(geo, volume, index, b)];
    let newest = versions
        .into_iter()
        .enumerate()
        .filter_map(|(slot, v)| v.map(|v| (slot as u8, v)))
        .max_by_key(|(_, v)| v.seq)
        .ok_or(MountError::Corrupt("both slots of an inode block are unreadable"))?;
    let (slot, version) = newest;
    Ok((BlockState { seq: version.seq, durable_slot: slot }, version.inodes))
}
