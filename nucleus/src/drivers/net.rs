//! The board's one virtio-net device, interrupt driven. A leaf: the IRQ
//! side only acknowledges the device and says there is work; the network
//! thread drains the receive queue and hands each frame to the protocol
//! that owns its ethertype.

use crate::devicetree::BootInfo;
use crate::drivers::{gic, virtio};
use crate::sync::IrqMutex;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use pool_control::Mac;
use virtio_drivers::device::net::VirtIONet;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::mmio::MmioTransport;

const QUEUE_SIZE: usize = 32;
const RX_BUFFER_LEN: usize = 2048;

type NetDevice = VirtIONet<virtio::KernelHal, MmioTransport<'static>, QUEUE_SIZE>;

static DEVICE: IrqMutex<Option<NetDevice>> = IrqMutex::new(None);
static DEVICE_INTID: AtomicU32 = AtomicU32::new(u32::MAX);
static RX_PENDING: AtomicBool = AtomicBool::new(true);

pub enum NetError {
    NoDevice,
    Driver(virtio_drivers::Error),
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetError::NoDevice => write!(f, "no virtio-net device"),
            NetError::Driver(error) => write!(f, "virtio-net driver error: {error}"),
        }
    }
}

/// Finds the virtio-net device, fills its receive queue and enables its interrupt.
pub fn init(info: &BootInfo) -> Result<Mac, NetError> {
    let (transport, slot) =
        virtio::find_device(&info.virtio, DeviceType::Network).ok_or(NetError::NoDevice)?;
    let mut device = NetDevice::new(transport, RX_BUFFER_LEN).map_err(NetError::Driver)?;
    device.enable_interrupts();
    let mac = Mac(device.mac_address());
    *DEVICE.lock() = Some(device);
    DEVICE_INTID.store(slot.intid, Ordering::Relaxed);
    gic::enable(slot.intid, arm_gic::Trigger::Level);
    Ok(mac)
}

/// IRQ side: returns whether `intid` was ours (then frames or transmit
/// completions wait for the network thread).
pub fn handle_interrupt(intid: u32) -> bool {
    if intid != DEVICE_INTID.load(Ordering::Relaxed) {
        return false;
    }
    if let Some(device) = DEVICE.lock().as_mut() {
        device.ack_interrupt();
    }
    RX_PENDING.store(true, Ordering::Release);
    true
}

/// Whether the idle loop has frames to process.
pub fn work_pending() -> bool {
    RX_PENDING.load(Ordering::Acquire)
}

/// Sends one whole Ethernet frame. Frames that do not fit are dropped.
pub fn send(frame: &[u8]) -> Result<(), NetError> {
    let mut guard = DEVICE.lock();
    let device = guard.as_mut().ok_or(NetError::NoDevice)?;
    let mut buffer = device.new_tx_buffer(frame.len());
    buffer.packet_mut().copy_from_slice(frame);
    device.send(buffer).map_err(NetError::Driver)
}

/// Drains the receive queue, handing every frame to `handle`.
pub fn poll(mut handle: impl FnMut(&[u8])) {
    RX_PENDING.store(false, Ordering::Release);
    loop {
        // Take one frame out under the lock, handle it without the lock (the
        // handler may send).
        let received = {
            let mut guard = DEVICE.lock();
            let Some(device) = guard.as_mut() else { return };
            match device.receive() {
                Ok(buffer) => Some(buffer),
                Err(virtio_drivers::Error::NotReady) => None,
                Err(error) => {
                    crate::println!("nucleus: virtio-net receive failed: {error:?}");
                    None
                }
            }
        };
        let Some(buffer) = received else { return };
        handle(buffer.packet());
        let mut guard = DEVICE.lock();
        if let Some(device) = guard.as_mut()
            && let Err(error) = device.recycle_rx_buffer(buffer)
        {
            crate::println!("nucleus: virtio-net lost a receive buffer: {error:?}");
        }
    }
}
