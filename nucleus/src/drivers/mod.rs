//! Device drivers for the QEMU `virt` board.

pub mod gic;
pub mod pl011;
pub mod timer;
pub mod virtio;
