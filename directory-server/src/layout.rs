//! Where the directory service keeps its identity and its replicas' anchors on
//! the disk area the host reserves for it, and the ports it derives from its
//! identity.
//!
//! The area's first block holds the service's [`Identity`]: the random check of
//! its super capability, from which every port of the service follows (so the
//! service answers on the same put-port after any restart), and the root
//! directory's capability once the host has made one. Then one slot per replica,
//! each two anchor halves long; every half starts with the length of the anchor
//! it holds (0: never written).

use alloc::vec::Vec;

use amoeba::{Capability, Check, GetPort, Port};
use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};

/// Most replicas the layout has room for.
pub const MAX_REPLICAS: u8 = 3;
/// Blocks of one anchor half.
pub const HALF_BLOCKS: u64 = 10;
/// Blocks of one replica's slot (two halves and one spare).
pub const SLOT_BLOCKS: u64 = 2 * HALF_BLOCKS + 1;
/// The identity block, then the slots.
pub const AREA_BLOCKS: u64 = 1 + MAX_REPLICAS as u64 * SLOT_BLOCKS;
/// Bytes before an anchor in its half (its length).
pub const HALF_HEADER: usize = 4;

/// First block of replica `replica`'s slot, within the area.
pub fn slot_first_block(replica: u8) -> u64 {
    1 + replica as u64 * SLOT_BLOCKS
}

/// The longest anchor a half of `block_size`-byte blocks holds.
pub fn anchor_len(block_size: usize) -> usize {
    HALF_BLOCKS as usize * block_size - HALF_HEADER
}

/// A half's contents for `anchor` (length first), padded to whole blocks.
pub fn encode_half(anchor: &[u8], block_size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HALF_HEADER + anchor.len() + block_size);
    out.extend_from_slice(&(anchor.len() as u32).to_be_bytes());
    out.extend_from_slice(anchor);
    out.resize(out.len().div_ceil(block_size.max(1)) * block_size, 0);
    out
}

/// The anchor bytes of a half read from disk; `None` if it was never written
/// (or its length is impossible: a torn write of the length itself).
pub fn decode_half(half: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(half.get(..HALF_HEADER)?.try_into().ok()?) as usize;
    if len == 0 {
        return None;
    }
    half.get(HALF_HEADER..HALF_HEADER + len)
}

const IDENTITY_MAGIC: &[u8; 4] = b"DIRI";
const CHECKSUM_LEN: usize = 8;

fn derive(label: &[u8], random: &Check, index: u8) -> GetPort {
    let digest = Sha256::new().chain_update(label).chain_update(random.0).chain_update([index]).finalize();
    let mut port = [0u8; 6];
    port.copy_from_slice(&digest[..6]);
    GetPort(Port(port))
}

/// Who the service is: everything the host keeps to find it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The random check of the service's super capability (object 0).
    pub super_random: Check,
    /// The root directory's owner capability, once made.
    pub root: Option<Capability>,
}

impl Identity {
    /// A new service whose super capability has check `super_random`.
    pub fn new(super_random: Check) -> Identity {
        Identity { super_random, root: None }
    }

    /// The private get-port every replica serves clients on.
    pub fn service_get_port(&self) -> GetPort {
        derive(b"directory service", &self.super_random, 0)
    }

    /// The service's put-port: every directory capability names it.
    pub fn port(&self) -> Port {
        self.service_get_port().put_port()
    }

    /// The super capability (owner rights): creates directories, ages them.
    pub fn super_capability(&self) -> Capability {
        Capability::owner(self.port(), 0, self.super_random)
    }

    /// The get-port of the replicas' group.
    pub fn group_get_port(&self) -> GetPort {
        derive(b"directory group", &self.super_random, 0)
    }

    /// The get-port replica `index` alone serves (peer messages, and questions for
    /// that replica only).
    pub fn replica_get_port(&self, index: u8) -> GetPort {
        derive(b"directory replica", &self.super_random, index)
    }

    /// The capability for replica `index`'s own port (object 0, owner rights).
    pub fn replica_capability(&self, index: u8) -> Capability {
        Capability::owner(self.replica_get_port(index).put_port(), 0, self.super_random)
    }

    /// The identity block's contents (sealed with a checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(IDENTITY_MAGIC);
        w.u8(crate::codec::FORMAT_VERSION);
        w.raw(&self.super_random.0);
        match &self.root {
            None => w.u8(0),
            Some(root) => {
                w.u8(1);
                w.cap(root);
            }
        }
        let digest = Sha256::digest(&w.buf);
        w.raw(&digest[..CHECKSUM_LEN]);
        w.buf
    }

    /// Reads an identity block; `Ok(None)` if it holds none (a new disk).
    pub fn decode(block: &[u8]) -> Result<Option<Identity>, DecodeError> {
        if block.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        let mut r = Reader::new(block);
        if r.take(4)? != IDENTITY_MAGIC {
            return Err(DecodeError::Tag);
        }
        if r.u8()? != crate::codec::FORMAT_VERSION {
            return Err(DecodeError::Version);
        }
        let super_random = r.check()?;
        let root = match r.u8()? {
            0 => None,
            1 => Some(r.cap()?),
            _ => return Err(DecodeError::Tag),
        };
        let body_len = block.len() - r.remaining();
        let sum = r.take(CHECKSUM_LEN)?;
        if Sha256::digest(&block[..body_len])[..CHECKSUM_LEN] != *sum {
            return Err(DecodeError::Invalid);
        }
        Ok(Some(Identity { super_random, root }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_refuses_damage() {
        let mut id = Identity::new(Check([1, 2, 3, 4, 5, 6]));
        let mut block = id.encode();
        block.resize(512, 0);
        assert_eq!(Identity::decode(&block), Ok(Some(id)));
        id.root = Some(Capability::owner(id.port(), 1, Check([9; 6])));
        let mut block = id.encode();
        block.resize(512, 0);
        assert_eq!(Identity::decode(&block), Ok(Some(id)));
        block[7] ^= 1;
        assert!(Identity::decode(&block).is_err());
        assert_eq!(Identity::decode(&[0; 512]), Ok(None));
    }

    #[test]
    fn ports_differ_and_follow_from_the_random_alone() {
        let id = Identity::new(Check([7; 6]));
        let ports = [
            id.port(),
            id.group_get_port().put_port(),
            id.replica_get_port(0).put_port(),
            id.replica_get_port(1).put_port(),
        ];
        for (i, a) in ports.iter().enumerate() {
            assert!(ports[i + 1..].iter().all(|b| a != b));
        }
        assert_eq!(Identity::new(Check([7; 6])).super_capability(), id.super_capability());
        assert_ne!(Identity::new(Check([8; 6])).port(), id.port());
    }

    #[test]
    fn halves_hold_their_length() {
        let half = encode_half(b"anchor", 512);
        assert_eq!(half.len(), 512);
        assert_eq!(decode_half(&half), Some(&b"anchor"[..]));
        assert_eq!(decode_half(&[0; 512]), None);
        let mut torn = half.clone();
        torn[..4].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(decode_half(&torn), None);
        assert!(anchor_len(512) >= crate::persist::PersistConfig::default().min_anchor_len());
    }
}
