//! The operations clients call. Each takes the caller's capability, verifies it
//! (`CapBad` if forged, for another port or for a destroyed file; constant-time check
//! by `amoeba_abi::verify`), checks the rights it needs (`Denied`), and returns what the
//! reply carries. These map one to one onto the Bullet commands and the object parts
//! of the standard ones, so the server program only moves arguments between a
//! message and a call.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, GetPort, Port, Rights, Status};
use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};

use crate::device::{BlockDevice, write_padded};
use crate::layout::Geometry;
use crate::store::{Counters, File, Store, disk_status};

/// What a verified capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Object 0: the server itself.
    Server,
    /// A file, by inode number.
    File(u32),
}

/// One change to a file's bytes.
#[derive(Clone, Copy, Debug)]
enum Edit<'a> {
    /// Overwrite from `offset` on (the file grows if the data runs past its end).
    Modify { offset: u64, data: &'a [u8] },
    /// Insert before byte `offset`.
    Insert { offset: u64, data: &'a [u8] },
    /// Remove `len` bytes from `offset` on.
    Delete { offset: u64, len: u64 },
}

/// `offset` as an index into a file of `len` bytes (at most its end).
fn offset_within(offset: u64, len: usize) -> Result<usize, Status> {
    usize::try_from(offset).ok().filter(|&o| o <= len).ok_or(Status::ArgBad)
}

impl Edit<'_> {
    /// The file's length after the edit, if the edit fits the file.
    fn new_len(&self, old: usize) -> Result<usize, Status> {
        match *self {
            Edit::Modify { offset, data } => Ok(old.max(offset_within(offset, old)? + data.len())),
            Edit::Insert { offset, data } => offset_within(offset, old).map(|_| old + data.len()),
            Edit::Delete { offset, len } => {
                let start = offset_within(offset, old)?;
                let len = usize::try_from(len).ok().filter(|&l| l <= old - start).ok_or(Status::ArgBad)?;
                Ok(old - len)
            }
        }
    }

    /// Apply the edit (already checked by `new_len`, with room made for growth).
    fn apply(&self, v: &mut Vec<u8>) {
        match *self {
            Edit::Modify { offset, data } => {
                let start = offset as usize;
                let end = start + data.len();
                if end > v.len() {
                    v.resize(end, 0);
                }
                v[start..end].copy_from_slice(data);
            }
            Edit::Insert { offset, data } => {
                // In place: the caller made room, so nothing is allocated here.
                let (at, old) = (offset as usize, v.len());
                v.resize(old + data.len(), 0);
                v.copy_within(at..old, at + data.len());
                v[at..at + data.len()].copy_from_slice(data);
            }
            Edit::Delete { offset, len } => {
                v.drain(offset as usize..(offset + len) as usize);
            }
        }
    }
}

/// Occupancy and cache figures (for tests, STD_INFO and STD_STATUS texts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Files, committed and uncommitted.
    pub files: usize,
    /// Uncommitted files (in memory, or reserved on disk).
    pub uncommitted: usize,
    /// Uncommitted files being written straight to their reserved runs.
    pub reserved: usize,
    /// Blocks of the longest run a new file could get now (after compaction and a
    /// sync, which [`Store::reserve`] and commits do when they must).
    pub largest_run: u64,
    /// Inodes: the most files the store holds.
    pub inode_count: u32,
    /// Data blocks on the disk.
    pub data_blocks: u64,
    /// Free data blocks (usable now).
    pub free_blocks: u64,
    /// Blocks of destroyed or moved files, free once their inode is durable.
    pub waiting_blocks: u64,
    /// Blocks in the largest hole.
    pub largest_hole: u64,
    /// Bytes in the file cache.
    pub cached_bytes: usize,
    /// The cache's bound.
    pub cache_capacity: usize,
    /// Bytes of uncommitted files (held in memory).
    pub uncommitted_bytes: usize,
    /// Inode blocks changed since the last write round.
    pub dirty_inode_blocks: usize,
    /// Work done since mount.
    pub counters: Counters,
}

/// A chunk of a file being written, accepted by [`Store::accept_chunk`] and not
/// yet on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    inode: u32,
    /// The file's random check: the chunk belongs to this file and no later one
    /// under the same inode.
    random: Check,
    /// Its first block on disk.
    block: u64,
    /// Its bytes.
    len: usize,
}

/// A file as [`Store::files`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Its owner capability.
    pub capability: Capability,
    /// Its size in bytes.
    pub size: u64,
    /// Committed (immutable)?
    pub committed: bool,
}

impl<D: BlockDevice> Store<D> {
    /// The private get-port the server listens on.
    pub fn get_port(&self) -> GetPort {
        self.get_port
    }

    /// The public put-port in every capability of this store.
    pub fn put_port(&self) -> Port {
        self.port
    }

    /// The owner capability of the server itself (object 0): create, age, sync.
    pub fn super_capability(&self) -> Capability {
        Capability::owner(self.port, 0, self.super_random)
    }

    /// Where things are on the disk.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// How the store is set up.
    pub fn config(&self) -> crate::Config {
        self.config
    }

    /// BS_CREATE: a new file holding `data`, its owner capability returned. Needs the
    /// super capability with the create right. Without [`BS_COMMIT`] in `flags` the file
    /// is uncommitted and may grow by [`Store::modify`] at its end; with it the file is
    /// committed, and with [`BS_SAFETY`] too this returns only once it is on disk.
    /// `Overflow` above the largest file size, `NoMem` when uncommitted files would
    /// take more memory than configured (or than there is), `NoSpace` when the inode
    /// table or the disk is full (nothing is created then). Files larger than memory
    /// are made with [`Store::reserve`] instead.
    pub fn create(&mut self, cap: &Capability, data: &[u8], flags: u32) -> Result<Capability, Status> {
        let (target, rights) = self.access(cap)?;
        if target != Target::Server {
            return Err(Status::Denied);
        }
        Self::require(rights, Rights::CREATE)?;
        self.check_new_uncommitted(data.len())?;
        let mut copy = Vec::new();
        Self::make_room(&mut self.cache, &mut copy, data.len())?;
        copy.extend_from_slice(data);
        let inode = self.new_uncommitted(copy)?;
        self.settle_new_file(inode, flags)
    }

    /// BS_RESERVE: a new uncommitted file of `size` bytes whose blocks are taken at
    /// once, one contiguous run on disk (compacting if it must), to be filled with
    /// [`Store::write`] and committed with [`Store::commit`]. Its data never passes
    /// through memory whole, so a file may be as large as the largest run the disk
    /// can make. Needs the super capability with the create right; `Overflow` above
    /// the largest file size, `NoSpace` when no run that long can be made or the
    /// inode table is full. Until committed, it is gone after a crash, and it ages
    /// like any uncommitted file.
    pub fn reserve(&mut self, cap: &Capability, size: u64) -> Result<Capability, Status> {
        let (target, rights) = self.access(cap)?;
        if target != Target::Server {
            return Err(Status::Denied);
        }
        Self::require(rights, Rights::CREATE)?;
        if size > u64::from(self.config.max_file_size) {
            return Err(Status::Overflow);
        }
        let inode = self.free_inode().ok_or(Status::NoSpace)?;
        let start = self.allocate(self.geo.blocks_for(size))?;
        let random = self.rng.check();
        let life = self.config.uncommitted_life;
        self.files[inode as usize] =
            Some(File::Reserved { random, size: size as u32, start, written: 0, broken: false, life });
        Ok(self.owner_capability(inode, random))
    }

    /// BS_WRITE: put `data` at `offset` of a reserved file, straight onto its blocks.
    /// The file is written from its start on, without holes: `offset` is a multiple of
    /// the block size and at most the bytes written so far (a chunk may be written
    /// again), and `data` is whole blocks unless it ends the file. Needs the modify
    /// right; `ArgBad` for a file not being written or a chunk that breaks the rules,
    /// `SysErr` once a chunk of the file could not be written.
    pub fn write(&mut self, cap: &Capability, offset: u64, data: &[u8]) -> Result<(), Status> {
        let chunk = self.accept_chunk(cap, offset, data.len())?;
        self.write_chunk(chunk, data)
    }

    /// The first half of [`Store::write`]: check a chunk of `len` bytes at
    /// `offset` and count it as written; where it goes. A server may answer the
    /// client now and put the data on disk with [`Store::write_chunk`] right after
    /// (before it handles anything else), so that the next chunk travels while this
    /// one is written. Nothing is promised before the commit, and a chunk that
    /// fails to reach the disk makes the file one that cannot be committed.
    pub fn accept_chunk(&mut self, cap: &Capability, offset: u64, len: usize) -> Result<Chunk, Status> {
        let inode = self.file_access(cap, Rights::MODIFY)?;
        let Some(File::Reserved { size, start, written, broken, .. }) = self.files[inode as usize] else {
            return Err(Status::ArgBad);
        };
        if broken {
            return Err(Status::SysErr);
        }
        let bs = self.geo.block_size as u64;
        let end = offset.checked_add(len as u64).ok_or(Status::ArgBad)?;
        let whole_blocks = (len as u64).is_multiple_of(bs) || end == size as u64;
        if !offset.is_multiple_of(bs) || offset > written || end > size as u64 || !whole_blocks {
            return Err(Status::ArgBad);
        }
        if let Some(File::Reserved { written, .. }) = &mut self.files[inode as usize] {
            *written = (*written).max(end);
        }
        Ok(Chunk {
            inode,
            random: self.files[inode as usize].as_ref().map_or_else(Check::default, File::random),
            block: start + offset / bs,
            len,
        })
    }

    /// The second half of [`Store::write`]: put an accepted chunk's `data` on
    /// disk. If the file is gone meanwhile, nothing is written.
    pub fn write_chunk(&mut self, chunk: Chunk, data: &[u8]) -> Result<(), Status> {
        let still_there = matches!(&self.files[chunk.inode as usize],
            Some(f @ File::Reserved { .. }) if f.random() == chunk.random);
        if !still_there || data.len() != chunk.len {
            return Err(Status::ArgBad);
        }
        let result = write_padded(&mut self.dev, chunk.block, data).map_err(disk_status);
        if result.is_err()
            && let Some(File::Reserved { broken, .. }) = &mut self.files[chunk.inode as usize]
        {
            *broken = true;
        }
        result
    }

    /// An accepted chunk that will never be written: its file can no longer be
    /// committed.
    pub fn abandon_chunk(&mut self, chunk: Chunk) {
        if let Some(file @ File::Reserved { .. }) = &mut self.files[chunk.inode as usize]
            && file.random() == chunk.random
            && let File::Reserved { broken, .. } = file
        {
            *broken = true;
        }
    }

    /// BS_COMMIT_FILE: commit a reserved file once all of it is written; with
    /// [`BS_SAFETY`] in `flags` this returns only once it is on disk. Needs the
    /// modify right; `ArgBad` for a file not being written or not yet whole.
    pub fn commit(&mut self, cap: &Capability, flags: u32) -> Result<(), Status> {
        let inode = self.file_access(cap, Rights::MODIFY)?;
        if !matches!(self.files[inode as usize], Some(File::Reserved { .. })) {
            return Err(Status::ArgBad);
        }
        self.commit_reserved(inode, flags & BS_SAFETY != 0)
    }

    /// BS_READ: up to `size` bytes from `offset` on (fewer at the end of the file).
    /// Needs the read right; `NotNow` for an uncommitted file, `ArgBad` for an offset
    /// past the end. The file is read whole into the cache unless it is larger than
    /// the cache (or memory is short), in which case just the blocks asked for are
    /// read; `NoMem` if not even those fit in memory.
    pub fn read(&mut self, cap: &Capability, offset: u64, size: usize) -> Result<&[u8], Status> {
        let inode = self.file_access(cap, Rights::READ)?;
        let (file_size, place) = match &self.files[inode as usize] {
            Some(File::Committed { size, place, .. }) => (*size, *place),
            _ => return Err(Status::NotNow),
        };
        let start = offset_within(offset, file_size as usize)?;
        let end = start + size.min(file_size as usize - start);
        if !self.cache.contains(inode) && self.cache.fits(file_size as usize) {
            match self.load_from_disk(file_size, place) {
                Ok(data) => self.cache.insert(inode, data),
                Err(Status::NoMem) => {}
                Err(other) => return Err(other),
            }
        }
        if self.cache.contains(inode) {
            let data = self.cache.get(inode).ok_or(Status::SysErr)?;
            return Ok(&data[start..end]);
        }
        self.read_uncached(place, start, end)
    }

    /// Bytes `start..end` of a file not in the cache, read straight from disk.
    fn read_uncached(
        &mut self,
        place: crate::layout::Placement,
        start: usize,
        end: usize,
    ) -> Result<&[u8], Status> {
        let bs = self.geo.block_size;
        let first = start / bs;
        let blocks = end.div_ceil(bs).saturating_sub(first);
        let mut scratch = core::mem::take(&mut self.scratch);
        if scratch.len() < blocks * bs {
            drop(scratch);
            scratch = self.buffer(blocks * bs)?;
        }
        let read = self.read_file_blocks(place, first as u64, &mut scratch[..blocks * bs]);
        self.scratch = scratch;
        read?;
        let skip = first * bs;
        Ok(&self.scratch[start - skip..end - skip])
    }

    /// BS_SIZE: the file's size in bytes (uncommitted files too). Needs the read right.
    pub fn size(&mut self, cap: &Capability) -> Result<u64, Status> {
        let inode = self.file_access(cap, Rights::READ)?;
        self.files[inode as usize].as_ref().map(File::size).ok_or(Status::CapBad)
    }

    /// BS_MODIFY: overwrite bytes from `offset` on with `data` (appending when the data
    /// runs past the end; `offset` at most the size). See [`Store::insert`] for what
    /// happens to committed and uncommitted files.
    pub fn modify(
        &mut self,
        cap: &Capability,
        offset: u64,
        data: &[u8],
        flags: u32,
    ) -> Result<Capability, Status> {
        self.edit(cap, Edit::Modify { offset, data }, flags)
    }

    /// BS_INSERT: insert `data` before byte `offset`. Needs the read and modify rights.
    /// On a committed file this makes a new file (uncommitted, or committed with
    /// [`BS_COMMIT`]) and returns its owner capability; the old file is unchanged. On an
    /// uncommitted file it changes that file and returns `cap`; with [`BS_COMMIT`] it
    /// then commits it — if that fails (e.g. `NoSpace`), the change stays made and the
    /// file stays uncommitted, so the client may commit again (an empty modify with
    /// [`BS_COMMIT`]) or destroy it.
    pub fn insert(
        &mut self,
        cap: &Capability,
        offset: u64,
        data: &[u8],
        flags: u32,
    ) -> Result<Capability, Status> {
        self.edit(cap, Edit::Insert { offset, data }, flags)
    }

    /// BS_DELETE: remove `len` bytes from `offset` on. As [`Store::insert`].
    pub fn delete(
        &mut self,
        cap: &Capability,
        offset: u64,
        len: u64,
        flags: u32,
    ) -> Result<Capability, Status> {
        self.edit(cap, Edit::Delete { offset, len }, flags)
    }

    fn edit(&mut self, cap: &Capability, edit: Edit<'_>, flags: u32) -> Result<Capability, Status> {
        let inode = self.file_access(cap, Rights::READ | Rights::MODIFY)?;
        let old_len = self.files[inode as usize].as_ref().map_or(0, File::size) as usize;
        let new_len = edit.new_len(old_len)?;
        if new_len > self.config.max_file_size as usize {
            return Err(Status::Overflow);
        }
        match &mut self.files[inode as usize] {
            Some(File::Uncommitted { data, .. }) => {
                let total = self.uncommitted_bytes - old_len + new_len;
                if new_len > old_len && total > self.config.uncommitted_bytes {
                    return Err(Status::NoMem);
                }
                Self::make_room(&mut self.cache, data, new_len.saturating_sub(old_len))?;
                edit.apply(data);
                self.uncommitted_bytes = total;
                if flags & BS_COMMIT != 0 {
                    self.commit_uncommitted(inode, flags & BS_SAFETY != 0)?;
                }
                return Ok(*cap);
            }
            // Written in place on disk, chunk by chunk: `write` and `commit`.
            Some(File::Reserved { .. }) => return Err(Status::ArgBad),
            _ => {}
        }
        self.check_new_uncommitted(new_len.max(old_len))?;
        let mut content = self.contents(inode)?;
        Self::make_room(&mut self.cache, &mut content, new_len.saturating_sub(old_len))?;
        edit.apply(&mut content);
        let new = self.new_uncommitted(content)?;
        self.settle_new_file(new, flags)
    }

    /// BS_SYNC: everything committed is on disk when this returns. Any valid
    /// capability of this server will do.
    pub fn sync(&mut self, cap: &Capability) -> Result<(), Status> {
        self.access(cap)?;
        self.write_inode_blocks()
    }

    /// STD_DESTROY: remove the file (needs the delete right; `Denied` for the server
    /// itself). Its blocks are reused once the removal is on disk (next sync or safe
    /// commit); until then a crash may bring the file back, intact.
    pub fn destroy(&mut self, cap: &Capability) -> Result<(), Status> {
        let (target, rights) = self.access(cap)?;
        let Target::File(inode) = target else { return Err(Status::Denied) };
        Self::require(rights, Rights::DELETE)?;
        self.remove_file(inode);
        Ok(())
    }

    /// STD_INFO: a line describing the file or the server. Any rights.
    pub fn info(&mut self, cap: &Capability) -> Result<String, Status> {
        let (target, _) = self.access(cap)?;
        Ok(match (target, self.target_file(target)) {
            (Target::File(_), Some(f @ File::Committed { .. })) => format!("bullet file, {} bytes", f.size()),
            (Target::File(_), Some(File::Reserved { size, written, .. })) => {
                format!("bullet file, {size} bytes, uncommitted, {written} written")
            }
            (Target::File(_), Some(f)) => format!("bullet file, {} bytes, uncommitted", f.size()),
            _ => {
                let s = self.stats();
                format!(
                    "bullet server: {} files ({} uncommitted), {} of {} blocks of {} bytes free",
                    s.files, s.uncommitted, s.free_blocks, s.data_blocks, self.geo.block_size
                )
            }
        })
    }

    /// STD_RESTRICT: a capability for the same object with `cap.rights & mask`.
    pub fn restrict(&mut self, cap: &Capability, mask: Rights) -> Result<Capability, Status> {
        let (target, rights) = self.access(cap)?;
        let random = self.target_file(target).map_or(self.super_random, File::random);
        let rights = rights & mask;
        Ok(Capability { rights, check: amoeba_abi::restrict(&random, rights), ..*cap })
    }

    /// STD_TOUCH: keep an uncommitted file from being aged away (every access does).
    pub fn touch(&mut self, cap: &Capability) -> Result<(), Status> {
        self.access(cap).map(|_| ())
    }

    /// STD_AGE (super capability, all rights): one tick of garbage collection. Every
    /// uncommitted file not touched for `uncommitted_life` ticks is destroyed;
    /// committed files stay until destroyed. Returns how many went.
    pub fn age(&mut self, cap: &Capability) -> Result<u32, Status> {
        let (target, rights) = self.access(cap)?;
        if target != Target::Server || !rights.is_owner() {
            return Err(Status::Denied);
        }
        let mut dead = Vec::new();
        for (inode, file) in self.files.iter_mut().enumerate() {
            if let Some(File::Uncommitted { life, .. } | File::Reserved { life, .. }) = file {
                *life = life.saturating_sub(1);
                if *life == 0 {
                    dead.push(inode as u32);
                }
            }
        }
        for &inode in &dead {
            self.remove_file(inode);
        }
        Ok(dead.len() as u32)
    }

    /// Occupancy and cache figures.
    pub fn stats(&self) -> Stats {
        let files = self.files.iter().flatten();
        Stats {
            files: files.clone().count(),
            uncommitted: files.clone().filter(|f| !f.is_committed()).count(),
            reserved: files.filter(|f| matches!(f, File::Reserved { .. })).count(),
            largest_run: self.largest_run_after_compaction(),
            inode_count: self.geo.inode_count,
            data_blocks: self.geo.data_blocks(),
            free_blocks: self.free.total(),
            waiting_blocks: self.freed.iter().map(|f| f.len).sum(),
            largest_hole: self.free.largest(),
            cached_bytes: self.cache.used(),
            cache_capacity: self.cache.capacity(),
            uncommitted_bytes: self.uncommitted_bytes,
            dirty_inode_blocks: self.dirty.len(),
            counters: self.counters,
        }
    }

    /// Every file with its owner capability, by object number.
    pub fn files(&self) -> Vec<FileInfo> {
        let files = self.files.iter().enumerate();
        files
            .filter_map(|(n, f)| f.as_ref().map(|f| (n as u32, f)))
            .map(|(n, f)| FileInfo {
                capability: self.owner_capability(n, f.random()),
                size: f.size(),
                committed: f.is_committed(),
            })
            .collect()
    }

    /// Object numbers of the cached files, least recently used first.
    pub fn cached_objects(&self) -> Vec<u32> {
        self.cache.lru_order().map(|inode| inode + 1).collect()
    }

    /// The device (e.g. to read a simulated disk's counters).
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The device, mutably (e.g. to make a simulated disk crash).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Stop using the device and hand it back (committed files not yet synced are not
    /// necessarily on it: call [`Store::sync`] first for a clean stop).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Inject deliberate defects (tests of the crash tests).
    #[cfg(feature = "sim")]
    pub fn inject_faults(&mut self, faults: crate::Faults) {
        self.faults = faults;
    }

    /// The random check value of `object` (0 = the server), for dispatchers that
    /// verify capabilities before calling the operations (which verify again).
    pub fn check_of(&self, object: u32) -> Option<Check> {
        if object == 0 {
            return Some(self.super_random);
        }
        let inode = object.checked_sub(1)?;
        self.files.get(inode as usize).and_then(Option::as_ref).map(File::random)
    }

    /// Verify `cap` and count it as an access (an uncommitted file's life starts over).
    fn access(&mut self, cap: &Capability) -> Result<(Target, Rights), Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let (target, random) = if cap.object == 0 {
            (Target::Server, self.super_random)
        } else {
            let inode = cap.object - 1;
            let file = self.files.get(inode as usize).and_then(Option::as_ref).ok_or(Status::CapBad)?;
            (Target::File(inode), file.random())
        };
        let rights = amoeba_abi::verify(&random, cap).map_err(|_| Status::CapBad)?;
        if let Target::File(inode) = target
            && let Some(File::Uncommitted { life, .. } | File::Reserved { life, .. }) =
                &mut self.files[inode as usize]
        {
            *life = self.config.uncommitted_life;
        }
        Ok((target, rights))
    }

    /// Verify a capability for a file with at least `needed` rights; its inode.
    fn file_access(&mut self, cap: &Capability, needed: Rights) -> Result<u32, Status> {
        match self.access(cap)? {
            (Target::File(inode), rights) => Self::require(rights, needed).map(|_| inode),
            (Target::Server, _) => Err(Status::ArgBad),
        }
    }

    fn target_file(&self, target: Target) -> Option<&File> {
        match target {
            Target::File(inode) => self.files[inode as usize].as_ref(),
            Target::Server => None,
        }
    }

    /// May a new uncommitted file of `len` bytes be made: `Overflow` above the
    /// largest file, `NoMem` beyond the memory for uncommitted files.
    fn check_new_uncommitted(&self, len: usize) -> Result<(), Status> {
        if len > self.config.max_file_size as usize {
            return Err(Status::Overflow);
        }
        if self.uncommitted_bytes.saturating_add(len) > self.config.uncommitted_bytes {
            return Err(Status::NoMem);
        }
        Ok(())
    }

    /// A new uncommitted file holding `data`; its inode.
    fn new_uncommitted(&mut self, data: Vec<u8>) -> Result<u32, Status> {
        self.check_new_uncommitted(data.len())?;
        let inode = self.free_inode().ok_or(Status::NoSpace)?;
        let random = self.rng.check();
        self.uncommitted_bytes += data.len();
        self.files[inode as usize] =
            Some(File::Uncommitted { random, data, life: self.config.uncommitted_life });
        Ok(inode)
    }

    /// Commit a file just made if `flags` ask for it, and hand out its capability; if
    /// the commit fails the file goes (nobody has its capability yet).
    fn settle_new_file(&mut self, inode: u32, flags: u32) -> Result<Capability, Status> {
        if flags & BS_COMMIT != 0
            && let Err(s) = self.commit_uncommitted(inode, flags & BS_SAFETY != 0)
        {
            self.remove_file(inode);
            return Err(s);
        }
        let random = self.files[inode as usize].as_ref().map(File::random).ok_or(Status::SysErr)?;
        Ok(self.owner_capability(inode, random))
    }

    /// A copy of a committed file's contents (from the cache, else from disk), in
    /// memory taken fallibly.
    fn contents(&mut self, inode: u32) -> Result<Vec<u8>, Status> {
        let Some(File::Committed { size, place, .. }) = self.files[inode as usize] else {
            return Err(Status::SysErr);
        };
        if self.cache.contains(inode) {
            let mut copy = Vec::new();
            Self::make_room(&mut self.cache, &mut copy, size as usize)?;
            // Making room may have evicted the file itself.
            if let Some(data) = self.cache.get(inode) {
                copy.extend_from_slice(data);
                return Ok(copy);
            }
            drop(copy);
        }
        self.load_from_disk(size, place)
    }
}
