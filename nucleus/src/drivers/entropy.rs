//! Entropy for the capability generator: the board's virtio-rng device
//! (QEMU feeds it from the host's random source), mixed with the counter.

use crate::devicetree::BootInfo;
use crate::drivers::virtio;
use virtio_drivers::device::rng::VirtIORng;
use virtio_drivers::transport::DeviceType;

/// 32 bytes from the virtio-rng device, or `None` if the board has none.
pub fn from_device(info: &BootInfo) -> Option<[u8; 32]> {
    let (transport, _) = virtio::find_device(&info.virtio, DeviceType::EntropySource)?;
    let mut rng = VirtIORng::<virtio::KernelHal, _>::new(transport).ok()?;
    let mut seed = [0u8; 32];
    let mut filled = 0;
    // The device may hand out fewer bytes than asked for; a few rounds suffice.
    for _ in 0..16 {
        if filled == seed.len() {
            break;
        }
        filled += rng.request_entropy(&mut seed[filled..]).ok()?;
    }
    (filled == seed.len()).then_some(seed)
}
