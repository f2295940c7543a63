//! The Bullet file server's pure core: immutable files stored contiguously on a
//! block device, a whole-file RAM cache, and crash-safe commits.
//!
//! [`Store`] runs over any [`BlockDevice`] (on a board: the disk object reached by
//! RPC; on the host: `sim::SimDisk` with the `sim` feature). Its operations take the
//! caller's capability and return `Result<_, amoeba_abi::Status>`, one per Bullet command
//! and per object part of the standard commands, so a server program wires each to a
//! message and back.
//!
//! ```
//! # #[cfg(feature = "sim")] {
//! use amoeba_ipc::interfaces::{BS_COMMIT, BS_SAFETY};
//! use amoeba_abi::{Rights, Rng, Status};
//! use bullet_server::{sim::SimDisk, Config, Store};
//!
//! let config = Config { inode_count: 64, ..Config::default() };
//! let mut store = Store::format(SimDisk::new(512, 2048), config, Rng::from_seed([1; 32])).unwrap();
//! let sup = store.super_capability();
//! let file = store.create(&sup, b"hello", BS_COMMIT | BS_SAFETY).unwrap();
//! assert_eq!(store.read(&file, 0, 100).unwrap(), b"hello");
//! let ro = file.restrict(Rights::READ).unwrap();
//! assert_eq!(store.destroy(&ro), Err(Status::Denied));
//!
//! // A restart keeps the file and its capability.
//! let disk = store.into_device();
//! let mut store = Store::mount(disk, config, Rng::from_seed([2; 32])).unwrap();
//! assert_eq!(store.read(&ro, 1, 3).unwrap(), b"ell");
//! # }
//! ```
//!
//! # Layout
//!
//! ```text
//! block 0            superblock: geometry, volume id, get-port, super random (format only)
//! blocks 1 .. 1+2S   inode table, S blocks in two slots each [A0 B0 A1 B1 ...];
//!                    a block = header (seq, volume, checksum) + 32-byte inodes
//!                    (random check, head, tail, split, size)
//! 1+2S .. end-1      data: each file one contiguous run of blocks
//! end-1              the superblock's backup copy
//! ```
//!
//! Mount takes whichever superblock copy is valid and writes the other again; with
//! neither valid it refuses ([`MountError::NotFormatted`]) and writes nothing. Only
//! [`Store::format`], which the server program calls only when asked to, makes a
//! new store.
//!
//! # Files larger than memory
//!
//! [`Store::create`] and the edits hold a file in memory until it is committed.
//! [`Store::reserve`] instead takes a contiguous run for a file of a declared size
//! at once; [`Store::write`] puts each chunk straight onto its blocks and
//! [`Store::commit`] writes its inode, so a file may be as large as the largest run
//! the disk can make, whatever the memory.
//!
//! # Why a crash is harmless
//!
//! * A commit writes the file's data into blocks no durable inode names; a write
//!   round then flushes, writes each changed inode block into the slot *not* holding
//!   its last durable version, and flushes again. A safe commit returns after its
//!   round. So an inode on disk only ever names data that was durable before it was
//!   written, and a torn inode write can only destroy a version nobody was promised:
//!   mount takes the valid (checksummed) slot with the higher sequence number.
//! * Blocks a file gives up (destroy, compaction) rejoin the free list only after
//!   the round that wrote its inode without them, so an older inode version a crash
//!   brings back still finds its data untouched.
//! * Compaction moves a file down in steps no longer than the distance moved, each
//!   step copy → flush → inode "first k blocks here, the rest there" → flush, so no
//!   step overwrites blocks a durable inode names; mount finishes a cut move.
//! * Mount rebuilds the free list as the complement of the inodes' runs, refusing
//!   overlaps; [`Store::check_consistency`] and [`Store::check_disk`] check the rest.
//!
//! Unsafe commits and destroys reach the disk at the next round: [`Store::sync`], a
//! safe commit, or a compaction. The server program should sync now and then.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod cache;
mod check;
mod compact;
mod device;
mod free;
mod layout;
mod ops;
mod service;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod store;

use core::fmt;

pub use check::Inconsistency;
pub use device::{BlockDevice, DiskError};
pub use layout::{Geometry, Placement};
pub use ops::{Chunk, FileInfo, Stats};
pub use service::{BulletService, DiskObject, ReplyInto};
#[cfg(feature = "sim")]
pub use store::Faults;
pub use store::{Counters, Store};

/// The largest file an inode records: 4 GiB - 1.
pub const MAX_FILE_SIZE: u32 = u32::MAX;

/// How a store is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Inodes, i.e. the most files the store holds (used by [`Store::format`]; a
    /// mounted store keeps the number it was formatted with).
    pub inode_count: u32,
    /// Bound on the bytes of committed files cached in memory.
    pub cache_bytes: usize,
    /// Bound on the bytes of uncommitted files held in memory (files written with
    /// [`Store::reserve`] go straight to disk and do not count).
    pub uncommitted_bytes: usize,
    /// The largest file accepted (at most [`MAX_FILE_SIZE`]).
    pub max_file_size: u32,
    /// STD_AGE ticks an untouched uncommitted file survives (at least 1).
    pub uncommitted_life: u8,
}

impl Default for Config {
    /// 4096 inodes, a 32 MiB cache, 64 MiB of uncommitted files in memory, files up
    /// to [`MAX_FILE_SIZE`], uncommitted files gone after 4 untouched ages.
    fn default() -> Config {
        Config {
            inode_count: 4096,
            cache_bytes: 32 << 20,
            uncommitted_bytes: 64 << 20,
            max_file_size: MAX_FILE_SIZE,
            uncommitted_life: 4,
        }
    }
}

/// Why a store could not be formatted or mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountError {
    /// Neither block 0 nor the last block holds a valid superblock: never formatted,
    /// a format was cut, or both copies are damaged.
    NotFormatted,
    /// The superblock is of another layout version.
    Version,
    /// The disk is too small, its block size unsupported, or smaller than recorded.
    Geometry,
    /// The inode table contradicts itself (what no crash can cause).
    Corrupt(&'static str),
    /// The device failed.
    Disk(DiskError),
    /// No memory for the store's tables.
    Memory,
}

/// A failed [`Store::format`] or [`Store::mount`]: why, and the device back.
pub struct MountFailure<D> {
    /// Why.
    pub error: MountError,
    /// The device, untouched by the store from here on.
    pub device: D,
}

impl<D> fmt::Debug for MountFailure<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MountFailure({:?})", self.error)
    }
}

impl<D> fmt::Display for MountFailure<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl From<DiskError> for MountError {
    fn from(e: DiskError) -> MountError {
        MountError::Disk(e)
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::NotFormatted => f.write_str(
                "no valid bullet superblock, neither in the first block nor in its backup in the last block",
            ),
            MountError::Version => f.write_str("bullet store of another layout version"),
            MountError::Geometry => f.write_str("disk size or block size does not fit a bullet store"),
            MountError::Corrupt(what) => write!(f, "bullet store corrupt: {what}"),
            MountError::Disk(e) => write!(f, "disk: {e}"),
            MountError::Memory => f.write_str("no memory for the store's tables"),
        }
    }
}

impl core::error::Error for MountError {}
