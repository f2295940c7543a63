//! The board's virtio-blk disk, interrupt driven. A leaf: callers submit
//! requests tagged with a number of their own; the IRQ side only
//! acknowledges the device and says it has finished something (the entry
//! point then wakes the network thread); the service layer then takes the
//! finished requests ([`take_completion`]) in thread context, where the
//! ring is popped and the chunks waiting for room go in. Nothing on the IRQ
//! side touches the heap, whose lock interrupted code may hold. The driver
//! wakes nobody.
//!
//! Built on `virtio-drivers`' queue and transport rather than its
//! `VirtIOBlk`: that one flushes only synchronously (it spins on the used
//! ring until the host's fsync ends, with the board frozen), while here
//! reads, writes and flushes all complete by interrupt. A request larger
//! than one device request takes is split into chunks that go into the
//! ring together as far as it has room; the rest follow as chunks finish.
//! A device error becomes the request's error; a device that breaks the
//! ring's rules is reset and fails every request, never the kernel.

use crate::devicetree::BootInfo;
use crate::drivers::{gic, virtio};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, Ordering};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

/// virtio-blk addresses the disk in sectors of 512 bytes.
pub const SECTOR_SIZE: usize = 512;
/// Descriptors in the request ring (each request takes 2 or 3).
const QUEUE_SIZE: usize = 16;
/// The most one device request moves (a device may ask for less).
const MAX_CHUNK: usize = 128 * 1024;
/// The most one [`Request`] moves.
pub const MAX_REQUEST: usize = 1 << 20;
/// The one request queue of a virtio-blk device.
const REQUEST_QUEUE: u16 = 0;
/// A status byte the device never writes: a chunk still showing it was not
/// answered.
const STATUS_UNANSWERED: u8 = 0xFF;
const STATUS_OK: u8 = 0;

/// Request header types (virtio 1.1, 5.2.6).
const TYPE_IN: u32 = 0;
const TYPE_OUT: u32 = 1;
const TYPE_FLUSH: u32 = 4;

/// Config space offsets (virtio 1.1, 5.2.4).
const CONFIG_CAPACITY: usize = 0;
const CONFIG_SIZE_MAX: usize = 8;

bitflags::bitflags! {
    /// The virtio-blk features this driver negotiates.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        /// `size_max` in the config space bounds one buffer.
        const SIZE_MAX = 1 << 1;
        /// The device is read-only.
        const RO = 1 << 5;
        /// The device has a write cache and takes flush requests.
        const FLUSH = 1 << 9;
        /// A modern (non-legacy) device; must be accepted when offered.
        const VERSION_1 = 1 << 32;
    }
}

type Queue = VirtQueue<virtio::KernelHal, QUEUE_SIZE>;

/// What the disk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Sectors of [`SECTOR_SIZE`] bytes.
    pub sectors: u64,
    pub read_only: bool,
    /// Whether the device caches writes (then a flush makes them stable;
    /// without a cache every completed write is).
    pub write_cache: bool,
}

/// A request to the disk.
#[derive(Debug)]
pub enum Request {
    /// `len` bytes (a multiple of the sector size) from `sector` on.
    Read { sector: u64, len: usize },
    /// `data` (a multiple of the sector size) at `sector`.
    Write { sector: u64, data: Vec<u8> },
    /// Everything written before (completed writes) onto stable storage.
    Flush,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    NoDevice,
    /// Empty, not whole sectors, or past the end of the disk.
    BadRequest,
    /// A write to a read-only disk.
    ReadOnly,
    /// A tag that is already in use.
    TagInUse,
    /// The device answered with this status (1: I/O error, 2: unsupported).
    Device(u8),
    /// The device broke the ring's rules and was reset; it takes no more requests.
    Broken,
    /// The device could not be set up.
    Setup(virtio_drivers::Error),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::NoDevice => write!(f, "no virtio-blk device"),
            BlockError::BadRequest => write!(f, "bad request"),
            BlockError::ReadOnly => write!(f, "the disk is read-only"),
            BlockError::TagInUse => write!(f, "tag in use"),
            BlockError::Device(status) => write!(f, "device status {status}"),
            BlockError::Broken => write!(f, "the device misbehaved and was reset"),
            BlockError::Setup(error) => write!(f, "setting up the device failed: {error}"),
        }
    }
}

/// A finished request: for a read the data, for a write its buffer back.
pub struct Completion {
    pub tag: u64,
    pub result: Result<Vec<u8>, BlockError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    In,
    Out,
    Flush,
}

/// One device request: part of a [`Request`].
#[derive(Clone, Debug)]
struct Chunk {
    tag: u64,
    direction: Direction,
    sector: u64,
    /// The bytes of the request's buffer it moves (empty for a flush).
    bytes: Range<usize>,
}

/// A chunk in the ring, with the header and status byte the device reads
/// and writes (boxed: they must not move until the device is done).
struct InFlight {
    chunk: Chunk,
    header: Box<[u8; 16]>,
    status: Box<[u8; 1]>,
}

/// A request whose chunks are not all finished.
struct Pending {
    buffer: Vec<u8>,
    /// Chunks in the ring or in the backlog.
    chunks_left: usize,
    error: Option<BlockError>,
}

struct Disk {
    transport: MmioTransport<'static>,
    queue: Queue,
    geometry: Geometry,
    chunk_max: usize,
    pending: BTreeMap<u64, Pending>,
    /// Chunks waiting for room in the ring, in order.
    backlog: VecDeque<Chunk>,
    /// Chunks in the ring, by the token `VirtQueue::add` gave.
    in_flight: BTreeMap<u16, InFlight>,
    completions: VecDeque<Completion>,
    broken: bool,
}

static DISK: IrqMutex<Option<Disk>> = IrqMutex::new(None);
static DISK_INTID: AtomicU32 = AtomicU32::new(u32::MAX);

/// Finds the virtio-blk device, sets up its request ring and enables its
/// interrupt.
pub fn init(info: &BootInfo) -> Result<Geometry, BlockError> {
    let (mut transport, slot) =
        virtio::find_device(&info.virtio, DeviceType::Block).ok_or(BlockError::NoDevice)?;
    let features = transport.begin_init(Features::all());
    let sectors = transport
        .read_consistent(|| {
            let low: u32 = transport.read_config_space(CONFIG_CAPACITY)?;
            let high: u32 = transport.read_config_space(CONFIG_CAPACITY + 4)?;
            Ok(u64::from(low) | (u64::from(high) << 32))
        })
        .map_err(BlockError::Setup)?;
    let chunk_max = if features.contains(Features::SIZE_MAX) {
        let size_max: u32 = transport.read_config_space(CONFIG_SIZE_MAX).map_err(BlockError::Setup)?;
        chunk_limit(size_max as usize)
    } else {
        MAX_CHUNK
    };
    let queue = Queue::new(&mut transport, REQUEST_QUEUE, false, false).map_err(BlockError::Setup)?;
    transport.finish_init();
    let geometry = Geometry {
        sectors,
        read_only: features.contains(Features::RO),
        write_cache: features.contains(Features::FLUSH),
    };
    let mut disk = Disk {
        transport,
        queue,
        geometry,
        chunk_max,
        pending: BTreeMap::new(),
        backlog: VecDeque::new(),
        in_flight: BTreeMap::new(),
        completions: VecDeque::new(),
        broken: false,
    };
    disk.queue.set_dev_notify(true);
    *DISK.lock() = Some(disk);
    DISK_INTID.store(slot.intid, Ordering::Relaxed);
    gic::enable(slot.intid, arm_gic::Trigger::Level);
    Ok(geometry)
}

/// The largest chunk within the device's `size_max` (whole sectors, at least one).
fn chunk_limit(size_max: usize) -> usize {
    (size_max.min(MAX_CHUNK) / SECTOR_SIZE * SECTOR_SIZE).max(SECTOR_SIZE)
}

/// Submits `request`; its [`Completion`] (with this `tag`) comes once the
/// device has done all of it.
pub fn submit(tag: u64, request: Request) -> Result<(), BlockError> {
    let (direction, sector, buffer) = match request {
        // Checked before the buffer is made: `len` must not exhaust the heap.
        Request::Read { len, .. } if len > MAX_REQUEST => return Err(BlockError::BadRequest),
        Request::Read { sector, len } => (Direction::In, sector, vec![0u8; len]),
        Request::Write { sector, data } => (Direction::Out, sector, data),
        Request::Flush => (Direction::Flush, 0, Vec::new()),
    };
    let mut guard = DISK.lock();
    let disk = guard.as_mut().ok_or(BlockError::NoDevice)?;
    disk.submit(tag, direction, sector, buffer)
}

/// IRQ side: returns whether `intid` was the disk's (then finished
/// requests wait for [`take_completion`]).
pub fn handle_interrupt(intid: u32) -> bool {
    if intid != DISK_INTID.load(Ordering::Relaxed) {
        return false;
    }
    if let Some(disk) = DISK.lock().as_mut() {
        disk.transport.ack_interrupt();
    }
    true
}

/// The next finished request, oldest first. Pops what the device has
/// finished and gives it the chunks that wait for room.
pub fn take_completion() -> Option<Completion> {
    let mut guard = DISK.lock();
    let disk = guard.as_mut()?;
    disk.reap();
    disk.start_backlog();
    disk.completions.pop_front()
}

/// The part of its request's buffer a chunk moves (`None` if the request
/// is gone, which would be a driver bug).
fn chunk_data<'a>(pending: &'a mut BTreeMap<u64, Pending>, chunk: &Chunk) -> Option<&'a mut [u8]> {
    pending.get_mut(&chunk.tag)?.buffer.get_mut(chunk.bytes.clone())
}

/// Encodes a request header: type, reserved, sector (little-endian).
fn header(direction: Direction, sector: u64) -> Box<[u8; 16]> {
    let kind = match direction {
        Direction::In => TYPE_IN,
        Direction::Out => TYPE_OUT,
        Direction::Flush => TYPE_FLUSH,
    };
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[8..].copy_from_slice(&sector.to_le_bytes());
    Box::new(bytes)
}

impl Disk {
    fn submit(
        &mut self,
        tag: u64,
        direction: Direction,
        sector: u64,
        buffer: Vec<u8>,
    ) -> Result<(), BlockError> {
        if self.broken {
            return Err(BlockError::Broken);
        }
        if self.pending.contains_key(&tag) {
            return Err(BlockError::TagInUse);
        }
        self.check(direction, sector, buffer.len())?;
        if direction == Direction::Flush && !self.geometry.write_cache {
            // Without a write cache every completed write is already stable.
            self.completions.push_back(Completion { tag, result: Ok(buffer) });
            return Ok(());
        }
        let chunks = self.split(tag, direction, sector, buffer.len());
        let chunks_left = chunks.len();
        self.backlog.extend(chunks);
        self.pending.insert(tag, Pending { buffer, chunks_left, error: None });
        self.start_backlog();
        Ok(())
    }

    /// Whether a request of `len` bytes at `sector` may go to the device.
    fn check(&self, direction: Direction, sector: u64, len: usize) -> Result<(), BlockError> {
        if direction == Direction::Flush {
            return Ok(());
        }
        if direction == Direction::Out && self.geometry.read_only {
            return Err(BlockError::ReadOnly);
        }
        let sectors = (len / SECTOR_SIZE) as u64;
        let fits = sector.checked_add(sectors).is_some_and(|end| end <= self.geometry.sectors);
        if len == 0 || len > MAX_REQUEST || !len.is_multiple_of(SECTOR_SIZE) || !fits {
            return Err(BlockError::BadRequest);
        }
        Ok(())
    }

    /// The device requests that make up one request of `len` bytes.
    fn split(&self, tag: u64, direction: Direction, sector: u64, len: usize) -> Vec<Chunk> {
        if direction == Direction::Flush {
            return vec![Chunk { tag, direction, sector: 0, bytes: 0..0 }];
        }
        (0..len)
            .step_by(self.chunk_max)
            .map(|start| Chunk {
                tag,
                direction,
                sector: sector + (start / SECTOR_SIZE) as u64,
                bytes: start..(start + self.chunk_max).min(len),
            })
            .collect()
    }

    /// Puts backlog chunks into the ring while it has room.
    fn start_backlog(&mut self) {
        let mut added = false;
        while let Some(chunk) = self.backlog.pop_front() {
            match self.start(chunk.clone()) {
                Ok(()) => added = true,
                Err(virtio_drivers::Error::QueueFull) => {
                    self.backlog.push_front(chunk);
                    break;
                }
                Err(error) => {
                    crate::println!("nucleus: virtio-blk refused a request: {error}");
                    self.chunk_done(&chunk, Err(BlockError::Broken));
                }
            }
        }
        if added && self.queue.should_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
    }

    /// Adds one chunk to the ring (the caller notifies the device).
    fn start(&mut self, chunk: Chunk) -> Result<(), virtio_drivers::Error> {
        let header = header(chunk.direction, chunk.sector);
        let mut status = Box::new([STATUS_UNANSWERED]);
        let data = chunk_data(&mut self.pending, &chunk).ok_or(virtio_drivers::Error::InvalidParam)?;
        // SAFETY: the header and status boxes move into `in_flight` and the
        // request's buffer stays in `pending` (neither freed, moved in
        // memory, nor touched) until `reap` pops this token with the same
        // buffers; on a broken device `fail_all` resets the device before
        // anything is freed.
        let token = unsafe {
            match chunk.direction {
                Direction::In => self.queue.add(&[&header[..]], &mut [data, &mut status[..]]),
                Direction::Out => self.queue.add(&[&header[..], data], &mut [&mut status[..]]),
                Direction::Flush => self.queue.add(&[&header[..]], &mut [&mut status[..]]),
            }
        }?;
        self.in_flight.insert(token, InFlight { chunk, header, status });
        Ok(())
    }

    /// Pops every chunk the device has finished.
    fn reap(&mut self) {
        if self.broken {
            return; // reset: its ring means nothing any more
        }
        while let Some(token) = self.queue.peek_used() {
            let Some(mut done) = self.in_flight.remove(&token) else {
                crate::println!("nucleus: virtio-blk finished request {token}, which it never had");
                self.fail_all();
                return;
            };
            let chunk = done.chunk.clone();
            let Some(data) = chunk_data(&mut self.pending, &chunk) else {
                crate::println!("nucleus: virtio-blk request {token} lost its buffer");
                self.fail_all();
                return;
            };
            let (header, status) = (&done.header[..], &mut done.status[..]);
            // SAFETY: the same buffers `start` added under this token.
            let popped = unsafe {
                match chunk.direction {
                    Direction::In => self.queue.pop_used(token, &[header], &mut [data, status]),
                    Direction::Out => self.queue.pop_used(token, &[header, data], &mut [status]),
                    Direction::Flush => self.queue.pop_used(token, &[header], &mut [status]),
                }
            };
            if let Err(error) = popped {
                crate::println!("nucleus: virtio-blk used ring is inconsistent: {error}");
                self.fail_all();
                return;
            }
            let result = match done.status[0] {
                STATUS_OK => Ok(()),
                status => Err(BlockError::Device(status)),
            };
            self.chunk_done(&chunk, result);
        }
    }

    /// Counts a finished chunk; the last one of a request completes it.
    fn chunk_done(&mut self, chunk: &Chunk, result: Result<(), BlockError>) {
        let Some(pending) = self.pending.get_mut(&chunk.tag) else {
            return;
        };
        pending.chunks_left -= 1;
        if let Err(error) = result
            && pending.error.is_none()
        {
            pending.error = Some(error);
            // The rest of a failed request need not run.
            let before = self.backlog.len();
            self.backlog.retain(|queued| queued.tag != chunk.tag);
            pending.chunks_left -= before - self.backlog.len();
        }
        if pending.chunks_left == 0 {
            let pending = self.pending.remove(&chunk.tag).expect("looked up above");
            let result = match pending.error {
                None => Ok(pending.buffer),
                Some(error) => Err(error),
            };
            self.completions.push_back(Completion { tag: chunk.tag, result });
        }
    }

    /// The device broke the ring's rules: reset it (so that it touches no
    /// buffer any more), then fail every request.
    fn fail_all(&mut self) {
        self.transport.set_status(DeviceStatus::empty());
        self.broken = true;
        self.in_flight.clear();
        self.backlog.clear();
        for (tag, _) in core::mem::take(&mut self.pending) {
            self.completions.push_back(Completion { tag, result: Err(BlockError::Broken) });
        }
    }
}
