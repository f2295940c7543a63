//! The Bullet interface (`amoeba_ipc::interfaces::bullet`) served by a [`Store`], and the
//! disk object reached by RPC as the store's [`BlockDevice`]: what the server program
//! on a board wires together, host-tested here over `SimDisk` and a loopback
//! transport.
//!
//! Every reply buffer is allocated fallibly (`NoMem`), and a read reply carries at
//! most [`BS_IO_MAX`] bytes whatever the client asked for, so no request can make
//! the server allocate more than that for it.

use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, Header, Port, Status};
use amoeba_ipc::interface::{Call, Objects, Transport};
use amoeba_ipc::interfaces::disk;
use amoeba_ipc::interfaces::process::DiskGeometry;
use amoeba_ipc::interfaces::{BS_IO_MAX, BulletStats, bullet};

use crate::{BlockDevice, Chunk, DiskError, Store};

/// A store answering the Bullet interface; the standard commands come from the
/// generated dispatcher through [`Objects`].
pub struct BulletService<D: BlockDevice> {
    /// The files.
    pub store: Store<D>,
    /// Answer a chunk write before its data is on disk (see
    /// [`BulletService::dispatch_then_write`]).
    write_behind: bool,
    /// A chunk accepted and answered, whose data (the request's buffer) is still
    /// to be written.
    pending: Option<Chunk>,
}

impl<D: BlockDevice> BulletService<D> {
    /// Serves `store`, each request done before it is answered.
    pub fn new(store: Store<D>) -> Self {
        BulletService { store, write_behind: false, pending: None }
    }

    /// Serves `store`, answering a chunk write (`BS_WRITE`) once it is checked
    /// and accepted and putting its data on disk after the answer, so that the
    /// client's next chunk travels while this one is written. The server loop
    /// must use [`BulletService::dispatch_then_write`].
    ///
    /// (Reads are not done ahead the same way: fetching the next piece while the
    /// answer is sent made streamed reads slower on a one-core board, whose
    /// processor also sends the answer.)
    pub fn with_write_behind(store: Store<D>) -> Self {
        BulletService { store, write_behind: true, pending: None }
    }

    /// Answers one request.
    pub fn dispatch(&mut self, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
        self.drop_pending();
        bullet::dispatch(self, header, buf)
    }

    /// Answers one request through `reply` (which sends the answer), then does
    /// what was left for after the answer: the disk write of an accepted chunk,
    /// whose data is the request's buffer `buf`. Every request is thus finished
    /// before the next one is looked at.
    pub fn dispatch_then_write(&mut self, header: &Header, buf: &[u8], reply: impl FnOnce(&Header, &[u8])) {
        let (answer, data) = self.dispatch(header, buf);
        reply(&answer, &data);
        drop(data);
        if let Some(chunk) = self.pending.take() {
            // A failure marks the file: its next write or its commit says so.
            let _ = self.store.write_chunk(chunk, buf);
        }
    }

    /// A chunk left pending by a `dispatch` whose caller did not write it: its
    /// file can no longer be committed whole.
    fn drop_pending(&mut self) {
        if let Some(chunk) = self.pending.take() {
            self.store.abandon_chunk(chunk);
        }
    }
}

impl<D: BlockDevice> Objects for BulletService<D> {
    fn port(&self) -> Port {
        self.store.put_port()
    }
    fn check(&self, object: u32) -> Option<Check> {
        self.store.check_of(object)
    }
    fn describe(&mut self, object: u32) -> String {
        let random = self.check(object).unwrap_or_default();
        let capability = Capability::owner(self.store.put_port(), object, random);
        self.store.info(&capability).unwrap_or_else(|status| alloc::format!("bullet object: {status}"))
    }
    fn destroy_object(&mut self, object: u32) -> Result<(), Status> {
        let random = self.check(object).ok_or(Status::CapBad)?;
        self.store.destroy(&Capability::owner(self.store.put_port(), object, random))
    }
    fn age_objects(&mut self) -> Result<u32, Status> {
        self.store.age(&self.store.super_capability())
    }
    fn status_text(&self) -> String {
        let stats = self.store.stats();
        alloc::format!(
            "bullet server: {} files ({} uncommitted), {} of {} data blocks free, largest hole {} blocks",
            stats.files,
            stats.uncommitted,
            stats.free_blocks,
            stats.data_blocks,
            stats.largest_hole
        )
    }
}

impl<D: BlockDevice> bullet::Server for BulletService<D> {
    fn create(&mut self, call: &Call<'_>, flags: u32, data: &[u8]) -> Result<Capability, Status> {
        self.store.create(&call.capability, data, flags)
    }
    fn read(&mut self, call: &Call<'_>, offset: u64, size: u32) -> Result<Vec<u8>, Status> {
        let data = self.store.read(&call.capability, offset, (size as usize).min(BS_IO_MAX))?;
        let mut reply = Vec::new();
        reply.try_reserve_exact(data.len()).map_err(|_| Status::NoMem)?;
        reply.extend_from_slice(data);
        Ok(reply)
    }
    fn size(&mut self, call: &Call<'_>) -> Result<u64, Status> {
        self.store.size(&call.capability)
    }
    fn modify(
        &mut self,
        call: &Call<'_>,
        offset: u64,
        flags: u32,
        data: &[u8],
    ) -> Result<Capability, Status> {
        self.store.modify(&call.capability, offset, data, flags)
    }
    fn insert(
        &mut self,
        call: &Call<'_>,
        offset: u64,
        flags: u32,
        data: &[u8],
    ) -> Result<Capability, Status> {
        self.store.insert(&call.capability, offset, data, flags)
    }
    fn delete(
        &mut self,
        call: &Call<'_>,
        offset: u64,
        length: u32,
        flags: u32,
    ) -> Result<Capability, Status> {
        self.store.delete(&call.capability, offset, u64::from(length), flags)
    }
    fn sync(&mut self, call: &Call<'_>) -> Result<(), Status> {
        self.store.sync(&call.capability)
    }
    fn stats(&mut self, _: &Call<'_>) -> Result<BulletStats, Status> {
        let stats = self.store.stats();
        let block = self.store.geometry().block_size as u64;
        let committed = self.store.files().into_iter().filter(|f| f.committed);
        let (files, used_blocks) =
            committed.fold((0, 0), |(n, used), f| (n + 1, used + f.size.div_ceil(block)));
        Ok(BulletStats {
            block_size: block as u32,
            data_blocks: stats.data_blocks,
            free_blocks: stats.free_blocks,
            waiting_blocks: stats.waiting_blocks,
            used_blocks,
            files,
            uncommitted: stats.uncommitted as u64,
            largest_hole: stats.largest_hole,
            largest_file: (stats.largest_run * block).min(self.store.config().max_file_size.into()),
            max_file_size: self.store.config().max_file_size.into(),
            max_files: stats.inode_count.into(),
        })
    }
    fn reserve(&mut self, call: &Call<'_>, size: u64) -> Result<Capability, Status> {
        self.store.reserve(&call.capability, size)
    }
    fn write(&mut self, call: &Call<'_>, offset: u64, data: &[u8]) -> Result<(), Status> {
        if !self.write_behind {
            return self.store.write(&call.capability, offset, data);
        }
        self.pending = Some(self.store.accept_chunk(&call.capability, offset, data.len())?);
        Ok(())
    }
    fn commit(&mut self, call: &Call<'_>, flags: u32) -> Result<(), Status> {
        self.store.commit(&call.capability, flags)
    }
}

/// A transport that can also put a reply straight into the caller's buffer (on a
/// board: the nucleus's `trans`), so that a disk read needs no buffer of its own.
/// The provided method goes through [`Transport::trans`] and copies.
pub trait ReplyInto: Transport {
    /// One transaction whose reply buffer lands in `reply`; the reply header and
    /// the reply's length.
    fn trans_into(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply: &mut [u8],
    ) -> Result<(Header, usize), Status> {
        let (header, data) = self.trans(request, buf, reply.len())?;
        let part = reply.get_mut(..data.len()).ok_or(Status::SysErr)?;
        part.copy_from_slice(&data);
        Ok((header, data.len()))
    }
}

impl<T: ReplyInto + ?Sized> ReplyInto for &mut T {
    fn trans_into(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply: &mut [u8],
    ) -> Result<(Header, usize), Status> {
        (**self).trans_into(request, buf, reply)
    }
}

/// A disk object (`amoeba_ipc::interfaces::disk`) reached through `transport`, as a block
/// device.
pub struct DiskObject<T: Transport> {
    transport: T,
    capability: Capability,
    geometry: DiskGeometry,
}

impl<T: Transport> DiskObject<T> {
    /// The disk object named by `capability` (asks for its geometry).
    pub fn open(mut transport: T, capability: Capability) -> Result<Self, Status> {
        let geometry = disk::Client::new(&mut transport).geometry(&capability)?;
        if geometry.block_size == 0 {
            return Err(Status::ArgBad);
        }
        Ok(DiskObject { transport, capability, geometry })
    }

    /// The transport it calls through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport it calls through, mutably (tests reach the disk behind it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }
}

fn disk_error(status: Status) -> DiskError {
    match status {
        Status::ArgBad => DiskError::OutOfRange,
        _ => DiskError::Io,
    }
}

impl<T: ReplyInto> BlockDevice for DiskObject<T> {
    fn block_size(&self) -> usize {
        self.geometry.block_size as usize
    }
    fn block_count(&self) -> u64 {
        self.geometry.block_count
    }
    fn max_transfer(&self) -> usize {
        amoeba_ipc::interfaces::DISK_IO_MAX
    }
    fn read(&mut self, first_block: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let count = u32::try_from(buf.len() / self.block_size()).map_err(|_| DiskError::BadLength)?;
        let (request, _) = disk::read::request(&self.capability, first_block, count).map_err(disk_error)?;
        let (reply, len) = self.transport.trans_into(&request, &[], buf).map_err(disk_error)?;
        match reply.status() {
            Status::Ok if len == buf.len() => Ok(()),
            Status::Ok => Err(DiskError::Io),
            error => Err(disk_error(error)),
        }
    }
    fn write(&mut self, first_block: u64, data: &[u8]) -> Result<(), DiskError> {
        disk::Client::new(&mut self.transport).write(&self.capability, first_block, data).map_err(disk_error)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        disk::Client::new(&mut self.transport).flush(&self.capability).map_err(disk_error)
    }
}
