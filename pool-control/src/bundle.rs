//! The initial program bundle a board gets as its initrd: named programs
//! (ELF files) that its process server can start.
//!
//! Layout, little endian: magic `AMBUNDLE`, `count: u32`, `reserved: u32`,
//! then `count` entries of `name: [u8; 32]` (NUL padded UTF-8),
//! `offset: u64`, `size: u64`, then the files.

use alloc::vec::Vec;

pub const MAGIC: &[u8; 8] = b"AMBUNDLE";
pub const NAME_LEN: usize = 32;
pub const MAX_ENTRIES: usize = 256;
const HEADER_LEN: usize = 16;
const ENTRY_LEN: usize = NAME_LEN + 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleError {
    BadMagic,
    Truncated,
    TooManyEntries,
    BadName,
    OutOfBounds,
}

/// A parsed bundle borrowing the bytes it came from.
#[derive(Clone, Copy, Debug)]
pub struct Bundle<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, BundleError> {
    let b = bytes.get(at..at + 8).ok_or(BundleError::Truncated)?;
    Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl<'a> Bundle<'a> {
    /// Checks the whole table: afterwards every entry is in bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BundleError> {
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(BundleError::BadMagic);
        }
        let count = bytes.get(8..12).ok_or(BundleError::Truncated)?;
        let count = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
        if count > MAX_ENTRIES {
            return Err(BundleError::TooManyEntries);
        }
        if bytes.len() < HEADER_LEN + count * ENTRY_LEN {
            return Err(BundleError::Truncated);
        }
        let bundle = Self { bytes, count };
        for index in 0..count {
            bundle.entry(index)?;
        }
        Ok(bundle)
    }

    fn entry(&self, index: usize) -> Result<(&'a str, &'a [u8]), BundleError> {
        let at = HEADER_LEN + index * ENTRY_LEN;
        let raw_name = self.bytes.get(at..at + NAME_LEN).ok_or(BundleError::Truncated)?;
        let name_len = raw_name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let name = core::str::from_utf8(&raw_name[..name_len]).map_err(|_| BundleError::BadName)?;
        if name.is_empty() {
            return Err(BundleError::BadName);
        }
        let offset =
            usize::try_from(u64_at(self.bytes, at + NAME_LEN)?).map_err(|_| BundleError::OutOfBounds)?;
        let size =
            usize::try_from(u64_at(self.bytes, at + NAME_LEN + 8)?).map_err(|_| BundleError::OutOfBounds)?;
        let end = offset.checked_add(size).ok_or(BundleError::OutOfBounds)?;
        let data = self.bytes.get(offset..end).ok_or(BundleError::OutOfBounds)?;
        Ok((name, data))
    }

    /// The programs, in bundle order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        (0..self.count).filter_map(|index| self.entry(index).ok())
    }

    pub fn find(&self, name: &str) -> Option<&'a [u8]> {
        self.entries().find(|(entry, _)| *entry == name).map(|(_, data)| data)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Builds a bundle. Names must be 1..=32 bytes.
pub fn build(programs: &[(&str, &[u8])]) -> Result<Vec<u8>, BundleError> {
    if programs.len() > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries);
    }
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(programs.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut offset = HEADER_LEN + programs.len() * ENTRY_LEN;
    for (name, data) in programs {
        if name.is_empty() || name.len() > NAME_LEN {
            return Err(BundleError::BadName);
        }
        let mut raw_name = [0u8; NAME_LEN];
        raw_name[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&raw_name);
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        offset += data.len();
    }
    for (_, data) in programs {
        out.extend_from_slice(data);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_bundles_parse_back() {
        let bytes = build(&[("hello", b"ELF one"), ("counter", b""), ("x", b"three")]).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.len(), 3);
        assert_eq!(bundle.find("hello"), Some(&b"ELF one"[..]));
        assert_eq!(bundle.find("counter"), Some(&b""[..]));
        assert_eq!(bundle.find("missing"), None);
    }

    #[test]
    fn damaged_bundles_are_refused() {
        let mut bytes = build(&[("hello", b"data")]).unwrap();
        assert_eq!(Bundle::parse(&bytes[..20]).unwrap_err(), BundleError::Truncated);
        assert_eq!(Bundle::parse(b"NOTABUNDLE......").unwrap_err(), BundleError::BadMagic);
        // Point the entry past the end.
        bytes[16 + NAME_LEN] = 0xff;
        assert_eq!(Bundle::parse(&bytes).unwrap_err(), BundleError::OutOfBounds);
        assert_eq!(build(&[("", b"")]).unwrap_err(), BundleError::BadName);
        assert_eq!(build(&[(&"n".repeat(33), b"")]).unwrap_err(), BundleError::BadName);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            for candidate in [&bytes, &with_magic] {
                if let Ok(bundle) = Bundle::parse(candidate) {
                    for (_, data) in bundle.entries() {
                        prop_assert!(data.len() <= candidate.len());
                    }
                }
            }
        }
    }
}
