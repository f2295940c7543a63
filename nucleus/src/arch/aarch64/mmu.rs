//! User address spaces: one translation table per process in TTBR0, tagged
//! with an ASID; the kernel stays in TTBR1 (set up by `boot.s`). Segments
//! are contiguous, so a mapping is one run of physical memory: 2 MiB blocks
//! where virtual and physical addresses allow, 4 KiB pages elsewhere.

use crate::board;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, ReadWriteable, Readable, TCR_EL1, TTBR0_EL1, Writeable};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

pub const PAGE_SIZE: usize = 4096;
pub const BLOCK_SIZE: usize = 2 << 20;
/// User virtual addresses are below 2^48 (T0SZ = 16).
pub const USER_TOP: usize = 1 << 48;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_NORMAL: u64 = 1 << 2; // AttrIndx 1: normal write-back memory
const AP_EL0: u64 = 1 << 6; // EL0 may access
const AP_READ_ONLY: u64 = 1 << 7;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const NOT_GLOBAL: u64 = 1 << 11;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFlags {
    pub write: bool,
    pub execute: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Not page aligned, empty, or outside the user half.
    BadRange,
    /// No memory for translation tables.
    NoMemory,
}

/// One translation table: 512 descriptors in a page of its own.
#[repr(C, align(4096))]
struct Table([u64; 512]);

const _: () = assert!(core::mem::size_of::<Table>() == PAGE_SIZE);

/// A zeroed table page from the kernel heap (which is linearly mapped, so
/// its physical address is known); `None` when the heap is full.
fn new_table() -> Option<Box<[Table]>> {
    let mut page = Vec::new();
    page.try_reserve_exact(1).ok()?;
    page.push(Table([0; 512]));
    Some(page.into_boxed_slice())
}

/// The physical address the table walker uses for `table`.
fn table_phys(table: &[Table]) -> usize {
    board::virt_to_phys(table.as_ptr() as usize)
}

fn index(va: usize, level: usize) -> usize {
    (va >> (39 - 9 * level)) & 0x1ff
}

pub struct AddressSpace {
    root: usize,
    asid: u16,
    /// Every table of the space by physical address (the root among them):
    /// the descriptors hold physical addresses, and the walker reads them
    /// there, so the pages never move while the space lives.
    tables: BTreeMap<usize, Box<[Table]>>,
}

impl AddressSpace {
    pub fn new(asid: u16) -> Result<Self, MapError> {
        let root = new_table().ok_or(MapError::NoMemory)?;
        let root_phys = table_phys(&root);
        Ok(Self { root: root_phys, asid, tables: BTreeMap::from([(root_phys, root)]) })
    }

    /// The address-space id that tags its TLB entries.
    pub fn asid(&self) -> u16 {
        self.asid
    }

    /// The TTBR0 value that selects this address space.
    pub fn ttbr0(&self) -> u64 {
        (self.root as u64) | ((self.asid as u64) << 48)
    }

    /// The descriptors of this space's table at `phys`.
    fn entries(&mut self, phys: usize) -> &mut [u64; 512] {
        &mut self.tables.get_mut(&phys).expect("descriptors only point at tables of their own space")[0].0
    }

    /// The table the descriptor at `slot` of `table` points to, made if missing.
    fn next_table(&mut self, table: usize, slot: usize) -> Result<usize, MapError> {
        let entry = self.entries(table)[slot];
        if entry & VALID != 0 {
            return Ok((entry & ADDRESS_MASK) as usize);
        }
        let next = new_table().ok_or(MapError::NoMemory)?;
        let next_phys = table_phys(&next);
        self.tables.insert(next_phys, next);
        self.entries(table)[slot] = next_phys as u64 | TABLE_OR_PAGE | VALID;
        Ok(next_phys)
    }

    /// Maps `len` bytes at `va` to physical `pa`. The caller makes sure the
    /// range does not overlap another mapping of this address space.
    pub fn map(&mut self, va: usize, pa: usize, len: usize, flags: MapFlags) -> Result<(), MapError> {
        let aligned =
            va.is_multiple_of(PAGE_SIZE) && pa.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE);
        if !aligned || len == 0 || va.checked_add(len).is_none_or(|end| end > USER_TOP) {
            return Err(MapError::BadRange);
        }
        let mut attributes = VALID | ATTR_NORMAL | AP_EL0 | INNER_SHAREABLE | ACCESS_FLAG | NOT_GLOBAL | PXN;
        if !flags.write {
            attributes |= AP_READ_ONLY;
        }
        if !flags.execute {
            attributes |= UXN;
        }
        let mut offset = 0;
        while offset < len {
            let (v, p) = (va + offset, pa + offset);
            let l1 = self.next_table(self.root, index(v, 0))?;
            let l2 = self.next_table(l1, index(v, 1))?;
            if v.is_multiple_of(BLOCK_SIZE) && p.is_multiple_of(BLOCK_SIZE) && len - offset >= BLOCK_SIZE {
                self.entries(l2)[index(v, 2)] = p as u64 | attributes;
                offset += BLOCK_SIZE;
            } else {
                let l3 = self.next_table(l2, index(v, 2))?;
                self.entries(l3)[index(v, 3)] = p as u64 | attributes | TABLE_OR_PAGE;
                offset += PAGE_SIZE;
            }
        }
        publish_table_writes();
        Ok(())
    }

    /// Removes the translations of a range mapped earlier with `map`.
    pub fn unmap(&mut self, va: usize, len: usize) {
        let mut offset = 0;
        while offset < len {
            let v = va + offset;
            let root = self.root;
            let Some(l1) = self.walk(root, v, 0) else { break };
            let Some(l2) = self.walk(l1, v, 1) else { break };
            let l2_entry = self.entries(l2)[index(v, 2)];
            if l2_entry & VALID != 0 && l2_entry & TABLE_OR_PAGE == 0 {
                self.entries(l2)[index(v, 2)] = 0;
                offset += BLOCK_SIZE;
            } else {
                if let Some(l3) = self.walk(l2, v, 2) {
                    self.entries(l3)[index(v, 3)] = 0;
                }
                offset += PAGE_SIZE;
            }
        }
        publish_table_writes();
        self.flush_tlb();
    }

    /// The next-level table for `va` below `table` (at `level`), if any.
    fn walk(&mut self, table: usize, va: usize, level: usize) -> Option<usize> {
        let entry = self.entries(table)[index(va, level)];
        (entry & VALID != 0).then_some((entry & ADDRESS_MASK) as usize)
    }

    fn flush_tlb(&self) {
        let operand = (self.asid as u64) << 48;
        // SAFETY: TLB maintenance by ASID has no memory effects beyond
        // dropping cached translations of this address space.
        unsafe {
            core::arch::asm!("dsb ishst", "tlbi aside1, {0}", "dsb ish", "isb", in(reg) operand, options(nostack));
        }
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // The walker and the TLB must be done with the tables before their
        // pages go back to the heap (when `tables` drops, after this).
        self.flush_tlb();
    }
}

/// Makes descriptor writes visible to the table walker.
fn publish_table_writes() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// The largest ASID this CPU has (8 or 16 bits; `boot.s` asks for 16).
pub fn max_asid() -> u16 {
    if ID_AA64MMFR0_EL1.matches_all(ID_AA64MMFR0_EL1::ASIDBits::Bits_16) { u16::MAX } else { u8::MAX as u16 }
}

/// The TTBR0 value for threads without a user address space: an empty table.
static EMPTY_ROOT: spin::Once<u64> = spin::Once::new();

/// Turns on TTBR0 walks (the boot code disabled them) with an empty table.
pub fn init() {
    let empty = *EMPTY_ROOT.call_once(|| {
        let table = new_table().expect("heap has room for one table");
        // Never freed: every thread without a user space uses it.
        table_phys(alloc::boxed::Box::leak(table)) as u64
    });
    TTBR0_EL1.set(empty);
    TCR_EL1.modify(TCR_EL1::EPD0::EnableTTBR0Walks);
    // SAFETY: only synchronises the translation register changes.
    unsafe { core::arch::asm!("isb", "tlbi vmalle1", "dsb ish", "isb", options(nostack)) };
}

/// Switches the user half to `ttbr0` (an `AddressSpace::ttbr0` or `None` for
/// none), unless it is there already: under QEMU a write that changes the
/// ASID flushes the whole emulated TLB, kernel entries too.
pub fn activate(ttbr0: Option<u64>) {
    let value = ttbr0.unwrap_or_else(|| *EMPTY_ROOT.get().expect("mmu::init ran"));
    if TTBR0_EL1.get() != value {
        TTBR0_EL1.set(value);
        barrier::isb(barrier::SY);
    }
}

/// Takes the space `ttbr0` out of the user half if it is there (the space is
/// going away; kernel threads leave the last user space in place).
pub fn deactivate(ttbr0: u64) {
    if TTBR0_EL1.get() == ttbr0 {
        activate(None);
    }
}
