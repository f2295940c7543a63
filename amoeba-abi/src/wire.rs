//! Bounds-checked big-endian cursors for the wire formats built on this ABI
//! (pool control frames, group packets, the directory's encodings): each
//! format adds its own fields on top and turns [`Truncated`] into its own
//! error, so no format reads past its bytes or packs integers by hand.

use alloc::vec::Vec;

/// The bytes ran out before the value did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated;

/// Reads big-endian values from a slice, front to back.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.bytes.len() < n {
            return Err(Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian 24-bit value.
    pub fn u24(&mut self) -> Result<u32, Truncated> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, Truncated> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian 48-bit value.
    pub fn u48(&mut self) -> Result<u64, Truncated> {
        let six: [u8; 6] = self.array()?;
        let mut eight = [0u8; 8];
        eight[2..].copy_from_slice(&six);
        Ok(u64::from_be_bytes(eight))
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no byte is left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Appends big-endian values to a buffer.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Writer {
    /// A writer that starts with `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A big-endian 48-bit value (the low 48 bits of `v`).
    pub fn u48(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes()[2..]);
    }

    /// A big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Raw bytes, no length.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_short_input_is_truncated() {
        let mut w = Writer::default();
        w.u8(1);
        w.u16(0x0203);
        w.u32(0x0405_0607);
        w.u48(0x0809_0a0b_0c0d);
        w.u64(u64::MAX - 1);
        w.raw(b"xy");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(0x0203));
        assert_eq!(r.u32(), Ok(0x0405_0607));
        assert_eq!(r.u48(), Ok(0x0809_0a0b_0c0d));
        assert_eq!(r.u64(), Ok(u64::MAX - 1));
        assert_eq!(r.remaining(), 2);
        assert_eq!(r.u24(), Err(Truncated));
        assert_eq!(r.rest(), b"xy");
        assert!(r.is_empty());
        assert_eq!(Reader::new(&[0, 0, 1]).u24(), Ok(1));
    }
}
