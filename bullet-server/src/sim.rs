//! A simulated disk for host tests: a [`BlockDevice`] with a volatile write cache
//! that can crash at a chosen operation. At the crash, any subset of the writes since
//! the last flush may be lost (each block of each write independently, so a block may
//! end up with any version written since that flush), and the write in flight is torn:
//! a prefix of its blocks lands, the next block holds garbage or a mix of old and new
//! 512-byte sectors, the rest is lost.
//!
//! Also [`SplitMix64`], the small seeded generator the simulations use.

use alloc::vec;
use alloc::vec::Vec;

use crate::device::{BlockDevice, DiskError};

pub use sim_support::SplitMix64;

/// The unit of sector tearing inside a larger block.
const SECTOR: usize = 512;

/// Operation counts of a [`SimDisk`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// `read` calls.
    pub reads: u64,
    /// `write` calls.
    pub writes: u64,
    /// `flush` calls.
    pub flushes: u64,
    /// Blocks read.
    pub blocks_read: u64,
    /// Blocks written.
    pub blocks_written: u64,
}

struct Write {
    first_block: u64,
    data: Vec<u8>,
}

/// A disk in memory with a volatile write cache and crashes on demand.
pub struct SimDisk {
    block_size: usize,
    block_count: u64,
    max_transfer: usize,
    /// What survives a crash for certain.
    media: Vec<u8>,
    /// What reads see: the media with the unflushed writes applied.
    view: Vec<u8>,
    unflushed: Vec<Write>,
    in_flight: Option<Write>,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    stats: DiskStats,
}

impl SimDisk {
    /// A zeroed disk of `block_count` blocks of `block_size` bytes (a multiple of
    /// 512), moving at most 1 MiB per call.
    pub fn new(block_size: usize, block_count: u64) -> SimDisk {
        assert!(
            block_size >= SECTOR && block_size.is_multiple_of(SECTOR),
            "block size must be whole sectors"
        );
        let bytes = block_size * block_count as usize;
        SimDisk {
            block_size,
            block_count,
            max_transfer: 1 << 20,
            media: vec![0; bytes],
            view: vec![0; bytes],
            unflushed: Vec::new(),
            in_flight: None,
            ops: 0,
            crash_at: None,
            crashed: false,
            stats: DiskStats::default(),
        }
    }

    /// Limit every transfer to `bytes` (rounded down to whole blocks, at least one).
    pub fn with_max_transfer(mut self, bytes: usize) -> SimDisk {
        self.max_transfer = (bytes / self.block_size).max(1) * self.block_size;
        self
    }

    /// Crash at the operation `n` operations from now (0: the very next one fails).
    pub fn crash_after(&mut self, n: u64) {
        self.crash_at = Some(self.ops + n);
    }

    /// Has the disk crashed (every operation fails until [`SimDisk::restart`])?
    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    /// Operations attempted so far (reads, writes, flushes), crashed ones included.
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Operation counts.
    pub fn stats(&self) -> DiskStats {
        self.stats
    }

    /// Writes not yet flushed.
    pub fn unflushed_writes(&self) -> usize {
        self.unflushed.len()
    }

    /// Cut the power (whether or not the disk crashed at an operation) and bring it
    /// back: `rng` decides which unflushed writes reached the media and how the write
    /// in flight tore. Afterwards reads see exactly the media.
    pub fn restart(&mut self, rng: &mut SplitMix64) {
        for w in core::mem::take(&mut self.unflushed) {
            match rng.below(3) {
                0 => {}
                1 => self.land(&w, || true),
                _ => self.land(&w, || rng.chance_ratio(1, 2)),
            }
        }
        if let Some(w) = self.in_flight.take() {
            self.tear(&w, rng);
        }
        self.view.copy_from_slice(&self.media);
        self.crash_at = None;
        self.crashed = false;
    }

    /// What reads see now: every block, the unflushed writes included (tests that
    /// the disk was left unchanged).
    pub fn contents(&self) -> &[u8] {
        &self.view
    }

    /// Overwrite `bytes` of block `block` on the media and in the view, as damage at
    /// rest would (tests of what mount refuses).
    pub fn damage(&mut self, block: u64, bytes: &[u8]) {
        let at = block as usize * self.block_size;
        self.media[at..at + bytes.len()].copy_from_slice(bytes);
        self.view[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Copy the blocks of `w` for which `keep` says so onto the media.
    fn land(&mut self, w: &Write, mut keep: impl FnMut() -> bool) {
        for (i, block) in w.data.chunks(self.block_size).enumerate() {
            if keep() {
                let at = (w.first_block as usize + i) * self.block_size;
                self.media[at..at + self.block_size].copy_from_slice(block);
            }
        }
    }

    /// The write in flight: a prefix lands, the next block is garbage or a mix of old
    /// and new sectors, the rest is lost.
    fn tear(&mut self, w: &Write, rng: &mut SplitMix64) {
        let bs = self.block_size;
        let blocks = w.data.len() / bs;
        let landed = rng.below(blocks as u64 + 1) as usize;
        let at = w.first_block as usize * bs;
        self.media[at..at + landed * bs].copy_from_slice(&w.data[..landed * bs]);
        if landed == blocks {
            return;
        }
        let torn = &mut self.media[at + landed * bs..at + (landed + 1) * bs];
        if rng.chance_ratio(1, 2) {
            rng.fill(torn);
        } else {
            let new = &w.data[landed * bs..(landed + 1) * bs];
            for (old, new) in torn.chunks_mut(SECTOR).zip(new.chunks(SECTOR)) {
                if rng.chance_ratio(1, 2) {
                    old.copy_from_slice(new);
                }
            }
        }
    }

    /// Count an operation; true if the disk crashes at it.
    fn crashes_now(&mut self) -> bool {
        let now = self.ops;
        self.ops += 1;
        if self.crash_at == Some(now) {
            self.crashed = true;
        }
        self.crashed
    }

    /// Start an operation: fails if the disk has crashed or crashes now.
    fn begin(&mut self) -> Result<(), DiskError> {
        if self.crashed || self.crashes_now() { Err(DiskError::Io) } else { Ok(()) }
    }

    /// The byte range of a transfer, if it is whole blocks within the disk and the
    /// transfer limit.
    fn span(&self, first_block: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        if len == 0 || !len.is_multiple_of(self.block_size) || len > self.max_transfer {
            return Err(DiskError::BadLength);
        }
        let blocks = (len / self.block_size) as u64;
        if first_block.checked_add(blocks).is_none_or(|end| end > self.block_count) {
            return Err(DiskError::OutOfRange);
        }
        let at = first_block as usize * self.block_size;
        Ok(at..at + len)
    }
}

impl BlockDevice for SimDisk {
    fn block_size(&self) -> usize {
        self.block_size
    }

    fn block_count(&self) -> u64 {
        self.block_count
    }

    fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    fn read(&mut self, first_block: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let span = self.span(first_block, buf.len())?;
        self.begin()?;
        buf.copy_from_slice(&self.view[span]);
        self.stats.reads += 1;
        self.stats.blocks_read += (buf.len() / self.block_size) as u64;
        Ok(())
    }

    fn write(&mut self, first_block: u64, data: &[u8]) -> Result<(), DiskError> {
        let span = self.span(first_block, data.len())?;
        if self.crashed {
            return Err(DiskError::Io);
        }
        if self.crashes_now() {
            self.in_flight = Some(Write { first_block, data: data.to_vec() });
            return Err(DiskError::Io);
        }
        self.view[span].copy_from_slice(data);
        self.unflushed.push(Write { first_block, data: data.to_vec() });
        self.stats.writes += 1;
        self.stats.blocks_written += (data.len() / self.block_size) as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.begin()?;
        for w in core::mem::take(&mut self.unflushed) {
            self.land(&w, || true);
        }
        self.stats.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(disk: &mut SimDisk, n: u64) -> Vec<u8> {
        let mut b = vec![0; disk.block_size];
        disk.read(n, &mut b).unwrap();
        b
    }

    #[test]
    fn transfers_are_checked() {
        let mut d = SimDisk::new(512, 8).with_max_transfer(1024);
        assert_eq!(d.write(0, &[0; 100]), Err(DiskError::BadLength));
        assert_eq!(d.write(0, &[0; 1536]), Err(DiskError::BadLength));
        assert_eq!(d.write(7, &[0; 1024]), Err(DiskError::OutOfRange));
        assert_eq!(d.read(u64::MAX, &mut [0; 512]), Err(DiskError::OutOfRange));
        assert_eq!(d.write(6, &[1; 1024]), Ok(()));
        assert_eq!(block(&mut d, 7), vec![1; 512]);
        assert_eq!(d.stats().writes, 1);
    }

    #[test]
    fn a_crash_fails_every_operation_until_restart() {
        let mut d = SimDisk::new(512, 8);
        d.crash_after(2);
        assert!(d.write(0, &[1; 512]).is_ok());
        assert!(d.flush().is_ok());
        assert_eq!(d.write(1, &[2; 512]), Err(DiskError::Io));
        assert!(d.is_crashed());
        assert_eq!(d.read(0, &mut [0; 512]), Err(DiskError::Io));
        assert_eq!(d.flush(), Err(DiskError::Io));
        d.restart(&mut SplitMix64::new(1));
        assert!(!d.is_crashed());
        assert_eq!(block(&mut d, 0), vec![1; 512], "flushed before the crash");
    }

    /// Over many restarts, each kind of damage the crash model promises shows up,
    /// and flushed data never changes.
    #[test]
    fn restarts_lose_keep_and_tear() {
        let (mut lost, mut landed, mut partial) = (0, 0, 0);
        let (mut garbage, mut mixed) = (0, 0);
        for seed in 0..400 {
            let mut d = SimDisk::new(2048, 8);
            d.write(0, &[9; 2048]).unwrap();
            d.flush().unwrap();
            d.write(1, &[1; 4096]).unwrap(); // unflushed, two blocks
            d.crash_after(0);
            assert!(d.write(4, &[2; 4096]).is_err()); // in flight, two blocks
            d.restart(&mut SplitMix64::new(seed));
            assert_eq!(block(&mut d, 0), vec![9; 2048]);
            match (block(&mut d, 1) == [1; 2048], block(&mut d, 2) == [1; 2048]) {
                (false, false) => lost += 1,
                (true, true) => landed += 1,
                _ => partial += 1,
            }
            for b in [block(&mut d, 4), block(&mut d, 5)] {
                let sectors: Vec<_> = b
                    .chunks(SECTOR)
                    .map(|s| (s.iter().all(|&x| x == 2), s.iter().all(|&x| x == 0)))
                    .collect();
                if sectors.iter().any(|&(new, old)| !new && !old) {
                    garbage += 1;
                } else if sectors.iter().any(|s| s.0) && sectors.iter().any(|s| s.1) {
                    mixed += 1;
                }
            }
        }
        for (what, n) in
            [("lost", lost), ("landed", landed), ("partial", partial), ("garbage", garbage), ("mixed", mixed)]
        {
            assert!(n > 10, "{what} happened only {n} times");
        }
    }
}
