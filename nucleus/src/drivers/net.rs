//! The board's one virtio-net device, interrupt driven. A leaf: the IRQ
//! side only acknowledges the device, recycles sent buffers and says
//! whether frames came in; the network thread drains the receive queue and
//! hands each frame to the protocol that owns its ethertype.
//!
//! Sending does not wait for the device. A frame goes into the transmit
//! queue and the sender goes on; the buffer comes back once QEMU has taken
//! the frame (the next send or the device's interrupt recycles it). Waiting
//! instead — spinning until QEMU's I/O thread has run — took the CPU from
//! that very thread on a busy host: under load one send in five spun more
//! than 0.5 ms, some 30 ms, and that was the tail of board-to-board RPC.
//! Frames that find the queue full wait in a bounded backlog, which the
//! device's interrupt feeds into the queue as slots free up.

use crate::arch::pmu::instructions;
use crate::devicetree::BootInfo;
use crate::drivers::{gic, virtio};
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use alloc::collections::VecDeque;

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use pool_control::Mac;
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::mmio::MmioTransport;

const QUEUE_SIZE: usize = 32;
const RX_BUFFER_LEN: usize = 2048;
/// Most bytes of frames waiting for a free transmit slot (a 1 MiB RPC
/// reply is about 1.1 MiB of frames, and it goes out at once).
const BACKLOG_BYTES: usize = 4 << 20;

type RawDevice = VirtIONetRaw<virtio::KernelHal, MmioTransport<'static>, QUEUE_SIZE>;

/// A buffer the device holds (or may hold): a virtio-net header, then the
/// frame. Boxed, so it does not move while the device has its address.
type Buffer = Box<[u8]>;

/// A frame to send: its buffer (reused, so maybe longer) and how much of it
/// is the header and frame.
struct OutFrame {
    buffer: Buffer,
    len: usize,
}

impl OutFrame {
    fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

/// Length of a reusable transmit buffer: any frame up to the MTU and its header.
const TX_BUFFER_LEN: usize = RX_BUFFER_LEN;

struct NetDevice {
    raw: RawDevice,
    /// Receive buffers the device holds, by token.
    receiving: [Option<Buffer>; QUEUE_SIZE],
    /// Frames the device has not finished sending, by token.
    sending: [Option<OutFrame>; QUEUE_SIZE],
    /// Frames (with their header) waiting for a free transmit slot, oldest first.
    backlog: VecDeque<OutFrame>,
    /// Transmit buffers of `TX_BUFFER_LEN` whose frames have gone, for the
    /// next frames: no allocation per frame sent (at most `QUEUE_SIZE` kept).
    spare: alloc::vec::Vec<Buffer>,
    backlog_bytes: usize,
    /// Length of the virtio-net header before each frame.
    header_len: usize,
}

static DEVICE: IrqMutex<Option<NetDevice>> = IrqMutex::new(None);
static DEVICE_INTID: AtomicU32 = AtomicU32::new(u32::MAX);
static RX_PENDING: AtomicBool = AtomicBool::new(true);

/// The driver's own work, counted for `pool_control::BoardCounters`: frames
/// and the instructions (PMU, see `arch::pmu`) spent on them, per direction,
/// and the device interrupts with their handler's instructions.
static RX_FRAMES: AtomicU32 = AtomicU32::new(0);
static RX_INSTRUCTIONS: AtomicU32 = AtomicU32::new(0);
static TX_FRAMES: AtomicU32 = AtomicU32::new(0);
static TX_INSTRUCTIONS: AtomicU32 = AtomicU32::new(0);
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static INTERRUPT_INSTRUCTIONS: AtomicU32 = AtomicU32::new(0);
/// Instructions the last send spent reclaiming earlier frames' buffers.
static TX_RECLAIM_INSTRUCTIONS: AtomicU32 = AtomicU32::new(0);

/// Adds the instructions retired since `start` to `counter`.
fn count_since(counter: &AtomicU32, start: u32) {
    let spent = instructions().wrapping_sub(start);
    counter.fetch_add(spent, Ordering::Relaxed);
}

/// What the driver has counted: (rx frames, rx instructions, tx frames, tx
/// instructions, interrupts, interrupt instructions), each wrapping.
pub fn counters() -> [u32; 6] {
    [&RX_FRAMES, &RX_INSTRUCTIONS, &TX_FRAMES, &TX_INSTRUCTIONS, &INTERRUPTS, &INTERRUPT_INSTRUCTIONS]
        .map(|counter| counter.load(Ordering::Relaxed))
}

pub enum NetError {
    NoDevice,
    Driver(virtio_drivers::Error),
    /// The transmit queue and its backlog are full: the frame was dropped.
    Congested,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoDevice => write!(f, "no virtio-net device"),
            NetError::Driver(error) => write!(f, "virtio-net driver error: {error}"),
            NetError::Congested => write!(f, "transmit backlog full, frame dropped"),
        }
    }
}

impl NetDevice {
    fn new(raw: RawDevice) -> Result<Self, NetError> {
        let mut probe = [0u8; 64];
        let header_len = raw.fill_buffer_header(&mut probe).map_err(NetError::Driver)?;
        let mut device = Self {
            raw,
            receiving: [const { None }; QUEUE_SIZE],
            sending: [const { None }; QUEUE_SIZE],
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            spare: alloc::vec::Vec::with_capacity(QUEUE_SIZE),
            header_len,
        };
        for _ in 0..QUEUE_SIZE {
            device.spare.push(alloc::vec![0u8; TX_BUFFER_LEN].into_boxed_slice());
        }
        for _ in 0..QUEUE_SIZE {
            device.give_receive_buffer(alloc::vec![0u8; RX_BUFFER_LEN].into_boxed_slice())?;
        }
        Ok(device)
    }

    /// Hands `buffer` to the device for a frame to come in.
    fn give_receive_buffer(&mut self, mut buffer: Buffer) -> Result<(), NetError> {
        // SAFETY: the buffer is boxed and kept in `receiving` under its token
        // until the device gives the token back (`take_received`); nothing
        // reads or writes it meanwhile.
        let token = unsafe { self.raw.receive_begin(&mut buffer) }.map_err(NetError::Driver)?;
        self.receiving[token as usize] = Some(buffer);
        Ok(())
    }

    /// The next frame that came in: its buffer and where the frame lies in it.
    fn take_received(&mut self) -> Option<(Buffer, core::ops::Range<usize>)> {
        loop {
            let token = self.raw.poll_receive()?;
            let mut buffer = self.receiving[token as usize].take()?;
            // SAFETY: `buffer` is the one handed over with this token.
            match unsafe { self.raw.receive_complete(token, &mut buffer) } {
                Ok((header_len, frame_len)) => return Some((buffer, header_len..header_len + frame_len)),
                Err(error) => {
                    crate::println!("nucleus: virtio-net receive failed: {error:?}");
                    let _ = self.give_receive_buffer(buffer);
                }
            }
        }
    }

    /// Takes back the buffers of frames the device has sent, and moves
    /// waiting frames into the slots that freed.
    fn reclaim_sent(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some(frame) = self.sending[token as usize].take() else { break };
            // SAFETY: `frame` is the one handed over with this token.
            if let Err(error) = unsafe { self.raw.transmit_complete(token, frame.bytes()) } {
                crate::println!("nucleus: virtio-net transmit completion failed: {error:?}");
            }
            // Kept within the capacity reserved at start: never a reallocation.
            if frame.buffer.len() == TX_BUFFER_LEN && self.spare.len() < self.spare.capacity() {
                self.spare.push(frame.buffer);
            }
        }
        while self.raw.can_send() {
            let Some(frame) = self.backlog.pop_front() else { break };
            self.backlog_bytes -= frame.len;
            if let Err(error) = self.start_sending(frame) {
                crate::println!("nucleus: virtio-net send failed: {error}");
            }
        }
    }

    fn start_sending(&mut self, frame: OutFrame) -> Result<(), NetError> {
        // SAFETY: the buffer is boxed and kept in `sending` under its token
        // until the device gives the token back (`reclaim_sent`).
        let token = unsafe { self.raw.transmit_begin(frame.bytes()) }.map_err(NetError::Driver)?;
        self.sending[token as usize] = Some(frame);
        Ok(())
    }

    /// A buffer for `len` bytes: a spare one if it fits, else a new one
    /// (`None` without heap).
    fn buffer_for(&mut self, len: usize) -> Option<Buffer> {
        if len <= TX_BUFFER_LEN
            && let Some(buffer) = self.spare.pop()
        {
            return Some(buffer);
        }
        let mut bytes = alloc::vec::Vec::new();
        let size = if len <= TX_BUFFER_LEN { TX_BUFFER_LEN } else { len };
        bytes.try_reserve_exact(size).ok()?;
        bytes.resize(size, 0u8);
        Some(bytes.into_boxed_slice())
    }

    /// Queues one frame for sending, behind any that wait.
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        // Counted apart from the frame's own sending: how much there is to
        // reclaim follows the host's timing, not this frame.
        let start = instructions();
        self.reclaim_sent();
        TX_RECLAIM_INSTRUCTIONS.store(instructions().wrapping_sub(start), Ordering::Relaxed);
        // A frame that finds no heap is dropped, like one the wire loses.
        let len = self.header_len + frame.len();
        let mut buffer = self.buffer_for(len).ok_or(NetError::Congested)?;
        self.raw.fill_buffer_header(&mut buffer[..len]).map_err(NetError::Driver)?;
        buffer[self.header_len..len].copy_from_slice(frame);
        let out = OutFrame { buffer, len };
        if self.backlog.is_empty() && self.raw.can_send() {
            return self.start_sending(out);
        }
        if self.backlog_bytes + len > BACKLOG_BYTES {
            return Err(NetError::Congested);
        }
        // The backlog's own growth must not abort the board either.
        self.backlog.try_reserve(1).map_err(|_| NetError::Congested)?;
        self.backlog_bytes += len;
        self.backlog.push_back(out);
        Ok(())
    }
}

/// Finds the virtio-net device, fills its receive queue and enables its interrupt.
pub fn init(info: &BootInfo) -> Result<Mac, NetError> {
    let (transport, slot) =
        virtio::find_device(&info.virtio, DeviceType::Network).ok_or(NetError::NoDevice)?;
    let mut raw = RawDevice::new(transport).map_err(NetError::Driver)?;
    raw.enable_interrupts();
    let mac = Mac(raw.mac_address());
    *DEVICE.lock() = Some(NetDevice::new(raw)?);
    DEVICE_INTID.store(slot.intid, Ordering::Relaxed);
    gic::enable(slot.intid, arm_gic::Trigger::Level);
    Ok(mac)
}

/// What the device's interrupt reported.
pub enum Interrupt {
    /// Not this device's line.
    NotOurs,
    /// Acknowledged; whether frames wait for the network thread.
    Handled { frames_in: bool },
}

/// IRQ side: acknowledges the device, recycles what it has sent, feeds it
/// waiting frames, and says whether received frames wait.
pub fn handle_interrupt(intid: u32) -> Interrupt {
    if intid != DEVICE_INTID.load(Ordering::Relaxed) {
        return Interrupt::NotOurs;
    }
    let start = instructions();
    let frames_in = match DEVICE.lock().as_mut() {
        Some(device) => {
            device.raw.ack_interrupt();
            device.reclaim_sent();
            device.raw.poll_receive().is_some()
        }
        None => false,
    };
    if frames_in {
        RX_PENDING.store(true, Ordering::Release);
    }
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    count_since(&INTERRUPT_INSTRUCTIONS, start);
    Interrupt::Handled { frames_in }
}

/// Whether the network thread has frames to process.
pub fn work_pending() -> bool {
    RX_PENDING.load(Ordering::Acquire)
}

/// Queues one whole Ethernet frame for sending and returns at once.
pub fn send(frame: &[u8]) -> Result<(), NetError> {
    let start = instructions();
    TX_RECLAIM_INSTRUCTIONS.store(0, Ordering::Relaxed);
    let sent = DEVICE.lock().as_mut().ok_or(NetError::NoDevice)?.send(frame);
    TX_FRAMES.fetch_add(1, Ordering::Relaxed);
    count_since(&TX_INSTRUCTIONS, start.wrapping_add(TX_RECLAIM_INSTRUCTIONS.load(Ordering::Relaxed)));
    sent
}

/// Frames dropped on the way out (the backlog full, no heap): like frames
/// the wire loses, the protocols resend them.
static DROPPED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// [`send`] for a protocol that recovers lost frames itself: a frame that
/// cannot go is counted, and said on the console only at the 1st, 2nd, 4th,
/// 8th... drop (printing each would slow the board down when it is busiest).
pub fn send_or_count(frame: &[u8], protocol: &str) {
    if let Err(error) = send(frame) {
        let dropped = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            crate::println!("nucleus: {protocol} frames dropped on the way out: {dropped} so far ({error})");
        }
    }
}

/// Drains the receive queue, handing every frame to `handle`.
pub fn poll(mut handle: impl FnMut(&[u8])) {
    RX_PENDING.store(false, Ordering::Release);
    loop {
        // Take one frame out under the lock, handle it without the lock (the
        // handler may send).
        let start = instructions();
        let received = DEVICE.lock().as_mut().and_then(NetDevice::take_received);
        let Some((buffer, frame)) = received else { return };
        count_since(&RX_INSTRUCTIONS, start);
        handle(&buffer[frame]);
        let start = instructions();
        if let Some(device) = DEVICE.lock().as_mut()
            && let Err(error) = device.give_receive_buffer(buffer)
        {
            crate::println!("nucleus: virtio-net lost a receive buffer: {error}");
        }
        RX_FRAMES.fetch_add(1, Ordering::Relaxed);
        count_since(&RX_INSTRUCTIONS, start);
    }
}
