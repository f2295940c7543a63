//! Device drivers for the QEMU `virt` board.

pub mod block;
pub mod entropy;
pub mod gic;
pub mod net;
pub mod pl011;
pub mod timer;
pub mod virtio;
