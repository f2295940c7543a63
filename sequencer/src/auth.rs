//! The keyed hashes that let a member tell the group's packets from a
//! hostile station's, and let a joiner prove it holds a capability without
//! showing it. All are SHA-256 (`sha2`), keyed by prefixing the key and
//! truncated; a truncated tag gives away too little of the hash's state for
//! length extension. See the crate docs ("Protection") for the protocol.

use alloc::vec::Vec;
use amoeba_abi::Check;
use sha2::{Digest, Sha256};

use crate::wire::{DecodeError, Packet, TAG_LEN};

/// A 256-bit key for [`seal`] and [`open`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Keys stay out of debug dumps.
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key nobody can use (all zeros): what a member holds before it
    /// joins and after it is gone.
    pub const NONE: Key = Key([0; 32]);
}

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The key every member of the group on `port` with secret check `secret`
/// (the random part of its owner capability) tags its packets with.
pub fn group_key(port: u64, secret: &Check) -> Key {
    Key(hash(&[b"amoeba sequencer group key", &port.to_be_bytes(), &secret.0]))
}

/// The key of one capability for the group on `port`: the one its check
/// field gives. The joiner tags its proof with it, the sequencer (which
/// computes the check from the group's secret) its answers.
pub fn capability_key(port: u64, check: &Check) -> Key {
    Key(hash(&[b"amoeba sequencer capability key", &port.to_be_bytes(), &check.0]))
}

/// The tag of a packet whose encoding (without its tag) is `unsealed`,
/// sent from address `from`.
pub fn tag(key: &Key, from: u64, unsealed: &[u8]) -> [u8; TAG_LEN] {
    let digest = hash(&[&key.0, &from.to_be_bytes(), unsealed]);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&digest[..TAG_LEN]);
    t
}

/// `packet`, encoded and tagged with `key` as sent from address `from`.
pub fn seal(key: &Key, from: u64, packet: &Packet) -> Vec<u8> {
    let mut bytes = packet.encode_unsealed();
    let t = tag(key, from, &bytes);
    bytes.extend_from_slice(&t);
    bytes
}

/// Whether `bytes` (a whole packet, tag last) carries the tag `key` gives
/// it as sent from `from`. Constant time in the tag.
pub fn verify(key: &Key, from: u64, bytes: &[u8]) -> bool {
    let Some(split) = bytes.len().checked_sub(TAG_LEN) else { return false };
    let expected = tag(key, from, &bytes[..split]);
    let mut diff = 0u8;
    for (a, b) in expected.iter().zip(&bytes[split..]) {
        diff |= a ^ b;
    }
    core::hint::black_box(diff) == 0 && *key != Key::NONE
}

/// Decodes `bytes` and checks its tag with `key`: the packet, or `None` if
/// the tag is wrong.
pub fn open(key: &Key, from: u64, bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    let packet = Packet::decode(bytes)?;
    Ok(verify(key, from, bytes).then_some(packet))
}

/// What the group's secret is XORed with in a welcome: only the holder of
/// the capability (`key`) that asked, in the join attempt `nonce`, to
/// address `to`, can take it off.
pub fn welcome_pad(key: &Key, nonce: u64, to: u64) -> [u8; 6] {
    let digest = hash(&[b"amoeba sequencer welcome", &key.0, &nonce.to_be_bytes(), &to.to_be_bytes()]);
    let mut pad = [0u8; 6];
    pad.copy_from_slice(&digest[..6]);
    pad
}

/// The digest of a BB payload, by which the sequencer's accept names the
/// one payload it ordered.
pub fn digest(payload: &[u8]) -> [u8; 8] {
    let d = hash(&[b"amoeba sequencer bb payload", payload]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Body, Header};

    #[test]
    fn a_tag_binds_key_sender_and_every_byte() {
        let key = group_key(7, &Check([1, 2, 3, 4, 5, 6]));
        let p = Packet {
            header: Header { port: 7, inc: 1, src: 2, to: 0 },
            body: Body::Ack { ack: 5, stable: 4, flags: 0 },
        };
        let bytes = seal(&key, 0x10, &p);
        assert_eq!(open(&key, 0x10, &bytes), Ok(Some(p)));
        assert_eq!(open(&key, 0x11, &bytes), Ok(None), "another sender");
        let other = group_key(7, &Check([1, 2, 3, 4, 5, 7]));
        assert_eq!(open(&other, 0x10, &bytes), Ok(None), "another key");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(!verify(&key, 0x10, &b), "byte {i} flipped");
        }
        assert!(!verify(&Key::NONE, 0x10, &seal(&Key::NONE, 0x10, &Packet::decode(&bytes).unwrap())));
    }
}
