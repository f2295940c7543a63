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
//!
//! A file written in chunks straight to disk ([`File::Reserved`]) takes its run off
//! the free list when it is reserved: no durable inode names those blocks, so its
//! chunks may go there at once, and a crash before its commit leaves nothing but
//! free blocks behind.
//!
//! Memory is the other bound: every buffer whose size a client chooses is allocated
//! fallibly (`NoMem`), evicting cached files first while that makes room.

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, GetPort, Port, Rights, Rng, Status};

use crate::cache::Cache;
use crate::device::{BlockDevice, read_run, write_padded, write_run};
use crate::free::FreeMap;
use crate::layout::{
    DiskInode, Geometry, Placement, Superblock, check_inode, decode_inode_block, encode_inode_block,
};
use crate::{Config, MountError, MountFailure};

/// A file: uncommitted (in memory only, still changing), reserved (being written in
/// chunks straight into a run of blocks no durable inode names), or committed
/// (immutable, its data on disk, its inode on disk after the next write round).
pub(crate) enum File {
    Uncommitted {
        random: Check,
        data: Vec<u8>,
        life: u8,
    },
    /// `broken`: a chunk could not be written; the file can no longer be committed.
    Reserved {
        random: Check,
        size: u32,
        start: u64,
        written: u64,
        broken: bool,
        life: u8,
    },
    Committed {
        random: Check,
        size: u32,
        place: Placement,
    },
}

impl File {
    pub fn random(&self) -> Check {
        match self {
            File::Uncommitted { random, .. }
            | File::Reserved { random, .. }
            | File::Committed { random, .. } => *random,
        }
    }

    pub fn size(&self) -> u64 {
        match self {
            File::Uncommitted { data, .. } => data.len() as u64,
            File::Reserved { size, .. } | File::Committed { size, .. } => *size as u64,
        }
    }

    /// Is it committed (immutable, readable)?
    pub fn is_committed(&self) -> bool {
        matches!(self, File::Committed { .. })
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
    /// Superblock copies mount found damaged (or missing) and wrote again.
    pub superblocks_rewritten: u64,
    /// Mount moved a layout-1 store (no backup superblock) to layout 2.
    pub layout_upgraded: bool,
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

pub(crate) fn disk_status(error: crate::DiskError) -> Status {
    match error {
        crate::DiskError::NoMemory => Status::NoMem,
        _ => Status::SysErr,
    }
}

/// A zeroed buffer of `len` bytes, or `None` when memory is short.
pub(crate) fn try_zeroed(len: usize) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).ok()?;
    buf.resize(len, 0);
    Some(buf)
}

/// A zeroed buffer for mount and format, which have no cache to give memory back.
fn mount_buffer(len: usize) -> Result<Vec<u8>, MountError> {
    try_zeroed(len).ok_or(MountError::Memory)
}

impl<D: BlockDevice> Store<D> {
    /// Make a new, empty store on `dev` (everything on it is lost): a fresh get-port
    /// and super capability from `rng`, `config.inode_count` inodes. Returns once the
    /// empty store is durable; on failure hands the device back.
    pub fn format(mut dev: D, config: Config, mut rng: Rng) -> Result<Store<D>, MountFailure<D>> {
        let sb = match write_empty_store(&mut dev, &config, &mut rng) {
            Ok(sb) => sb,
            Err(error) => return Err(MountFailure { error, device: dev }),
        };
        let geo = sb.geometry;
        let blocks = match try_states(geo.inode_blocks as usize, BlockState { seq: 1, durable_slot: 0 }) {
            Some(blocks) => blocks,
            None => return Err(MountFailure { error: MountError::Memory, device: dev }),
        };
        let mut store = Store::assemble(dev, sb, config, rng, blocks)
            .map_err(|(error, device)| MountFailure { error, device })?;
        let released = store.free.release(geo.data_start, geo.data_blocks());
        debug_assert!(released);
        Ok(store)
    }

    /// Recover the store on `dev` after a clean stop or a crash: the newest valid
    /// version of every inode block, the free list rebuilt as the complement of the
    /// committed files, and any compaction move a crash interrupted finished.
    /// `config.inode_count` is ignored (the superblock has it); `rng` makes the
    /// random checks of new files. On failure hands the device back (e.g. to format
    /// it when it holds no store).
    ///
    /// The superblock comes from whichever of its two copies (block 0, the last
    /// block) is valid, and a damaged copy is written again; with neither valid the
    /// mount fails with [`MountError::NotFormatted`] having written nothing.
    pub fn mount(mut dev: D, config: Config, rng: Rng) -> Result<Store<D>, MountFailure<D>> {
        let (found, blocks, inodes) = match read_inode_table(&mut dev) {
            Ok(found) => found,
            Err(error) => return Err(MountFailure { error, device: dev }),
        };
        let mut store = match Store::assemble(dev, found.superblock, config, rng, blocks) {
            Ok(store) => store,
            Err((error, device)) => return Err(MountFailure { error, device }),
        };
        let recovered = store
            .load_inodes(inodes)
            .and_then(|_| store.repair_superblocks(&found))
            .and_then(|_| store.upgrade_layout())
            .and_then(|_| store.finish_interrupted_moves());
        match recovered {
            Ok(()) => Ok(store),
            Err(error) => Err(MountFailure { error, device: store.into_device() }),
        }
    }

    fn assemble(
        dev: D,
        sb: Superblock,
        config: Config,
        rng: Rng,
        blocks: Vec<BlockState>,
    ) -> Result<Store<D>, (MountError, D)> {
        let geo = sb.geometry;
        let mut files = Vec::new();
        if files.try_reserve_exact(geo.inode_count as usize).is_err() {
            return Err((MountError::Memory, dev));
        }
        files.resize_with(geo.inode_count as usize, || None);
        Ok(Store {
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
        })
    }

    /// The superblock as memory has it.
    pub(crate) fn superblock(&self) -> Superblock {
        Superblock {
            geometry: self.geo,
            volume: self.volume,
            get_port: self.get_port,
            super_random: self.super_random,
        }
    }

    /// Write again each superblock copy mount found damaged or missing.
    fn repair_superblocks(&mut self, found: &FoundSuperblocks) -> Result<(), MountError> {
        let encoded = self.superblock().encode();
        let mut rewritten = 0;
        if !found.primary_valid {
            self.dev.write(0, &encoded)?;
            rewritten += 1;
        }
        if let (false, Some(backup)) = (found.backup_valid, self.geo.backup_block()) {
            self.dev.write(backup, &encoded)?;
            rewritten += 1;
        }
        if rewritten > 0 {
            self.dev.flush()?;
            self.counters.superblocks_rewritten += rewritten;
        }
        Ok(())
    }

    /// A layout-1 store (written before the backup superblock existed) gets one
    /// when its last block is free: the backup is written first, then block 0, so
    /// a crash between leaves a valid layout-1 store that the next mount upgrades.
    /// With the last block in use it stays as it is (still mountable, no backup).
    fn upgrade_layout(&mut self) -> Result<(), MountError> {
        if self.geo.backup_block().is_some() {
            return Ok(());
        }
        let last = self.geo.block_count - 1;
        if last <= self.geo.data_start || !self.free.take(last, 1) {
            return Ok(());
        }
        self.geo.data_end = last;
        let encoded = self.superblock().encode();
        self.dev.write(last, &encoded)?;
        self.dev.flush()?;
        self.dev.write(0, &encoded)?;
        self.dev.flush()?;
        self.counters.layout_upgraded = true;
        Ok(())
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
        let released = self.free.release(next, self.geo.data_end - next);
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
    /// runs; else after compaction, if compaction can make such a run; else `NoSpace`.
    pub(crate) fn allocate(&mut self, blocks: u64) -> Result<u64, Status> {
        if blocks == 0 {
            return Ok(0);
        }
        if self.free.best_fit(blocks).is_none() && !self.freed.is_empty() {
            self.write_inode_blocks()?;
        }
        if self.free.best_fit(blocks).is_none() {
            if self.largest_run_after_compaction() < blocks {
                return Err(Status::NoSpace);
            }
            self.compact_for(blocks)?;
        }
        let start = self.free.best_fit(blocks).ok_or(Status::NoSpace)?;
        let taken = self.free.take(start, blocks);
        debug_assert!(taken);
        Ok(start)
    }

    /// The runs of the files being written straight to disk (compaction must go
    /// around them), in block order.
    pub(crate) fn reserved_runs(&self) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = self
            .files
            .iter()
            .filter_map(|f| match f {
                Some(File::Reserved { size, start, .. }) => Some((*start, self.geo.blocks_for(*size as u64))),
                _ => None,
            })
            .filter(|r| r.1 > 0)
            .collect();
        runs.sort_unstable();
        runs
    }

    /// The longest run of blocks a new file could get now: compaction slides the
    /// committed files down, so between two reserved runs (which stay where they
    /// are) all space committed files do not take, free or waiting for a sync, ends
    /// up in one run.
    pub(crate) fn largest_run_after_compaction(&self) -> u64 {
        let reserved = self.reserved_runs();
        // Segments between the reserved runs: (end, blocks committed files use).
        let mut segments: Vec<(u64, u64, u64)> = Vec::new();
        let mut from = self.geo.data_start;
        for &(start, len) in &reserved {
            segments.push((from, start, 0));
            from = start + len;
        }
        segments.push((from, self.geo.data_end, 0));
        for file in self.files.iter().flatten() {
            let File::Committed { place, .. } = file else { continue };
            for (start, len) in place.runs() {
                let at = segments.partition_point(|seg| seg.1 <= start);
                if let Some(seg) = segments.get_mut(at) {
                    seg.2 += len;
                }
            }
        }
        segments.iter().map(|&(from, to, used)| (to - from).saturating_sub(used)).max().unwrap_or(0)
    }

    /// Commit the uncommitted (in-memory) file of `inode`: write its data into fresh
    /// blocks, then (with `safe`) run a write round so it is durable before this
    /// returns. On failure before the file became committed, it stays uncommitted.
    pub(crate) fn commit_uncommitted(&mut self, inode: u32, safe: bool) -> Result<(), Status> {
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

    /// Commit the reserved file of `inode`, all of it written: its blocks are
    /// already in place, so only its inode is left to write (now, with `safe`).
    pub(crate) fn commit_reserved(&mut self, inode: u32, safe: bool) -> Result<(), Status> {
        let Some(File::Reserved { random, size, start, written, broken, .. }) = self.files[inode as usize]
        else {
            return Err(Status::SysErr);
        };
        if broken {
            return Err(Status::SysErr);
        }
        if written != size as u64 {
            return Err(Status::ArgBad);
        }
        let blocks = self.geo.blocks_for(size as u64);
        self.files[inode as usize] =
            Some(File::Committed { random, size, place: Placement::single(start, blocks) });
        self.dirty.insert(self.geo.block_of(inode));
        if safe { self.write_inode_blocks() } else { Ok(()) }
    }

    /// Remove the file of `inode`. A committed file's blocks come back once its inode
    /// is durably gone; a reserved file's at once (no inode on disk names them).
    pub(crate) fn remove_file(&mut self, inode: u32) {
        match self.files[inode as usize].take() {
            Some(File::Uncommitted { data, .. }) => self.uncommitted_bytes -= data.len(),
            Some(File::Reserved { size, start, .. }) => {
                let released = self.free.release(start, self.geo.blocks_for(size as u64));
                debug_assert!(released, "a reserved run was free");
            }
            Some(File::Committed { place, .. }) => {
                self.cache.remove(inode);
                self.give_up(inode, place.runs());
            }
            None => {}
        }
    }

    /// A zeroed buffer of `len` bytes, evicting cached files (least recently used
    /// first) while memory is short; `NoMem` once the cache is empty and still
    /// there is no room.
    pub(crate) fn buffer(&mut self, len: usize) -> Result<Vec<u8>, Status> {
        loop {
            if let Some(buf) = try_zeroed(len) {
                return Ok(buf);
            }
            if !self.cache.evict_one() {
                return Err(Status::NoMem);
            }
        }
    }

    /// Room for `additional` more bytes in `data`, evicting cached files while
    /// memory is short.
    pub(crate) fn make_room(cache: &mut Cache, data: &mut Vec<u8>, additional: usize) -> Result<(), Status> {
        while data.try_reserve(additional).is_err() {
            if !cache.evict_one() {
                return Err(Status::NoMem);
            }
        }
        Ok(())
    }

    /// Read blocks `first ..` of a committed file's `place` into `buf` (whole
    /// blocks), following the file across both runs while a move is unfinished.
    pub(crate) fn read_file_blocks(
        &mut self,
        place: Placement,
        first: u64,
        buf: &mut [u8],
    ) -> Result<(), Status> {
        let bs = self.geo.block_size;
        let mut block = first;
        let mut at = 0;
        while at < buf.len() {
            let (disk, left) = if block < place.split {
                (place.head + block, place.split - block)
            } else {
                (place.tail + block - place.split, place.blocks - block)
            };
            let bytes = (left as usize * bs).min(buf.len() - at);
            if left == 0 {
                return Err(Status::SysErr);
            }
            read_run(&mut self.dev, disk, &mut buf[at..at + bytes]).map_err(disk_status)?;
            at += bytes;
            block += (bytes / bs) as u64;
        }
        Ok(())
    }

    /// Read the blocks of a committed file's `place` into a buffer of `size` bytes.
    pub(crate) fn load_from_disk(&mut self, size: u32, place: Placement) -> Result<Vec<u8>, Status> {
        let bs = self.geo.block_size;
        let mut buf = self.buffer(place.blocks as usize * bs)?;
        self.read_file_blocks(place, 0, &mut buf)?;
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

/// `len` copies of `state`, or `None` when memory is short.
fn try_states(len: usize, state: BlockState) -> Option<Vec<BlockState>> {
    let mut states = Vec::new();
    states.try_reserve_exact(len).ok()?;
    states.resize(len, state);
    Some(states)
}

/// Write an empty store. First both superblock copies go (so a cut format never
/// looks like the old store: its inode table is about to be overwritten), then the
/// inode table, then the new superblock in both places. A cut format therefore
/// leaves the old store (cut before its copies went), no store, or the new one.
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
    let backup = geo.backup_block().ok_or(MountError::Geometry)?;
    let zero = mount_buffer(geo.block_size)?;
    dev.write(0, &zero)?;
    dev.write(backup, &zero)?;
    dev.flush()?;
    // Slot 0 of every inode block holds version 1, slot 1 version 0: both valid and
    // empty, so the first round may overwrite slot 1. Written a transfer at a time.
    let empty = vec![None; geo.inodes_per_block as usize];
    let per_transfer = (dev.max_transfer() / (2 * geo.block_size)).max(1) as u32;
    let mut index = 0;
    while index < geo.inode_blocks {
        let count = per_transfer.min(geo.inode_blocks - index);
        let mut table = Vec::new();
        table.try_reserve_exact(2 * count as usize * geo.block_size).map_err(|_| MountError::Memory)?;
        for i in index..index + count {
            table.extend(encode_inode_block(&geo, sb.volume, i, 1, &empty));
            table.extend(encode_inode_block(&geo, sb.volume, i, 0, &empty));
        }
        write_run(dev, geo.slot_block(index, 0), &table)?;
        index += count;
    }
    dev.flush()?;
    let encoded = sb.encode();
    dev.write(backup, &encoded)?;
    dev.write(0, &encoded)?;
    dev.flush()?;
    Ok(sb)
}

/// What mount found of the superblock's two copies.
pub(crate) struct FoundSuperblocks {
    /// The superblock, from block 0 if it is valid there, else from the backup.
    pub superblock: Superblock,
    /// Block 0 holds it.
    pub primary_valid: bool,
    /// The backup block holds it (always true for a layout without a backup).
    pub backup_valid: bool,
}

/// Read both superblock copies: block 0, and the backup in the last block of the
/// store (found through block 0 when it is valid, else at the disk's last block).
/// Only damage sends mount to the backup: a superblock of an unknown layout, or
/// one recording more blocks than the disk has, is an answer, not damage.
pub(crate) fn read_superblocks<D: BlockDevice>(dev: &mut D) -> Result<FoundSuperblocks, MountError> {
    let count = dev.block_count();
    if count == 0 {
        return Err(MountError::Geometry);
    }
    let mut block = mount_buffer(dev.block_size())?;
    dev.read(0, &mut block)?;
    match Superblock::decode(&block, count) {
        Ok(superblock) => {
            let backup_valid = match superblock.geometry.backup_block() {
                None => true,
                Some(at) => {
                    dev.read(at, &mut block)?;
                    Superblock::decode(&block, count) == Ok(superblock)
                }
            };
            Ok(FoundSuperblocks { superblock, primary_valid: true, backup_valid })
        }
        Err(MountError::NotFormatted | MountError::Corrupt(_)) => {
            dev.read(count - 1, &mut block)?;
            match Superblock::decode(&block, count) {
                Ok(superblock) if superblock.geometry.backup_block() == Some(count - 1) => {
                    Ok(FoundSuperblocks { superblock, primary_valid: false, backup_valid: true })
                }
                _ => Err(MountError::NotFormatted),
            }
        }
        Err(other) => Err(other),
    }
}

/// What the disk says: the superblock, and for every inode block its newest valid
/// version. Flushes first, so that whatever a crash left in the device's cache is
/// durable from here on. Writes nothing.
#[allow(clippy::type_complexity)]
fn read_inode_table<D: BlockDevice>(
    dev: &mut D,
) -> Result<(FoundSuperblocks, Vec<BlockState>, Vec<Option<DiskInode>>), MountError> {
    dev.flush()?;
    let found = read_superblocks(dev)?;
    let geo = found.superblock.geometry;
    let volume = found.superblock.volume;
    let mut blocks = Vec::new();
    blocks.try_reserve_exact(geo.inode_blocks as usize).map_err(|_| MountError::Memory)?;
    let mut inodes = Vec::new();
    let slots = (geo.inode_blocks * geo.inodes_per_block) as usize;
    inodes.try_reserve_exact(slots).map_err(|_| MountError::Memory)?;
    let per_transfer = (dev.max_transfer() / (2 * geo.block_size)).max(1) as u32;
    let mut table = mount_buffer(2 * per_transfer.min(geo.inode_blocks) as usize * geo.block_size)?;
    let mut index = 0;
    while index < geo.inode_blocks {
        let count = per_transfer.min(geo.inode_blocks - index);
        let part = &mut table[..2 * count as usize * geo.block_size];
        read_run(dev, geo.slot_block(index, 0), part)?;
        for (k, pair) in part.chunks(2 * geo.block_size).enumerate() {
            let (state, found) = newest_version(&geo, volume, index + k as u32, pair)?;
            blocks.push(state);
            inodes.extend(found);
        }
        index += count;
    }
    inodes.truncate(geo.inode_count as usize);
    Ok((found, blocks, inodes))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimDisk;
    use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};

    const BLOCKS: u64 = 512;

    /// A fresh store turned into a layout-1 one (no backup: data up to the last
    /// block); with `last_block_file`, a committed one-block file in the last
    /// block, whose owner capability is returned.
    fn layout_one_disk(last_block_file: bool) -> (SimDisk, Option<Capability>) {
        let config = Config { inode_count: 16, ..Config::default() };
        let s = Store::format(SimDisk::new(512, BLOCKS), config, Rng::from_seed([3; 32])).unwrap();
        let mut old = s.superblock();
        old.geometry = Geometry::without_backup(512, BLOCKS, 16).unwrap();
        let port = s.put_port();
        let mut disk = s.into_device();
        disk.damage(BLOCKS - 1, &[0; 512]);
        disk.damage(0, &old.encode());
        if !last_block_file {
            return (disk, None);
        }
        let random = Check([7; 6]);
        let mut inodes = vec![None; old.geometry.inodes_per_block as usize];
        inodes[0] = Some(DiskInode { random, size: 5, place: Placement::single(BLOCKS - 1, 1) });
        let block = encode_inode_block(&old.geometry, old.volume, 0, 2, &inodes);
        disk.damage(old.geometry.slot_block(0, 1), &block);
        let mut data = vec![0; 512];
        data[..5].copy_from_slice(b"last!");
        disk.damage(BLOCKS - 1, &data);
        (disk, Some(Capability::owner(port, 1, random)))
    }

    #[test]
    fn a_layout_one_store_gains_a_backup_when_its_last_block_is_free() {
        let (disk, _) = layout_one_disk(false);
        let config = Config::default();
        let mut s = Store::mount(disk, config, Rng::from_seed([4; 32])).unwrap();
        assert!(s.stats().counters.layout_upgraded);
        assert_eq!(s.geometry().backup_block(), Some(BLOCKS - 1));
        s.check_consistency().unwrap();
        s.check_disk().unwrap();
        // From now on a damaged first block is recovered.
        let sup = s.super_capability();
        let file = s.create(&sup, b"kept", BS_COMMIT | BS_SAFETY).unwrap();
        let mut disk = s.into_device();
        disk.damage(0, &[0; 512]);
        let mut s = Store::mount(disk, config, Rng::from_seed([5; 32])).unwrap();
        assert!(!s.stats().counters.layout_upgraded);
        assert_eq!(s.read(&file, 0, 10).unwrap(), b"kept");
    }

    #[test]
    fn a_layout_one_store_with_its_last_block_in_use_mounts_as_it_is() {
        let (disk, file) = layout_one_disk(true);
        let mut s = Store::mount(disk, Config::default(), Rng::from_seed([4; 32])).unwrap();
        assert!(!s.stats().counters.layout_upgraded);
        assert_eq!(s.geometry().backup_block(), None);
        assert_eq!(s.read(&file.unwrap(), 0, 10).unwrap(), b"last!");
        s.check_consistency().unwrap();
        s.check_disk().unwrap();
        // Once the file is gone, the next mount upgrades.
        s.destroy(&file.unwrap()).unwrap();
        s.sync(&s.super_capability()).unwrap();
        let s = Store::mount(s.into_device(), Config::default(), Rng::from_seed([5; 32])).unwrap();
        assert!(s.stats().counters.layout_upgraded);
    }
}
