//! A board's disk as an object (Amoeba's virtual disk server): whole blocks read and
//! written at a block number, flush, geometry. The nucleus of the board with the disk
//! serves it on a port of its own; a capability for a range of blocks comes from the
//! board's host capability with the disk right (`process_server::disk`).

use crate::interfaces::process::DiskGeometry;
use amoeba_abi::Rights;

/// Disk right: read blocks and the geometry.
pub const DISK_READ: Rights = Rights::READ;
/// Disk right: write and flush.
pub const DISK_WRITE: Rights = Rights::MODIFY;

/// Largest transfer of one call, in bytes.
pub const DISK_IO_MAX: usize = 1 << 20;

crate::interface! {
    /// Raw blocks of a disk (or of a range of it).
    pub mod disk {
        /// Block size and count of this disk object.
        fn geometry as DISK_GEOMETRY = 3400, object(DISK_READ) () -> (geometry: data<DiskGeometry>);
        /// `count` blocks from block `first`.
        fn read as DISK_READ_BLOCKS = 3401, object(DISK_READ) (first: offset<u64>, count: size<u32>)
            -> (data: bytes) limit DISK_IO_MAX;
        /// Whole blocks from block `first` (the data's length is a multiple of the block size).
        fn write as DISK_WRITE_BLOCKS = 3402, object(DISK_WRITE) (first: offset<u64>, data: bytes) -> ();
        /// Returns once everything written before is on stable storage.
        fn flush as DISK_FLUSH = 3403, object(DISK_WRITE) () -> ();
    }
}
