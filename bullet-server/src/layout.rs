//! The on-disk layout: where the superblock, the inode table and the data live, and
//! how each is encoded. Everything here is pure encoding and decoding; the store
//! decides when to write what.
//!
//! ```text
//! block 0                  superblock (written by format, and again only to repair it)
//! blocks 1 .. 1+2S         inode table: S inode blocks, each kept in two slots
//!                          [A0 B0 A1 B1 ... A(S-1) B(S-1)]
//! blocks 1+2S .. end-1     file data: each file one contiguous run of blocks
//! block end-1              the superblock's backup copy (layout 2)
//! ```
//!
//! The backup copy is what a damaged block 0 is recovered from (as ext4 keeps copies
//! of its superblock): mount takes whichever copy is valid and rewrites the other.
//! Layout 1 (before the backup existed) used the last block for data; such a store
//! still mounts, and is upgraded to layout 2 when its last block is free.
//!
//! An inode block holds a header (magic, block index, sequence number, volume id,
//! checksum) and a fixed number of 32-byte inodes. Its two slots alternate: the store
//! writes a new version into the slot that does not hold the last durable one, so a
//! torn write can only destroy a version that was never acknowledged. At mount the
//! valid slot with the higher sequence number wins.

use alloc::vec;
use alloc::vec::Vec;

use amoeba_abi::{Check, GetPort, Port};
use sha2::{Digest, Sha256};

use crate::MountError;

/// Magic at the start of the superblock.
const SUPER_MAGIC: [u8; 8] = *b"BULLETFS";
/// Version of this layout: 2 keeps a backup superblock in the last block.
pub(crate) const LAYOUT_VERSION: u32 = 2;
/// The layout before the backup superblock: data up to the last block.
pub(crate) const LAYOUT_WITHOUT_BACKUP: u32 = 1;
/// Magic at the start of every inode block.
const INODE_BLOCK_MAGIC: [u8; 4] = *b"BINO";
/// Bytes of an inode-block header: magic 4, index 4, sequence 8, volume 8, checksum 8.
const INODE_HEADER_LEN: usize = 32;
/// Bytes of one inode.
pub(crate) const INODE_LEN: usize = 32;
/// Bytes of a checksum (SHA-256 truncated): a torn or garbage block passes with
/// probability 2^-64.
const CHECKSUM_LEN: usize = 8;
/// Where the checksum sits in an inode block header.
const INODE_CHECKSUM_AT: usize = 24;
/// Where the checksum sits in the superblock.
const SUPER_CHECKSUM_AT: usize = 64;
/// Bytes of the superblock that are encoded (the rest of block 0 is zero).
const SUPER_LEN: usize = SUPER_CHECKSUM_AT + CHECKSUM_LEN;
/// Smallest block size the layout supports (the superblock and one inode must fit).
pub(crate) const MIN_BLOCK_SIZE: usize = 128;
/// Inode flag: the inode describes a committed file.
const INODE_USED: u8 = 0x01;

/// SHA-256 of `block` with its checksum field (at `at`) taken as zero, truncated.
fn checksum(block: &[u8], at: usize) -> [u8; CHECKSUM_LEN] {
    let mut h = Sha256::new();
    h.update(&block[..at]);
    h.update([0u8; CHECKSUM_LEN]);
    h.update(&block[at + CHECKSUM_LEN..]);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&h.finalize()[..CHECKSUM_LEN]);
    out
}

fn seal(block: &mut [u8], at: usize) {
    let sum = checksum(block, at);
    block[at..at + CHECKSUM_LEN].copy_from_slice(&sum);
}

fn sealed(block: &[u8], at: usize) -> bool {
    block[at..at + CHECKSUM_LEN] == checksum(block, at)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn six_at(b: &[u8], at: usize) -> [u8; 6] {
    b[at..at + 6].try_into().expect("6 bytes")
}

/// Where everything lives on a disk, derived from the block size, the block count and
/// the number of inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block.
    pub block_size: usize,
    /// Blocks on the disk.
    pub block_count: u64,
    /// Number of inodes (= the largest object number).
    pub inode_count: u32,
    /// Inodes per inode block.
    pub inodes_per_block: u32,
    /// Number of inode blocks S (the table takes 2S blocks: two slots each).
    pub inode_blocks: u32,
    /// First block of the inode table.
    pub table_start: u64,
    /// First data block.
    pub data_start: u64,
    /// One past the last data block: the backup superblock's block, or (layout 1)
    /// the end of the disk.
    pub data_end: u64,
}

impl Geometry {
    /// The layout of a disk of `block_count` blocks of `block_size` bytes with
    /// `inode_count` inodes, if at least one data block remains: the superblock's
    /// backup in the last block.
    pub fn new(block_size: usize, block_count: u64, inode_count: u32) -> Result<Geometry, MountError> {
        let mut geometry = Geometry::without_backup(block_size, block_count, inode_count)?;
        geometry.data_end = block_count - 1;
        if geometry.data_start >= geometry.data_end {
            return Err(MountError::Geometry);
        }
        Ok(geometry)
    }

    /// The layout 1 geometry: no backup superblock, data up to the last block.
    pub(crate) fn without_backup(
        block_size: usize,
        block_count: u64,
        inode_count: u32,
    ) -> Result<Geometry, MountError> {
        if block_size < MIN_BLOCK_SIZE || !block_size.is_power_of_two() || inode_count == 0 {
            return Err(MountError::Geometry);
        }
        if inode_count > amoeba_abi::OBJECT_MAX {
            return Err(MountError::Geometry);
        }
        let inodes_per_block = ((block_size - INODE_HEADER_LEN) / INODE_LEN) as u32;
        let inode_blocks = inode_count.div_ceil(inodes_per_block);
        let table_start = 1;
        let data_start = table_start + 2 * inode_blocks as u64;
        if data_start >= block_count {
            return Err(MountError::Geometry);
        }
        Ok(Geometry {
            block_size,
            block_count,
            inode_count,
            inodes_per_block,
            inode_blocks,
            table_start,
            data_start,
            data_end: block_count,
        })
    }

    /// Number of data blocks.
    pub fn data_blocks(&self) -> u64 {
        self.data_end - self.data_start
    }

    /// The block holding the superblock's backup copy, if this layout has one.
    pub fn backup_block(&self) -> Option<u64> {
        (self.data_end < self.block_count).then_some(self.block_count - 1)
    }

    /// The layout version this geometry belongs to.
    pub(crate) fn version(&self) -> u32 {
        if self.backup_block().is_some() { LAYOUT_VERSION } else { LAYOUT_WITHOUT_BACKUP }
    }

    /// The disk block of slot `slot` (0 or 1) of inode block `index`.
    pub(crate) fn slot_block(&self, index: u32, slot: u8) -> u64 {
        self.table_start + 2 * index as u64 + slot as u64
    }

    /// The inode block holding inode `inode`.
    pub(crate) fn block_of(&self, inode: u32) -> u32 {
        inode / self.inodes_per_block
    }

    /// Blocks needed for `bytes` of data.
    pub(crate) fn blocks_for(&self, bytes: u64) -> u64 {
        bytes.div_ceil(self.block_size as u64)
    }
}

/// The superblock: the geometry, and the server's identity (so capabilities stay
/// valid across restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub geometry: Geometry,
    /// Random per format; stamped on every inode block so blocks of an earlier format
    /// of the same disk are never taken for current ones.
    pub volume: u64,
    pub get_port: GetPort,
    pub super_random: Check,
}

impl Superblock {
    /// Block 0 (and its backup): magic 8 | version 4 | block size 4 | block count 8 |
    /// inode count 4 | inode blocks 4 | data start 8 | volume 8 | get-port 6 | super
    /// random 6 | pad 2 | checksum 8 at 64, little endian; the rest of the block zero.
    pub fn encode(&self) -> Vec<u8> {
        let g = &self.geometry;
        let mut b = vec![0u8; g.block_size];
        b[0..8].copy_from_slice(&SUPER_MAGIC);
        b[8..12].copy_from_slice(&g.version().to_le_bytes());
        b[12..16].copy_from_slice(&(g.block_size as u32).to_le_bytes());
        b[16..24].copy_from_slice(&g.block_count.to_le_bytes());
        b[24..28].copy_from_slice(&g.inode_count.to_le_bytes());
        b[28..32].copy_from_slice(&g.inode_blocks.to_le_bytes());
        b[32..40].copy_from_slice(&g.data_start.to_le_bytes());
        b[40..48].copy_from_slice(&self.volume.to_le_bytes());
        b[48..54].copy_from_slice(&self.get_port.0.0);
        b[54..60].copy_from_slice(&self.super_random.0);
        seal(&mut b[..SUPER_LEN], SUPER_CHECKSUM_AT);
        b
    }

    /// Decode a superblock copy read from a disk whose blocks are `b.len()` bytes
    /// and which has `block_count` blocks now.
    pub fn decode(b: &[u8], block_count: u64) -> Result<Superblock, MountError> {
        if b.len() < SUPER_LEN || b[0..8] != SUPER_MAGIC || !sealed(&b[..SUPER_LEN], SUPER_CHECKSUM_AT) {
            return Err(MountError::NotFormatted);
        }
        let version = u32_at(b, 8);
        if version != LAYOUT_VERSION && version != LAYOUT_WITHOUT_BACKUP {
            return Err(MountError::Version);
        }
        let block_size = u32_at(b, 12) as usize;
        let recorded_count = u64_at(b, 16);
        if block_size != b.len() || recorded_count > block_count {
            return Err(MountError::Geometry);
        }
        let inode_count = u32_at(b, 24);
        let geometry = if version == LAYOUT_VERSION {
            Geometry::new(block_size, recorded_count, inode_count)?
        } else {
            Geometry::without_backup(block_size, recorded_count, inode_count)?
        };
        if geometry.inode_blocks != u32_at(b, 28) || geometry.data_start != u64_at(b, 32) {
            return Err(MountError::Corrupt("superblock geometry does not add up"));
        }
        Ok(Superblock {
            geometry,
            volume: u64_at(b, 40),
            get_port: GetPort(Port(six_at(b, 48))),
            super_random: Check(six_at(b, 54)),
        })
    }
}

/// Where a committed file's blocks are. Normally one run: `split == blocks`, file
/// block `b` at `head + b`. While compaction moves a file down, its first `split`
/// blocks are already at `head ..` and the rest still at `tail ..` (file block
/// `b >= split` at `tail + b - split`); a crash may leave that state on disk and mount
/// finishes the move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// First block of the head run.
    pub head: u64,
    /// Blocks of the file in the head run.
    pub split: u64,
    /// First block of the tail run.
    pub tail: u64,
    /// Blocks of the file.
    pub blocks: u64,
}

impl Placement {
    /// A single run of `blocks` blocks at `start`.
    pub fn single(start: u64, blocks: u64) -> Placement {
        Placement { head: start, split: blocks, tail: start + blocks, blocks }
    }

    /// Is the file in one run?
    pub fn is_single(&self) -> bool {
        self.split == self.blocks
    }

    /// The (start, length) runs the file occupies, empty ones left out.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> {
        let head = (self.head, self.split);
        let tail = (self.tail, self.blocks - self.split);
        [head, tail].into_iter().filter(|r| r.1 > 0)
    }
}

/// A committed file as the inode table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DiskInode {
    pub random: Check,
    pub size: u32,
    pub place: Placement,
}

/// Inode: flags 1 | random 6 | pad 1 | head 8 | tail 8 | split 4 | size 4 (little
/// endian). A free inode is all zero.
fn encode_inode(inode: Option<&DiskInode>, out: &mut [u8]) {
    out.fill(0);
    let Some(i) = inode else { return };
    out[0] = INODE_USED;
    out[1..7].copy_from_slice(&i.random.0);
    out[8..16].copy_from_slice(&i.place.head.to_le_bytes());
    out[16..24].copy_from_slice(&i.place.tail.to_le_bytes());
    out[24..28].copy_from_slice(&(i.place.split as u32).to_le_bytes());
    out[28..32].copy_from_slice(&i.size.to_le_bytes());
}

/// Decode one inode; `None` for a free one. The placement is checked later against
/// the geometry (`check_inode`).
fn decode_inode(b: &[u8], geometry: &Geometry) -> Option<DiskInode> {
    if b[0] & INODE_USED == 0 {
        return None;
    }
    let size = u32_at(b, 28);
    let place = Placement {
        head: u64_at(b, 8),
        tail: u64_at(b, 16),
        split: u32_at(b, 24) as u64,
        blocks: geometry.blocks_for(size as u64),
    };
    Some(DiskInode { random: Check(six_at(b, 1)), size, place })
}

/// Is the placement of a decoded inode possible: within the data area, split within
/// the file, the tail above the head's end (moves go down)? Overlaps between files
/// are checked by the caller.
pub(crate) fn check_inode(inode: &DiskInode, geometry: &Geometry) -> Result<(), MountError> {
    let p = &inode.place;
    let in_data = |start: u64, len: u64| {
        len == 0
            || (start >= geometry.data_start
                && start.checked_add(len).is_some_and(|e| e <= geometry.data_end))
    };
    let ok = p.split <= p.blocks
        && in_data(p.head, p.split)
        && in_data(p.tail, p.blocks - p.split)
        && (p.is_single() || p.head.checked_add(p.split).is_some_and(|end| p.tail >= end));
    if ok { Ok(()) } else { Err(MountError::Corrupt("inode placement outside the data area")) }
}

/// One version of an inode block, as read from a slot.
pub(crate) struct InodeBlock {
    pub seq: u64,
    pub inodes: Vec<Option<DiskInode>>,
}

/// Encode inode block `index` of volume `volume` at sequence number `seq`.
pub(crate) fn encode_inode_block(
    geometry: &Geometry,
    volume: u64,
    index: u32,
    seq: u64,
    inodes: &[Option<DiskInode>],
) -> Vec<u8> {
    let mut b = vec![0u8; geometry.block_size];
    b[0..4].copy_from_slice(&INODE_BLOCK_MAGIC);
    b[4..8].copy_from_slice(&index.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&volume.to_le_bytes());
    for (k, inode) in inodes.iter().enumerate() {
        let at = INODE_HEADER_LEN + k * INODE_LEN;
        encode_inode(inode.as_ref(), &mut b[at..at + INODE_LEN]);
    }
    seal(&mut b, INODE_CHECKSUM_AT);
    b
}

/// Decode a slot of inode block `index`; `None` if it is not a whole, valid version
/// of that block of this volume (torn, garbage, never written, or another format's).
pub(crate) fn decode_inode_block(
    geometry: &Geometry,
    volume: u64,
    index: u32,
    b: &[u8],
) -> Option<InodeBlock> {
    if b[0..4] != INODE_BLOCK_MAGIC
        || u32_at(b, 4) != index
        || u64_at(b, 16) != volume
        || !sealed(b, INODE_CHECKSUM_AT)
    {
        return None;
    }
    let inodes = (0..geometry.inodes_per_block as usize)
        .map(|k| {
            let at = INODE_HEADER_LEN + k * INODE_LEN;
            decode_inode(&b[at..at + INODE_LEN], geometry)
        })
        .collect();
    Some(InodeBlock { seq: u64_at(b, 8), inodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::new(512, 1000, 40).unwrap()
    }

    #[test]
    fn geometry_adds_up() {
        let g = geometry();
        assert_eq!(g.inodes_per_block, 15);
        assert_eq!(g.inode_blocks, 3);
        assert_eq!(g.data_start, 7);
        assert_eq!((g.data_end, g.data_blocks(), g.backup_block()), (999, 992, Some(999)));
        assert_eq!(g.slot_block(2, 1), 6);
        assert_eq!(g.block_of(14), 0);
        assert_eq!(g.block_of(15), 1);
        assert_eq!(Geometry::new(512, 7, 40), Err(MountError::Geometry));
        assert_eq!(Geometry::new(512, 8, 40), Err(MountError::Geometry), "no data block besides the backup");
        let old = Geometry::without_backup(512, 1000, 40).unwrap();
        assert_eq!((old.data_end, old.backup_block(), old.version()), (1000, None, LAYOUT_WITHOUT_BACKUP));
        assert_eq!(Geometry::new(500, 1000, 40), Err(MountError::Geometry));
        assert_eq!(Geometry::new(512, 1000, 0), Err(MountError::Geometry));
    }

    #[test]
    fn superblock_round_trip_and_rejects_damage() {
        let sb = Superblock {
            geometry: geometry(),
            volume: 0x1234_5678_9abc,
            get_port: GetPort(Port([1, 2, 3, 4, 5, 6])),
            super_random: Check([9; 6]),
        };
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b, 1000), Ok(sb));
        // A grown disk still mounts with its recorded size; a shrunk one does not.
        assert_eq!(Superblock::decode(&b, 2000), Ok(sb));
        assert_eq!(Superblock::decode(&b, 999), Err(MountError::Geometry));
        for at in [0, 20, 50, 60, 70] {
            let mut bad = b.clone();
            bad[at] ^= 0x10;
            assert_eq!(Superblock::decode(&bad, 1000), Err(MountError::NotFormatted), "byte {at}");
        }
        assert_eq!(Superblock::decode(&[0u8; 512], 1000), Err(MountError::NotFormatted));
        // A layout-1 superblock decodes to its own geometry; an unknown layout is refused.
        let old = Superblock { geometry: Geometry::without_backup(512, 1000, 40).unwrap(), ..sb };
        let encoded = old.encode();
        assert_eq!(u32_at(&encoded, 8), LAYOUT_WITHOUT_BACKUP);
        assert_eq!(Superblock::decode(&encoded, 1000), Ok(old));
        let mut future = b.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        seal(&mut future[..SUPER_LEN], SUPER_CHECKSUM_AT);
        assert_eq!(Superblock::decode(&future, 1000), Err(MountError::Version));
    }

    #[test]
    fn inode_block_round_trip_and_rejects_damage() {
        let g = geometry();
        let mut inodes = vec![None; 15];
        inodes[3] =
            Some(DiskInode { random: Check([1, 2, 3, 4, 5, 6]), size: 1025, place: Placement::single(7, 3) });
        inodes[14] = Some(DiskInode {
            random: Check([0; 6]),
            size: 0,
            place: Placement { head: 0, split: 0, tail: 0, blocks: 0 },
        });
        let b = encode_inode_block(&g, 77, 1, 5, &inodes);
        let d = decode_inode_block(&g, 77, 1, &b).unwrap();
        assert_eq!(d.seq, 5);
        assert_eq!(d.inodes, inodes);
        assert!(decode_inode_block(&g, 78, 1, &b).is_none(), "other volume");
        assert!(decode_inode_block(&g, 77, 2, &b).is_none(), "other block");
        for at in [0, 8, 30, 40, 200, 511] {
            let mut bad = b.clone();
            bad[at] ^= 1;
            assert!(decode_inode_block(&g, 77, 1, &bad).is_none(), "byte {at}");
        }
        // A torn block: first half new, second half zero.
        let mut torn = b.clone();
        torn[256..].fill(0);
        assert!(decode_inode_block(&g, 77, 1, &torn).is_none());
    }

    #[test]
    fn check_inode_bounds() {
        let g = geometry();
        let ok = |place| check_inode(&DiskInode { random: Check([1; 6]), size: 0, place }, &g).is_ok();
        assert!(ok(Placement::single(7, 992)));
        assert!(!ok(Placement::single(7, 993)), "the backup superblock's block is no data");
        assert!(!ok(Placement::single(6, 1)));
        assert!(ok(Placement::single(0, 0)));
        assert!(ok(Placement { head: 7, split: 2, tail: 20, blocks: 5 }));
        assert!(!ok(Placement { head: 20, split: 2, tail: 7, blocks: 5 }), "moves go down");
        assert!(!ok(Placement { head: 7, split: 6, tail: 20, blocks: 5 }));
        assert!(!ok(Placement { head: u64::MAX - 1, split: 5, tail: 0, blocks: 5 }));
        assert!(!ok(Placement { head: u64::MAX - 1, split: 1, tail: 20, blocks: 5 }));
    }
}
