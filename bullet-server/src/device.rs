//! The block device the store runs over, and the chunked transfers the store issues
//! on it. On a board the device is the nucleus's disk object reached by RPC; on the
//! host it is [`crate::sim::SimDisk`]. The store always moves whole contiguous runs of
//! blocks, split only where the device's transfer limit demands.

use core::fmt;

/// Why a device operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The blocks lie (partly) beyond the end of the device.
    OutOfRange,
    /// The buffer is not a whole number of blocks, or exceeds the transfer limit.
    BadLength,
    /// The device failed (I/O error, lost connection, simulated crash).
    Io,
    /// No memory for a transfer's buffer.
    NoMemory,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskError::OutOfRange => "block number beyond the end of the disk",
            DiskError::BadLength => "transfer is not a whole number of blocks or too large",
            DiskError::Io => "disk i/o error",
            DiskError::NoMemory => "no memory for the transfer",
        })
    }
}

impl core::error::Error for DiskError {}

/// A disk of fixed-size blocks with a volatile write cache: writes become durable only
/// after [`BlockDevice::flush`] returns.
///
/// Reads always see the latest writes. `buf.len()` and `data.len()` are whole multiples
/// of [`BlockDevice::block_size`] and at most [`BlockDevice::max_transfer`] bytes.
pub trait BlockDevice {
    /// Bytes per block (512 for virtio-blk sectors).
    fn block_size(&self) -> usize;
    /// Number of blocks on the device.
    fn block_count(&self) -> u64;
    /// Largest number of bytes one `read` or `write` may carry (a multiple of the
    /// block size). The store splits longer runs into calls of this size.
    fn max_transfer(&self) -> usize {
        1 << 20
    }
    /// Read `buf.len() / block_size` blocks starting at `first_block`.
    fn read(&mut self, first_block: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Write `data.len() / block_size` blocks starting at `first_block`.
    fn write(&mut self, first_block: u64, data: &[u8]) -> Result<(), DiskError>;
    /// Make every completed write durable.
    fn flush(&mut self) -> Result<(), DiskError>;
}

impl<D: BlockDevice + ?Sized> BlockDevice for &mut D {
    fn block_size(&self) -> usize {
        (**self).block_size()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn max_transfer(&self) -> usize {
        (**self).max_transfer()
    }
    fn read(&mut self, first_block: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read(first_block, buf)
    }
    fn write(&mut self, first_block: u64, data: &[u8]) -> Result<(), DiskError> {
        (**self).write(first_block, data)
    }
    fn flush(&mut self) -> Result<(), DiskError> {
        (**self).flush()
    }
}

/// Bytes per transfer: the device's limit rounded down to whole blocks (at least one).
fn chunk_bytes<D: BlockDevice + ?Sized>(dev: &D) -> usize {
    let bs = dev.block_size();
    (dev.max_transfer() / bs).max(1) * bs
}

/// Read the blocks covering `buf` (whole blocks) from `first_block` on, in as few
/// transfers as the device allows.
pub(crate) fn read_run<D: BlockDevice + ?Sized>(
    dev: &mut D,
    first_block: u64,
    buf: &mut [u8],
) -> Result<(), DiskError> {
    let bs = dev.block_size();
    let step = chunk_bytes(dev);
    for (i, chunk) in buf.chunks_mut(step).enumerate() {
        dev.read(first_block + (i * step / bs) as u64, chunk)?;
    }
    Ok(())
}

/// Write `data` (whole blocks) from `first_block` on, in as few transfers as the
/// device allows.
pub(crate) fn write_run<D: BlockDevice + ?Sized>(
    dev: &mut D,
    first_block: u64,
    data: &[u8],
) -> Result<(), DiskError> {
    let bs = dev.block_size();
    let step = chunk_bytes(dev);
    for (i, chunk) in data.chunks(step).enumerate() {
        dev.write(first_block + (i * step / bs) as u64, chunk)?;
    }
    Ok(())
}

/// A zeroed buffer of `len` bytes, or `NoMemory`.
fn zeroed(len: usize) -> Result<alloc::vec::Vec<u8>, DiskError> {
    let mut buf = alloc::vec::Vec::new();
    buf.try_reserve_exact(len).map_err(|_| DiskError::NoMemory)?;
    buf.resize(len, 0);
    Ok(buf)
}

/// Write `data` (any length) from `first_block` on, the last block padded with zeros.
/// A file that fits one transfer goes in one call (copied into a padded buffer, when
/// there is memory for it); a longer one goes straight from `data`, with only its
/// partial last block copied.
pub(crate) fn write_padded<D: BlockDevice + ?Sized>(
    dev: &mut D,
    first_block: u64,
    data: &[u8],
) -> Result<(), DiskError> {
    let bs = dev.block_size();
    let padded = data.len().div_ceil(bs) * bs;
    if padded <= chunk_bytes(dev)
        && padded != data.len()
        && let Ok(mut buf) = zeroed(padded)
    {
        buf[..data.len()].copy_from_slice(data);
        return dev.write(first_block, &buf);
    }
    let whole = data.len() / bs * bs;
    write_run(dev, first_block, &data[..whole])?;
    if whole < data.len() {
        let mut last = zeroed(bs)?;
        last[..data.len() - whole].copy_from_slice(&data[whole..]);
        dev.write(first_block + (whole / bs) as u64, &last)?;
    }
    Ok(())
}
