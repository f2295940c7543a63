//! The disk service (Amoeba's virtual disk server): the board's disk
//! served by RPC on a put-port of its own, as objects that are ranges of
//! the disk (first block, block count). Capabilities for ranges come from
//! [`DiskService::open`], which the process server calls behind the
//! board's host capability; block numbers in requests are relative to the
//! range and may not reach past it.
//!
//! A disk request completes after the device's interrupt, so the service
//! does not answer it inside the RPC layer's call: the generated
//! dispatcher verifies the capability, checks rights and range, and the
//! operation only records what it accepted; the request then waits in the
//! service's queue and its reply is sent once the device is done
//! ([`DiskService::poll`], then [`DiskService::take_reply`]). Meanwhile
//! other RPC and every process keep running. The service gives the device
//! one operation at a time, in arrival order (so a read sees every write
//! before it and a flush covers them); the driver splits each into as many
//! device requests as it takes. A flush the device finishes also answers
//! the flushes waiting behind it ([`nucleus::disk_queue`] says why that
//! keeps their promise): writers sharing the disk share its flushes.

#![forbid(unsafe_code)]

use crate::drivers::block::{self, BlockError, SECTOR_SIZE};
use crate::process::Core;
use crate::process::thread::{Tid, Wait};
use crate::rpc::KernelRequest;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Header, OBJECT_MAX, Port, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::process::DiskGeometry;
use amoeba_ipc::interfaces::{DISK_IO_MAX, disk};
use flip::ReqId;
use nucleus::disk_queue::{DiskQueue, Operation};

/// Bytes per block of a disk object: the device's sector.
pub const BLOCK_SIZE: usize = SECTOR_SIZE;
// One call's data goes to the driver as one request.
const _: () = assert!(DISK_IO_MAX <= block::MAX_REQUEST);

/// Operations waiting for the device at most; more are refused with
/// `NotNow` (each may hold a megabyte of kernel heap).
const MAX_QUEUED: usize = 8;

/// One disk operation, in blocks of the whole disk.
#[derive(Debug)]
pub enum DiskOp {
    Read { first: u64, count: u32 },
    Write { first: u64, data: Vec<u8> },
    Flush,
}

impl DiskOp {
    fn request(self) -> block::Request {
        match self {
            DiskOp::Read { first, count } => {
                block::Request::Read { sector: first, len: count as usize * BLOCK_SIZE }
            }
            DiskOp::Write { first, data } => block::Request::Write { sector: first, data },
            DiskOp::Flush => block::Request::Flush,
        }
    }
}

/// Who waits for an operation: an RPC client, or a kernel thread blocked
/// on [`Wait::Disk`].
#[derive(Clone, Copy, Debug)]
enum Waiter {
    Rpc(ReqId),
    Thread(Tid),
}

/// A reply for the RPC layer to send.
pub struct DiskReply {
    pub req: ReqId,
    pub header: Header,
    pub buf: Vec<u8>,
}

/// What a verified request asked for (a write's data is the request's
/// buffer, which moves into the operation afterwards instead of being copied).
#[derive(Clone, Copy, Debug)]
enum Accepted {
    Read { first: u64, count: u32 },
    Write { first: u64 },
    Flush,
}

/// One object: blocks `first .. first + count` of the disk.
struct Range {
    first: u64,
    count: u64,
    random: Check,
}

/// The objects, as the generated dispatcher sees them.
struct Ranges {
    port: Port,
    blocks: u64,
    objects: BTreeMap<u32, Range>,
    next_object: u32,
    rng: amoeba_abi::Rng,
    /// What the last dispatched request asked the device to do.
    accepted: Option<Accepted>,
}

struct Queued {
    tag: u64,
    waiter: Waiter,
    op: DiskOp,
}

impl Operation for Queued {
    fn is_flush(&self) -> bool {
        matches!(self.op, DiskOp::Flush)
    }
}

/// The operation the device works on.
struct Current {
    tag: u64,
    waiter: Waiter,
    /// Whether the reply carries the data (a read).
    returns_data: bool,
    /// Whether it is a flush (which answers the flushes waiting too).
    flush: bool,
}

pub struct DiskService {
    ranges: Ranges,
    queue: DiskQueue<Queued>,
    current: Option<Current>,
    next_tag: u64,
    replies: VecDeque<DiskReply>,
    /// Results for kernel threads, until they take them.
    finished: BTreeMap<u64, Result<Vec<u8>, Status>>,
}

impl DiskService {
    /// The service of a disk of `geometry`, on a fresh random get-port
    /// (the nucleus' secret), which the caller has the RPC service serve.
    pub fn new(core: &mut Core, geometry: block::Geometry) -> (Self, GetPort) {
        let get_port = GetPort::random(core.rng());
        let mut seed = [0u8; 32];
        core.rng().fill(&mut seed);
        let ranges = Ranges {
            port: get_port.put_port(),
            blocks: geometry.sectors,
            objects: BTreeMap::new(),
            next_object: 1,
            rng: amoeba_abi::Rng::from_seed(seed),
            accepted: None,
        };
        let service = Self {
            ranges,
            queue: DiskQueue::default(),
            current: None,
            next_tag: 1,
            replies: VecDeque::new(),
            finished: BTreeMap::new(),
        };
        (service, get_port)
    }

    /// The put-port every disk capability of this board names.
    pub fn port(&self) -> Port {
        self.ranges.port
    }

    /// The whole disk.
    pub fn geometry(&self) -> DiskGeometry {
        DiskGeometry { block_size: BLOCK_SIZE as u32, block_count: self.ranges.blocks }
    }

    /// A new object for blocks `first .. first + count` of the disk
    /// (`count` 0: to the end), and its owner capability (all rights).
    /// `ArgBad` if the range is empty or reaches past the disk.
    pub fn open(&mut self, first: u64, count: u64) -> Result<Capability, Status> {
        self.ranges.open(first, count)
    }

    /// Takes an RPC request to the service's port: answered at once (a
    /// refusal, the geometry, a standard command) or queued for the device.
    pub fn accept(&mut self, core: &mut Core, request: KernelRequest) {
        self.ranges.accepted = None;
        let (header, buf) = disk::dispatch(&mut self.ranges, &request.header, &request.buf);
        let accepted = self.ranges.accepted.take().filter(|_| header.status() == Status::Ok);
        let Some(accepted) = accepted else {
            self.replies.push_back(DiskReply { req: request.req, header, buf });
            return;
        };
        if self.queue.len() >= MAX_QUEUED {
            self.replies.push_back(DiskReply {
                req: request.req,
                header: Header::reply(Status::NotNow),
                buf: Vec::new(),
            });
            return;
        }
        let op = match accepted {
            Accepted::Read { first, count } => DiskOp::Read { first, count },
            Accepted::Write { first } => DiskOp::Write { first, data: request.buf },
            Accepted::Flush => DiskOp::Flush,
        };
        self.enqueue(core, Waiter::Rpc(request.req), op);
    }

    /// Queues `op` for kernel thread `tid`, which then blocks on
    /// `Wait::Disk(tag)` until [`DiskService::is_finished`]; returns the tag.
    pub fn submit(&mut self, core: &mut Core, tid: Tid, op: DiskOp) -> u64 {
        self.enqueue(core, Waiter::Thread(tid), op)
    }

    pub fn is_finished(&self, tag: u64) -> bool {
        self.finished.contains_key(&tag)
    }

    /// A kernel thread's result: a read's data, or nothing.
    pub fn take_finished(&mut self, tag: u64) -> Option<Result<Vec<u8>, Status>> {
        self.finished.remove(&tag)
    }

    /// Hands the device's finished operations to their waiters and starts
    /// the next one.
    pub fn poll(&mut self, core: &mut Core) {
        while let Some(completion) = block::take_completion() {
            match self.current.take() {
                Some(current) if current.tag == completion.tag => {
                    let result = completion.result.map_err(status_of);
                    if current.flush {
                        for covered in self.queue.take_covered_flushes() {
                            let current = Current {
                                tag: covered.tag,
                                waiter: covered.waiter,
                                returns_data: false,
                                flush: true,
                            };
                            self.finish(core, current, result.clone().map(|_| Vec::new()));
                        }
                    }
                    self.finish(core, current, result);
                }
                other => {
                    crate::println!("nucleus: disk: completion of unknown operation {}", completion.tag);
                    self.current = other;
                }
            }
        }
        self.start_next(core);
    }

    /// The next reply for the RPC layer to send.
    pub fn take_reply(&mut self) -> Option<DiskReply> {
        self.replies.pop_front()
    }

    fn enqueue(&mut self, core: &mut Core, waiter: Waiter, op: DiskOp) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.queue.push(Queued { tag, waiter, op });
        self.start_next(core);
        tag
    }

    /// Gives the device the oldest queued operation if it is idle.
    fn start_next(&mut self, core: &mut Core) {
        while self.current.is_none() {
            let Some(Queued { tag, waiter, op }) = self.queue.take_next() else {
                return;
            };
            let current = Current {
                tag,
                waiter,
                returns_data: matches!(op, DiskOp::Read { .. }),
                flush: matches!(op, DiskOp::Flush),
            };
            match block::submit(tag, op.request()) {
                Ok(()) => self.current = Some(current),
                Err(error) => self.finish(core, current, Err(status_of(error))),
            }
        }
    }

    fn finish(&mut self, core: &mut Core, current: Current, result: Result<Vec<u8>, Status>) {
        match current.waiter {
            Waiter::Rpc(req) => {
                let (header, buf) = match result {
                    Ok(data) if current.returns_data => (Header::reply(Status::Ok), data),
                    Ok(_) => (Header::reply(Status::Ok), Vec::new()),
                    Err(status) => (Header::reply(status), Vec::new()),
                };
                self.replies.push_back(DiskReply { req, header, buf });
            }
            Waiter::Thread(tid) => {
                self.finished.insert(current.tag, result);
                core.wake_waiter(tid, Wait::Disk(current.tag), 0);
            }
        }
    }
}

/// The status a client sees for a driver error.
fn status_of(error: BlockError) -> Status {
    match error {
        BlockError::BadRequest => Status::ArgBad,
        BlockError::ReadOnly => Status::WriteProt,
        BlockError::NoDevice => Status::NoMedium,
        BlockError::TagInUse | BlockError::Device(_) | BlockError::Broken | BlockError::Setup(_) => {
            Status::SysErr
        }
    }
}

impl Ranges {
    fn open(&mut self, first: u64, count: u64) -> Result<Capability, Status> {
        let count = if count == 0 { self.blocks.saturating_sub(first) } else { count };
        let inside = first.checked_add(count).is_some_and(|end| end <= self.blocks);
        if count == 0 || !inside {
            return Err(Status::ArgBad);
        }
        if self.next_object > OBJECT_MAX {
            return Err(Status::NoSpace);
        }
        let object = self.next_object;
        self.next_object += 1;
        let random = self.rng.check();
        self.objects.insert(object, Range { first, count, random });
        Ok(Capability::owner(self.port, object, random))
    }

    /// The range a verified call names.
    fn range(&self, call: &Call<'_>) -> Result<&Range, Status> {
        self.objects.get(&call.object).ok_or(Status::CapBad)
    }

    /// The disk block of block `first` of the call's range, if `count`
    /// blocks from there (one call's worth at most) lie inside it.
    fn locate(&self, call: &Call<'_>, first: u64, count: u64) -> Result<u64, Status> {
        let range = self.range(call)?;
        let too_big = count.checked_mul(BLOCK_SIZE as u64).is_none_or(|bytes| bytes > DISK_IO_MAX as u64);
        let inside = first.checked_add(count).is_some_and(|end| end <= range.count);
        if count == 0 || too_big || !inside {
            return Err(Status::ArgBad);
        }
        Ok(range.first + first)
    }
}

impl Objects for Ranges {
    fn port(&self) -> Port {
        self.port
    }

    fn check(&self, object: u32) -> Option<Check> {
        self.objects.get(&object).map(|range| range.random)
    }

    fn describe(&mut self, object: u32) -> String {
        match self.objects.get(&object) {
            Some(range) => format!(
                "disk blocks {}..{} ({} blocks of {BLOCK_SIZE} bytes)",
                range.first,
                range.first + range.count,
                range.count
            ),
            None => String::from("disk"),
        }
    }

    /// Forgets the range (its blocks keep their contents).
    fn destroy_object(&mut self, object: u32) -> Result<(), Status> {
        self.objects.remove(&object).map(|_| ()).ok_or(Status::CapBad)
    }
}

/// The operations only record what the device is to do; the reply
/// (a read's data) comes from [`DiskService::poll`].
impl disk::Server for Ranges {
    fn geometry(&mut self, call: &Call<'_>) -> Result<DiskGeometry, Status> {
        let range = self.range(call)?;
        Ok(DiskGeometry { block_size: BLOCK_SIZE as u32, block_count: range.count })
    }

    fn read(&mut self, call: &Call<'_>, first: u64, count: u32) -> Result<Vec<u8>, Status> {
        let first = self.locate(call, first, count.into())?;
        self.accepted = Some(Accepted::Read { first, count });
        Ok(Vec::new())
    }

    fn write(&mut self, call: &Call<'_>, first: u64, data: &[u8]) -> Result<(), Status> {
        if !data.len().is_multiple_of(BLOCK_SIZE) {
            return Err(Status::ArgBad);
        }
        let first = self.locate(call, first, (data.len() / BLOCK_SIZE) as u64)?;
        self.accepted = Some(Accepted::Write { first });
        Ok(())
    }

    fn flush(&mut self, call: &Call<'_>) -> Result<(), Status> {
        self.range(call)?;
        self.accepted = Some(Accepted::Flush);
        Ok(())
    }
}

/// The process server hands out disk capabilities through this.
impl crate::process::server::DiskRanges for DiskService {
    fn open(&mut self, first: u64, count: u64) -> Result<Capability, Status> {
        DiskService::open(self, first, count)
    }
}
