//! What the nucleus learns from the device tree QEMU hands it: memory,
//! bootargs (board id, role, test mode), initrd location, virtio-mmio slots.

use crate::board;
use core::ops::Range;

/// One virtio-mmio transport slot.
#[derive(Clone, Copy, Debug)]
pub struct VirtioSlot {
    pub base: usize,
    pub size: usize,
    pub intid: u32,
}

pub const MAX_VIRTIO_SLOTS: usize = 32;
const MAX_BOOTARGS: usize = 256;

pub struct BootInfo {
    pub memory: Range<usize>,
    pub dtb: Range<usize>,
    pub initrd: Option<Range<usize>>,
    pub virtio: [Option<VirtioSlot>; MAX_VIRTIO_SLOTS],
    bootargs: [u8; MAX_BOOTARGS],
    bootargs_len: usize,
}

#[derive(Debug)]
pub enum DeviceTreeError {
    Unreadable,
    NoMemory,
}

impl BootInfo {
    /// Reads the flattened device tree at physical address `dtb_phys`.
    pub fn parse(dtb_phys: usize) -> Result<Self, DeviceTreeError> {
        if !board::RAM_MAPPED.contains(&dtb_phys) {
            return Err(DeviceTreeError::Unreadable);
        }
        // SAFETY: QEMU placed a device tree blob at this address in RAM, which
        // the boot translation table maps at `phys_to_virt`; `from_ptr` checks
        // the header magic and reads within the size the header gives.
        let fdt = unsafe { fdt::Fdt::from_ptr(board::phys_to_virt(dtb_phys) as *const u8) }
            .map_err(|_| DeviceTreeError::Unreadable)?;

        let region = fdt.memory().regions().next().ok_or(DeviceTreeError::NoMemory)?;
        let memory_start = region.starting_address as usize;
        let memory = memory_start..memory_start + region.size.ok_or(DeviceTreeError::NoMemory)?;

        let chosen = fdt.find_node("/chosen");
        let property = |name| chosen.and_then(|node| node.property(name)).and_then(|p| p.as_usize());
        let initrd = match (property("linux,initrd-start"), property("linux,initrd-end")) {
            (Some(start), Some(end)) if end > start => Some(start..end),
            _ => None,
        };

        let mut bootargs = [0u8; MAX_BOOTARGS];
        let text = fdt.chosen().bootargs().unwrap_or("");
        let bootargs_len = text.len().min(MAX_BOOTARGS);
        bootargs[..bootargs_len].copy_from_slice(&text.as_bytes()[..bootargs_len]);

        let mut virtio = [None; MAX_VIRTIO_SLOTS];
        let slots = fdt
            .all_nodes()
            .filter(|node| node.compatible().is_some_and(|c| c.all().any(|name| name == "virtio,mmio")));
        for (slot, node) in virtio.iter_mut().zip(slots) {
            let Some(reg) = node.reg().and_then(|mut regs| regs.next()) else {
                continue;
            };
            let Some(intid) = node.property("interrupts").and_then(|p| gic_spi_intid(p.value)) else {
                continue;
            };
            *slot = Some(VirtioSlot {
                base: reg.starting_address as usize,
                size: reg.size.unwrap_or(0x200),
                intid,
            });
        }

        Ok(Self {
            memory,
            dtb: dtb_phys..dtb_phys + fdt.total_size(),
            initrd,
            virtio,
            bootargs,
            bootargs_len,
        })
    }

    pub fn bootargs(&self) -> &str {
        core::str::from_utf8(&self.bootargs[..self.bootargs_len]).unwrap_or("")
    }

    /// The value of `key=value` in the bootargs.
    pub fn bootarg(&self, key: &str) -> Option<&str> {
        self.bootargs().split_ascii_whitespace().find_map(|word| {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            (k == key).then_some(v)
        })
    }
}

/// GIC interrupt specifier <type number flags>: type 0 = SPI (INTID 32 + n),
/// 1 = PPI (INTID 16 + n).
fn gic_spi_intid(cells: &[u8]) -> Option<u32> {
    if cells.len() < 12 {
        return None;
    }
    let cell =
        |i: usize| u32::from_be_bytes([cells[i * 4], cells[i * 4 + 1], cells[i * 4 + 2], cells[i * 4 + 3]]);
    match cell(0) {
        0 => Some(32 + cell(1)),
        1 => Some(16 + cell(1)),
        _ => None,
    }
}
