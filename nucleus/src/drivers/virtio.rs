//! virtio over virtio-mmio through the `virtio-drivers` crate: the DMA glue
//! (`KernelHal`) and probing of the transport slots the device tree lists.

use crate::board;
use crate::devicetree::VirtioSlot;
use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::ptr::NonNull;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE, PhysAddr};

/// DMA memory comes from the kernel heap, which lies in the linearly mapped
/// RAM, so physical = virtual - KERNEL_OFFSET and no bounce buffers are needed.
pub struct KernelHal;

fn dma_layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("page layout is valid")
}

// SAFETY: `dma_alloc` returns zeroed, page-aligned, exclusively owned heap
// memory whose physical address is its linear-map address; `share` hands out
// the physical address of memory the driver already owns.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(dma_layout(pages)) };
        let ptr = NonNull::new(ptr).expect("kernel heap exhausted allocating DMA pages");
        (board::virt_to_phys(ptr.as_ptr() as usize) as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: `vaddr` came from `dma_alloc` with the same page count.
        unsafe { dealloc(vaddr.as_ptr(), dma_layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(board::phys_to_virt(paddr as usize) as *mut u8).expect("MMIO address is not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        board::virt_to_phys(buffer.as_ptr() as *mut u8 as usize) as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Opens the transport of the first slot holding a device of `kind`.
pub fn find_device(
    slots: &[Option<VirtioSlot>],
    kind: DeviceType,
) -> Option<(MmioTransport<'static>, VirtioSlot)> {
    for slot in slots.iter().flatten() {
        // Look at the device id before opening a transport: dropping a
        // transport resets its device, which must not happen to a device
        // another driver already runs.
        if slot_device_id(slot) != Some(kind as u32) {
            continue;
        }
        let Some(header) = NonNull::new(board::phys_to_virt(slot.base) as *mut VirtIOHeader) else {
            continue;
        };
        // SAFETY: the device tree lists this as a virtio-mmio register block;
        // it lies in the device region of the boot mapping and each slot is
        // opened at most once for the device kind it holds.
        let Ok(transport) = (unsafe { MmioTransport::new(header, slot.size) }) else {
            continue; // empty slot (device id 0) or bad magic
        };
        if transport.device_type() == kind {
            return Some((transport, *slot));
        }
    }
    None
}

/// The device id register of a virtio-mmio slot (0: empty), if the slot
/// holds a virtio-mmio header at all.
fn slot_device_id(slot: &VirtioSlot) -> Option<u32> {
    const MAGIC: u32 = 0x7472_6976; // "virt"
    let base = board::phys_to_virt(slot.base) as *const u32;
    // SAFETY: the device tree lists this as a virtio-mmio register block in
    // the device region of the boot mapping; reading the magic (offset 0)
    // and device id (offset 8) registers has no side effects.
    let (magic, id) = unsafe { (base.read_volatile(), base.add(2).read_volatile()) };
    (magic == MAGIC).then_some(id)
}
