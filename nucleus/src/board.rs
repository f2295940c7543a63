//! The QEMU `virt` board: fixed addresses of the devices the nucleus uses
//! before (or instead of) reading them from the device tree, and the mapping
//! between physical addresses and the kernel's high-half virtual addresses.

/// Kernel virtual address = physical address + `KERNEL_OFFSET` (see `link.ld`).
pub const KERNEL_OFFSET: usize = 0xFFFF_0000_0000_0000;

/// PL011 UART.
pub const UART_BASE: usize = 0x0900_0000;
/// GICv2 distributor and CPU interface.
pub const GICD_BASE: usize = 0x0800_0000;
pub const GICC_BASE: usize = 0x0801_0000;
/// EL1 physical timer interrupt (PPI 14).
pub const TIMER_INTID: u32 = 30;
/// Physical RAM the boot translation table maps (1 GiB from 0x4000_0000).
pub const RAM_MAPPED: core::ops::Range<usize> = 0x4000_0000..0x8000_0000;

/// The kernel virtual address of a physical address in the mapped range.
pub const fn phys_to_virt(phys: usize) -> usize {
    phys + KERNEL_OFFSET
}

/// The physical address of a kernel virtual address.
pub const fn virt_to_phys(virt: usize) -> usize {
    virt - KERNEL_OFFSET
}

// SAFETY: `link.ld` defines both symbols; only their addresses are taken.
unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Physical range occupied by the nucleus image, its bss and boot stack.
pub fn kernel_image() -> core::ops::Range<usize> {
    let start = core::ptr::addr_of!(__kernel_start) as usize;
    let end = core::ptr::addr_of!(__kernel_end) as usize;
    virt_to_phys(start)..virt_to_phys(end)
}
