//! User address spaces: one translation table per process in TTBR0, tagged
//! with an ASID; the kernel stays in TTBR1 (set up by `boot.s`). Segments
//! are contiguous, so a mapping is one run of physical memory: 2 MiB blocks
//! where virtual and physical addresses allow, 4 KiB pages elsewhere.

use crate::board;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, ReadWriteable, Readable, TCR_EL1, TTBR0_EL1, Writeable};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
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

pub use nucleus::call_types::MapFlags;

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

    /// Translation-table pages the space holds (the root among them).
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// The descriptors of this space's table at `phys`, if it is one of its
    /// tables (descriptors only ever point at tables of their own space).
    fn entries(&mut self, phys: usize) -> Option<&mut [u64; 512]> {
        self.tables.get_mut(&phys).and_then(|table| table.first_mut()).map(|table| &mut table.0)
    }

    /// The descriptor at `slot` of table `table`; 0 (invalid) if `table` is
    /// not one of this space's tables.
    fn entry(&mut self, table: usize, slot: usize) -> u64 {
        self.entries(table).map_or(0, |entries| entries[slot])
    }

    /// The table a valid table descriptor points to; `None` if the
    /// descriptor is invalid, and `Err` if it is a block (a leaf where a
    /// table would have to go).
    fn table_below(entry: u64) -> Result<Option<usize>, MapError> {
        match (entry & VALID != 0, entry & TABLE_OR_PAGE != 0) {
            (false, _) => Ok(None),
            (true, true) => Ok(Some((entry & ADDRESS_MASK) as usize)),
            (true, false) => Err(MapError::BadRange),
        }
    }

    /// How many new tables mapping `va..va+len` (stepping as `map` does)
    /// needs; `BadRange` if a translation is already there.
    fn tables_needed(&mut self, va: usize, pa: usize, len: usize) -> Result<usize, MapError> {
        // Tables this mapping would make, by (level, the part of the
        // address they cover): every table below a new one is new too.
        let mut new: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut offset = 0;
        while offset < len {
            let (v, p) = (va + offset, pa + offset);
            let block =
                v.is_multiple_of(BLOCK_SIZE) && p.is_multiple_of(BLOCK_SIZE) && len - offset >= BLOCK_SIZE;
            let levels = if block { 2 } else { 3 };
            let mut table = Some(self.root);
            for level in 0..levels {
                let below = match table {
                    Some(table) => Self::table_below(self.entry(table, index(v, level)))?,
                    None => None,
                };
                if below.is_none() {
                    new.insert((level, v >> (39 - 9 * level)));
                }
                table = below;
            }
            let leaf = match table {
                Some(table) => self.entry(table, index(v, levels)),
                None => 0,
            };
            if leaf & VALID != 0 {
                return Err(MapError::BadRange);
            }
            offset += if block { BLOCK_SIZE } else { PAGE_SIZE };
        }
        Ok(new.len())
    }

    /// The table the descriptor at `slot` of `table` points to, made from
    /// `spare` if missing.
    fn next_table(
        &mut self,
        table: usize,
        slot: usize,
        spare: &mut Vec<Box<[Table]>>,
    ) -> Result<usize, MapError> {
        if let Some(below) = Self::table_below(self.entry(table, slot))? {
            return Ok(below);
        }
        let next = spare.pop().ok_or(MapError::NoMemory)?;
        let next_phys = table_phys(&next);
        self.tables.insert(next_phys, next);
        let entries = self.entries(table).ok_or(MapError::BadRange)?;
        entries[slot] = next_phys as u64 | TABLE_OR_PAGE | VALID;
        Ok(next_phys)
    }

    /// Maps `len` bytes at `va` to physical `pa`, all of it or nothing: the
    /// tables it needs are counted and allocated first, and it fails if the
    /// space would then hold more than `max_tables` tables, if the heap has
    /// no room for them, or if any page of the range is mapped already.
    pub fn map(
        &mut self,
        va: usize,
        pa: usize,
        len: usize,
        flags: MapFlags,
        max_tables: usize,
    ) -> Result<(), MapError> {
        let aligned =
            va.is_multiple_of(PAGE_SIZE) && pa.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE);
        if !aligned || len == 0 || va.checked_add(len).is_none_or(|end| end > USER_TOP) {
            return Err(MapError::BadRange);
        }
        let needed = self.tables_needed(va, pa, len)?;
        if self.tables.len().saturating_add(needed) > max_tables
            || !crate::heap::can_spend(needed.saturating_mul(PAGE_SIZE))
        {
            return Err(MapError::NoMemory);
        }
        let mut spare = Vec::new();
        spare.try_reserve_exact(needed).map_err(|_| MapError::NoMemory)?;
        for _ in 0..needed {
            spare.push(new_table().ok_or(MapError::NoMemory)?);
        }
        let mut attributes = VALID | ATTR_NORMAL | AP_EL0 | INNER_SHAREABLE | ACCESS_FLAG | NOT_GLOBAL | PXN;
        if !flags.write {
            attributes |= AP_READ_ONLY;
        }
        if !flags.execute {
            attributes |= UXN;
        }
        // Nothing below can fail now (the range was checked and the tables
        // are at hand); should it anyway, what was written is taken back.
        let written = self.write_translations(va, pa, len, attributes, &mut spare);
        publish_table_writes();
        if let Err((error, done)) = written {
            self.unmap(va, done);
            return Err(error);
        }
        Ok(())
    }

    /// Writes the descriptors of a checked range; on failure, the error and
    /// how many bytes from `va` were mapped.
    fn write_translations(
        &mut self,
        va: usize,
        pa: usize,
        len: usize,
        attributes: u64,
        spare: &mut Vec<Box<[Table]>>,
    ) -> Result<(), (MapError, usize)> {
        let mut offset = 0;
        while offset < len {
            let (v, p) = (va + offset, pa + offset);
            let failed = |error| (error, offset);
            let l1 = self.next_table(self.root, index(v, 0), spare).map_err(failed)?;
            let l2 = self.next_table(l1, index(v, 1), spare).map_err(failed)?;
            if v.is_multiple_of(BLOCK_SIZE) && p.is_multiple_of(BLOCK_SIZE) && len - offset >= BLOCK_SIZE {
                self.entries(l2).ok_or(failed(MapError::BadRange))?[index(v, 2)] = p as u64 | attributes;
                offset += BLOCK_SIZE;
            } else {
                let l3 = self.next_table(l2, index(v, 2), spare).map_err(failed)?;
                self.entries(l3).ok_or(failed(MapError::BadRange))?[index(v, 3)] =
                    p as u64 | attributes | TABLE_OR_PAGE;
                offset += PAGE_SIZE;
            }
        }
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
            let l2_entry = self.entry(l2, index(v, 2));
            if l2_entry & VALID != 0 && l2_entry & TABLE_OR_PAGE == 0 {
                if let Some(entries) = self.entries(l2) {
                    entries[index(v, 2)] = 0;
                }
                offset += BLOCK_SIZE;
            } else {
                if let Some(l3) = self.walk(l2, v, 2)
                    && let Some(entries) = self.entries(l3)
                {
                    entries[index(v, 3)] = 0;
                }
                offset += PAGE_SIZE;
            }
        }
        publish_table_writes();
        self.flush_tlb();
    }

    /// The next-level table for `va` below `table` (at `level`), if any.
    fn walk(&mut self, table: usize, va: usize, level: usize) -> Option<usize> {
        Self::table_below(self.entry(table, index(va, level))).ok().flatten()
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
    // `init` ran at boot, before any thread could switch.
    let Some(value) = ttbr0.or_else(|| EMPTY_ROOT.get().copied()) else {
        return;
    };
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
