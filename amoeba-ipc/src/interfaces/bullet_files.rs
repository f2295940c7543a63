//! The Bullet file server: immutable files, created whole (or in pieces while
//! uncommitted), read at an offset; edits of a committed file make a new file.
//!
//! A file larger than one request is made by `reserve` (a declared size, its blocks
//! taken at once as one contiguous run), `write` of its chunks in order (each goes
//! straight onto its blocks: the server never holds the file whole), and `commit`
//! (with or without `BS_SAFETY`). Until committed it is unreadable, it is gone after
//! a crash, and STD_AGE collects it if nobody touches it. `amoeba_client::files` does all
//! this for its callers.

/// Flag: commit the file (it becomes immutable and final).
pub const BS_COMMIT: u32 = 0x1;
/// Flag: commit only once the file is on disk (with [`BS_COMMIT`]).
pub const BS_SAFETY: u32 = 0x2;

/// Largest piece of a file in one request or reply.
pub const BS_IO_MAX: usize = 1 << 20;

/// How the server's disk is used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BulletStats {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks for file data.
    pub data_blocks: u64,
    /// Data blocks free now.
    pub free_blocks: u64,
    /// Blocks of destroyed or moved files, free once the next sync is done.
    pub waiting_blocks: u64,
    /// Blocks the committed files take.
    pub used_blocks: u64,
    /// Committed files.
    pub files: u64,
    /// Files being written (uncommitted, in memory only).
    pub uncommitted: u64,
    /// Blocks of the largest free run.
    pub largest_hole: u64,
    /// Bytes of the largest file the server would take now: the longest run it can
    /// make (compacting, and reusing blocks that wait for a sync), at most
    /// `max_file_size`.
    pub largest_file: u64,
    /// Bytes of the largest file the server takes at all.
    pub max_file_size: u64,
    /// The most files the server holds (its inodes).
    pub max_files: u64,
}

crate::interface! {
    /// Files.
    pub mod bullet {
        /// A new file holding `data` (flags: `BS_COMMIT`, `BS_SAFETY`); its owner capability.
        fn create as BS_CREATE = 2000, server(Rights::CREATE) (flags: extra<u32>, data: bytes) -> (file: cap);
        /// `size` bytes at `offset` (fewer at the end of the file, and at most
        /// `BS_IO_MAX` in one reply).
        fn read as BS_READ = 2001, object(Rights::READ) (offset: offset<u64>, size: size<u32>)
            -> (data: bytes) limit size;
        /// The file's size.
        fn size as BS_SIZE = 2002, object(Rights::READ) () -> (size: offset<u64>);
        /// Replace bytes at `offset` (extending the file if they reach past its end).
        fn modify as BS_MODIFY = 2003, object(Rights::READ | Rights::MODIFY)
            (offset: offset<u64>, flags: extra<u32>, data: bytes) -> (file: cap);
        /// Insert bytes at `offset`.
        fn insert as BS_INSERT = 2004, object(Rights::READ | Rights::MODIFY)
            (offset: offset<u64>, flags: extra<u32>, data: bytes) -> (file: cap);
        /// Remove `length` bytes at `offset`.
        fn delete as BS_DELETE = 2005, object(Rights::READ | Rights::MODIFY)
            (offset: offset<u64>, length: size<u32>, flags: extra<u32>) -> (file: cap);
        /// Everything committed goes to disk.
        fn sync as BS_SYNC = 2006, any() () -> ();
        /// How the disk is used.
        fn stats as BS_STATS = 2007, server(Rights::READ) () -> (stats: data<BulletStats>);
        /// A new uncommitted file of `size` bytes, its blocks taken now as one
        /// contiguous run; its owner capability. `NoSpace` when no run that long can
        /// be made (`stats` says how long one can), `Overflow` above the largest file.
        fn reserve as BS_RESERVE = 2008, server(Rights::CREATE) (size: offset<u64>) -> (file: cap);
        /// Put `data` at `offset` of a reserved file, straight onto its blocks:
        /// `offset` a multiple of the block size (any multiple of `BS_IO_MAX` is) and
        /// at most the bytes written so far, `data` whole blocks unless it ends the file.
        fn write as BS_WRITE = 2009, object(Rights::MODIFY) (offset: offset<u64>, data: bytes) -> ();
        /// Commit a reserved file once all of it is written (flags: `BS_SAFETY`).
        fn commit as BS_COMMIT_FILE = 2010, object(Rights::MODIFY) (flags: extra<u32>) -> ();
    }
}
