//! Where the directory service keeps its identity and its replicas' anchors on
//! the disk area the host reserves for it, and the ports its identity holds.
//!
//! The service's [`Identity`] is the random check of its super capability, the
//! service's get-ports ([`Ports`]: the service port, the replicas' group, and one
//! port per replica, each its own random, so the service answers on the same
//! put-ports after any restart), the check of the replicas' capabilities, and the
//! root directory's capability once the host has made one. No get-port follows
//! from a capability: capabilities travel in requests (a peer `deliver` carries the
//! replica capability), get-ports must not. Losing the identity makes the whole
//! name space unreachable, every file intact, so it is kept in [`IDENTITY_COPIES`]
//! places, each sealed with a checksum: the area's first block, and the last block
//! of every replica's slot. One bad block (the disk's first sector zeroed, say)
//! leaves three good copies; [`choose_identity`] decides from what the host read
//! which copy to believe, which to rewrite, and when to refuse rather than make a
//! new identity over a disk that holds directory state.
//!
//! An identity written by the older layout (version 1: every get-port derived from
//! the super capability's check, and put-ports under the F of that time, before the
//! locate proof) is refused with [`IdentityError::OldLayout`]: the capabilities its
//! directories hold name put-ports nothing serves any more.
//!
//! ```text
//! block 0                       identity (copy 0)
//! slot r = blocks 1+21r ..      anchor half 0 (10 blocks), half 1 (10 blocks),
//!                               identity (copy r+1, the slot's last block)
//! ```
//!
//! Every anchor half starts with the length of the anchor it holds (0: never
//! written). A replica is handed only its two halves ([`ANCHOR_BLOCKS`]), never
//! the identity copy at the end of its slot.

use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, GetPort, Port};
use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};

/// Most replicas the layout has room for.
pub const MAX_REPLICAS: u8 = 3;
/// Blocks of one anchor half.
pub const HALF_BLOCKS: u64 = 10;
/// Blocks of one replica's anchor (its two halves).
pub const ANCHOR_BLOCKS: u64 = 2 * HALF_BLOCKS;
/// Blocks of one replica's slot (its anchor, then a copy of the identity).
pub const SLOT_BLOCKS: u64 = ANCHOR_BLOCKS + 1;
/// The identity block, then the slots.
pub const AREA_BLOCKS: u64 = 1 + MAX_REPLICAS as u64 * SLOT_BLOCKS;
/// Bytes before an anchor in its half (its length).
pub const HALF_HEADER: usize = 4;

/// Places the identity is kept: block 0 and the last block of every slot.
pub const IDENTITY_COPIES: usize = 1 + MAX_REPLICAS as usize;

/// First block of replica `replica`'s slot, within the area.
pub fn slot_first_block(replica: u8) -> u64 {
    1 + replica as u64 * SLOT_BLOCKS
}

/// The block of identity copy `copy` (0..[`IDENTITY_COPIES`]), within the area.
pub fn identity_block(copy: usize) -> u64 {
    match copy {
        0 => 0,
        c => slot_first_block((c - 1) as u8) + ANCHOR_BLOCKS,
    }
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
/// The identity's own format version (2: [`Ports`] stored, not derived).
const IDENTITY_VERSION: u8 = 2;
/// The version of the older layout, whose get-ports were derived from the super
/// capability's check.
const OLD_IDENTITY_VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 8;

/// The service's get-ports and the replicas' check: each its own random, kept in
/// the identity and handed to the replicas, never derived from anything that
/// travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// The port every replica serves clients on.
    pub service: GetPort,
    /// The replicas' group.
    pub group: GetPort,
    /// The port replica `r` alone serves (peer messages, questions for it only).
    pub replicas: [GetPort; MAX_REPLICAS as usize],
    /// The check of the replicas' capabilities (not the super capability's).
    pub replica_random: Check,
}

impl Ports {
    /// Bytes of [`Ports::encode`].
    pub const ENCODED_LEN: usize = 6 * (3 + MAX_REPLICAS as usize);

    /// New ports, each from six fresh random bytes drawn with `random`.
    pub fn random<E>(mut random: impl FnMut() -> Result<[u8; 6], E>) -> Result<Ports, E> {
        let mut port = || random().map(|b| GetPort(Port(b)));
        Ok(Ports {
            service: port()?,
            group: port()?,
            replicas: [port()?, port()?, port()?],
            replica_random: Check(port()?.0.0),
        })
    }

    /// The ports as bytes: service, group, replicas, replica check.
    pub fn encode(&self) -> [u8; Ports::ENCODED_LEN] {
        let mut b = [0u8; Ports::ENCODED_LEN];
        let parts = [self.service.0.0, self.group.0.0]
            .into_iter()
            .chain(self.replicas.iter().map(|g| g.0.0))
            .chain([self.replica_random.0]);
        for (chunk, part) in b.chunks_exact_mut(6).zip(parts) {
            chunk.copy_from_slice(&part);
        }
        b
    }

    /// Ports from [`Ports::encode`]'s bytes; `None` if the length is wrong.
    pub fn decode(b: &[u8]) -> Option<Ports> {
        if b.len() != Ports::ENCODED_LEN {
            return None;
        }
        let six = |i: usize| -> [u8; 6] {
            let mut p = [0u8; 6];
            p.copy_from_slice(&b[6 * i..6 * i + 6]);
            p
        };
        let port = |i| GetPort(Port(six(i)));
        Some(Ports {
            service: port(0),
            group: port(1),
            replicas: [port(2), port(3), port(4)],
            replica_random: Check(six(5)),
        })
    }

    /// The ports as hexadecimal text (how the host hands them to a replica).
    pub fn to_hex(&self) -> alloc::string::String {
        self.encode().iter().map(|b| alloc::format!("{b:02x}")).collect()
    }

    /// Ports from [`Ports::to_hex`]'s text; `None` if it is not that.
    pub fn from_hex(text: &str) -> Option<Ports> {
        let text = text.as_bytes();
        if text.len() != 2 * Ports::ENCODED_LEN {
            return None;
        }
        let mut b = [0u8; Ports::ENCODED_LEN];
        for (byte, pair) in b.iter_mut().zip(text.chunks_exact(2)) {
            *byte = u8::from_str_radix(core::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Ports::decode(&b)
    }
}

/// Who the service is: everything the host keeps to find it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The random check of the service's super capability (object 0).
    pub super_random: Check,
    /// The service's get-ports and the replicas' check.
    pub ports: Ports,
    /// The root directory's owner capability, once made.
    pub root: Option<Capability>,
}

impl Identity {
    /// A new service whose super capability has check `super_random`, on `ports`.
    pub fn new(super_random: Check, ports: Ports) -> Identity {
        Identity { super_random, ports, root: None }
    }

    /// The private get-port every replica serves clients on.
    pub fn service_get_port(&self) -> GetPort {
        self.ports.service
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
        self.ports.group
    }

    /// The get-port replica `index` alone serves (peer messages, and questions for
    /// that replica only); `index` is below [`MAX_REPLICAS`] (a larger one is taken
    /// modulo it).
    pub fn replica_get_port(&self, index: u8) -> GetPort {
        self.ports.replicas[index as usize % MAX_REPLICAS as usize]
    }

    /// The capability for replica `index`'s own port (object 0, owner rights). Its
    /// check is the replicas' own random: holding it gives nothing over the service.
    pub fn replica_capability(&self, index: u8) -> Capability {
        Capability::owner(self.replica_get_port(index).put_port(), 0, self.ports.replica_random)
    }

    /// The identity block's contents (sealed with a checksum).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(IDENTITY_MAGIC);
        w.u8(IDENTITY_VERSION);
        w.raw(&self.super_random.0);
        w.raw(&self.ports.encode());
        match &self.root {
            None => w.u8(0),
            Some(root) => {
                w.u8(1);
                w.cap(root);
            }
        }
        let digest = Sha256::digest(&w.buf);
        w.raw(&digest[..CHECKSUM_LEN]);
        w.into_bytes()
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
        if r.u8()? != IDENTITY_VERSION {
            return Err(DecodeError::Version);
        }
        let super_random = r.check()?;
        let ports = Ports::decode(r.take(Ports::ENCODED_LEN)?).ok_or(DecodeError::Invalid)?;
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
        Ok(Some(Identity { super_random, ports, root }))
    }

    /// Is `block` an identity sealed by the older layout (version 1)?
    fn is_old_layout(block: &[u8]) -> bool {
        block.get(..4) == Some(&IDENTITY_MAGIC[..]) && block.get(4) == Some(&OLD_IDENTITY_VERSION)
    }
}

/// What one copy of the identity read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityCopy {
    /// A sealed identity.
    Valid(Identity),
    /// All zeros: never written.
    Empty,
    /// Anything else: a bad checksum, garbage.
    Damaged,
    /// An identity in the older layout (get-ports derived from the super check).
    OldLayout,
    /// The disk did not give the block (an I/O error, no answer).
    Unreadable,
}

impl IdentityCopy {
    /// What a block read from the disk holds.
    pub fn of_block(block: &[u8]) -> IdentityCopy {
        match Identity::decode(block) {
            Ok(Some(identity)) => IdentityCopy::Valid(identity),
            Ok(None) => IdentityCopy::Empty,
            Err(_) if Identity::is_old_layout(block) => IdentityCopy::OldLayout,
            Err(_) => IdentityCopy::Damaged,
        }
    }
}

/// What the host is to do, given the identity copies it read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityChoice {
    /// The service's identity, and the copies to write again (damaged, empty, or
    /// written before the root directory was made).
    Found {
        /// The identity to start the service with.
        identity: Identity,
        /// Copy numbers to rewrite with it.
        rewrite: Vec<usize>,
    },
    /// Nothing was ever stored here: a new identity goes into every copy.
    New,
}

/// Why the host must not start the service on this disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// Valid copies name different services, or different roots.
    Disagree,
    /// No copy is valid, and some are in the older layout, whose capabilities name
    /// put-ports nothing serves any more.
    OldLayout,
    /// No copy is valid and these could not be read: whether the identity is
    /// there is not known.
    Unreadable {
        /// Copy numbers.
        copies: Vec<usize>,
    },
    /// No copy is valid, but replicas' anchors hold (or, unreadable, may hold)
    /// directory state: a new identity would make it unreachable for good.
    Lost {
        /// Copies that are damaged (the rest are empty).
        damaged: usize,
        /// The replicas whose anchors hold state.
        anchors: Vec<u8>,
    },
}

impl core::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IdentityError::Disagree => {
                f.write_str("the copies of the directory's identity disagree (they name different services)")
            }
            IdentityError::OldLayout => f.write_str(
                "the directory's identity on this disk is in an older layout (ports derived from the super \
                 capability, put-ports from before the FLIP locate proof), and the capabilities stored in its \
                 directories name ports nothing serves any more",
            ),
            IdentityError::Unreadable { copies } => {
                let copies: Vec<alloc::string::String> =
                    copies.iter().map(|c| alloc::format!("{c}")).collect();
                write!(
                    f,
                    "no copy of the directory's identity could be read as valid, and copies {} could not be \
                     read at all",
                    copies.join(", ")
                )
            }
            IdentityError::Lost { damaged, anchors } => {
                let replicas: Vec<alloc::string::String> =
                    anchors.iter().map(|r| alloc::format!("{r}")).collect();
                let copies = match *damaged {
                    0 => alloc::format!("all {IDENTITY_COPIES} copies are blank"),
                    d if d >= IDENTITY_COPIES => alloc::format!("all {IDENTITY_COPIES} copies are damaged"),
                    d => alloc::format!("{d} of {IDENTITY_COPIES} copies are damaged, the others blank"),
                };
                write!(
                    f,
                    "every copy of the directory's identity is lost ({copies}), but the anchors of \
                     replicas {} hold directory state",
                    replicas.join(", ")
                )
            }
        }
    }
}

/// Decides from the identity copies as read (index: copy number) which identity
/// the service has. Valid copies must agree on the service; one that names the
/// root directory wins over one written before the root was made. Only when no
/// copy is valid is `anchors_with_state` asked which replicas' anchors hold
/// state: none means a new service (a fresh disk, or one whose area is all
/// zeros), any means the name space is there and its identity is lost, so the
/// host must refuse rather than write a new identity over it.
pub fn choose_identity(
    copies: &[IdentityCopy],
    anchors_with_state: impl FnOnce() -> Vec<u8>,
) -> Result<IdentityChoice, IdentityError> {
    let valid: Vec<Identity> = copies
        .iter()
        .filter_map(|c| if let IdentityCopy::Valid(id) = c { Some(*id) } else { None })
        .collect();
    let Some(first) = valid.first() else {
        let unreadable: Vec<usize> =
            (0..copies.len()).filter(|c| copies[*c] == IdentityCopy::Unreadable).collect();
        if !unreadable.is_empty() {
            return Err(IdentityError::Unreadable { copies: unreadable });
        }
        if copies.contains(&IdentityCopy::OldLayout) {
            return Err(IdentityError::OldLayout);
        }
        let anchors = anchors_with_state();
        if anchors.is_empty() {
            return Ok(IdentityChoice::New);
        }
        let damaged = copies.iter().filter(|c| **c == IdentityCopy::Damaged).count();
        return Err(IdentityError::Lost { damaged, anchors });
    };
    if valid.iter().any(|id| id.super_random != first.super_random) {
        return Err(IdentityError::Disagree);
    }
    let roots: Vec<Capability> = valid.iter().filter_map(|id| id.root).collect();
    if roots.iter().any(|root| *root != roots[0]) {
        return Err(IdentityError::Disagree);
    }
    if valid.iter().any(|id| id.ports != first.ports) {
        return Err(IdentityError::Disagree);
    }
    let identity = Identity { root: roots.first().copied(), ..*first };
    let rewrite =
        (0..IDENTITY_COPIES).filter(|c| copies.get(*c) != Some(&IdentityCopy::Valid(identity))).collect();
    Ok(IdentityChoice::Found { identity, rewrite })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports drawn from a counter (tests only).
    fn ports(seed: u8) -> Ports {
        let mut n = seed;
        Ports::random(|| {
            n = n.wrapping_add(1);
            Ok::<_, ()>([seed, n, 1, 2, 3, 4])
        })
        .unwrap()
    }

    #[test]
    fn identity_round_trips_and_refuses_damage() {
        let mut id = Identity::new(Check([1, 2, 3, 4, 5, 6]), ports(1));
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
    fn ports_are_stored_not_derived_from_any_capability() {
        let id = Identity::new(Check([7; 6]), ports(7));
        let all = [
            id.port(),
            id.group_get_port().put_port(),
            id.replica_get_port(0).put_port(),
            id.replica_get_port(1).put_port(),
            id.replica_get_port(2).put_port(),
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(all[i + 1..].iter().all(|b| a != b));
        }
        // The same super check with other ports: other put-ports. So nothing about
        // the ports follows from the super capability (nor from a replica's, whose
        // check is the replicas' own random).
        let other = Identity::new(Check([7; 6]), ports(8));
        assert_ne!(other.port(), id.port());
        assert_ne!(other.replica_get_port(0), id.replica_get_port(0));
        let replica = id.replica_capability(1);
        assert_ne!(replica.check, id.super_random, "the replica capability does not carry the super check");
        assert_eq!(replica.check, id.ports.replica_random);
        // The ports survive the disk and the hand-over to a replica.
        let mut block = id.encode();
        block.resize(512, 0);
        assert_eq!(Identity::decode(&block), Ok(Some(id)));
        assert_eq!(Ports::from_hex(&id.ports.to_hex()), Some(id.ports));
        assert_eq!(Ports::from_hex("00"), None);
        assert_eq!(Ports::from_hex(&"zz".repeat(Ports::ENCODED_LEN)), None);
    }

    #[test]
    fn an_identity_in_the_old_layout_is_refused_with_a_clear_error() {
        // Version 1: magic, version, super check, no root, checksum.
        let mut old = b"DIRI\x01".to_vec();
        old.extend_from_slice(&[7; 6]);
        old.push(0);
        let sum = Sha256::digest(&old);
        old.extend_from_slice(&sum[..CHECKSUM_LEN]);
        old.resize(512, 0);
        assert_eq!(IdentityCopy::of_block(&old), IdentityCopy::OldLayout);
        let copies = [
            IdentityCopy::OldLayout,
            IdentityCopy::OldLayout,
            IdentityCopy::Damaged,
            IdentityCopy::OldLayout,
        ];
        let error = choose_identity(&copies, || vec![0]).unwrap_err();
        assert_eq!(error, IdentityError::OldLayout);
        assert!(alloc::format!("{error}").contains("older layout"));
        // A copy in the new layout wins, and the old ones are rewritten.
        let id = Identity::new(Check([7; 6]), ports(2));
        let mixed = [
            IdentityCopy::OldLayout,
            IdentityCopy::Valid(id),
            IdentityCopy::Valid(id),
            IdentityCopy::Valid(id),
        ];
        assert_eq!(
            choose_identity(&mixed, Vec::new),
            Ok(IdentityChoice::Found { identity: id, rewrite: vec![0] })
        );
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

    #[test]
    fn identity_copies_are_in_block_0_and_at_the_end_of_every_slot() {
        let blocks: Vec<u64> = (0..IDENTITY_COPIES).map(identity_block).collect();
        assert_eq!(blocks, [0, 21, 42, 63]);
        for r in 0..MAX_REPLICAS {
            let anchor = slot_first_block(r)..slot_first_block(r) + ANCHOR_BLOCKS;
            assert!(blocks.iter().all(|b| !anchor.contains(b)), "copy inside replica {r}'s anchor");
        }
        assert!(blocks.iter().all(|b| *b < AREA_BLOCKS));
    }

    #[test]
    fn one_valid_copy_is_enough_and_the_others_are_rewritten() {
        let id = Identity::new(Check([3; 6]), ports(3));
        let copies =
            [IdentityCopy::Damaged, IdentityCopy::Valid(id), IdentityCopy::Empty, IdentityCopy::Valid(id)];
        let asked = core::cell::Cell::new(false);
        let choice = choose_identity(&copies, || {
            asked.set(true);
            vec![0]
        });
        assert_eq!(choice, Ok(IdentityChoice::Found { identity: id, rewrite: vec![0, 2] }));
        assert!(!asked.get(), "the anchors matter only when no copy is valid");
        // Fewer copies read than there are places: the missing ones are rewritten.
        let choice = choose_identity(&[IdentityCopy::Valid(id)], Vec::new);
        assert_eq!(choice, Ok(IdentityChoice::Found { identity: id, rewrite: vec![1, 2, 3] }));
    }

    #[test]
    fn a_copy_naming_the_root_beats_one_written_before_it() {
        let before = Identity::new(Check([3; 6]), ports(3));
        let after = Identity { root: Some(Capability::owner(before.port(), 1, Check([4; 6]))), ..before };
        let copies = [IdentityCopy::Valid(before), IdentityCopy::Valid(after), IdentityCopy::Valid(before)];
        let choice = choose_identity(&copies, Vec::new);
        assert_eq!(choice, Ok(IdentityChoice::Found { identity: after, rewrite: vec![0, 2, 3] }));
    }

    #[test]
    fn copies_of_different_services_or_roots_are_refused() {
        let a = Identity::new(Check([3; 6]), ports(3));
        let b = Identity::new(Check([5; 6]), ports(3));
        assert_eq!(
            choose_identity(&[IdentityCopy::Valid(a), IdentityCopy::Valid(b)], Vec::new),
            Err(IdentityError::Disagree)
        );
        let root = |k| Some(Capability::owner(a.port(), k, Check([4; 6])));
        let (r1, r2) = (Identity { root: root(1), ..a }, Identity { root: root(2), ..a });
        assert_eq!(
            choose_identity(&[IdentityCopy::Valid(r1), IdentityCopy::Valid(r2)], Vec::new),
            Err(IdentityError::Disagree)
        );
    }

    #[test]
    fn no_valid_copy_is_a_new_service_only_where_no_anchor_holds_state() {
        let empty = [IdentityCopy::Empty; IDENTITY_COPIES];
        assert_eq!(choose_identity(&empty, Vec::new), Ok(IdentityChoice::New));
        // A copy torn before anything else was stored: nothing to lose.
        let torn = [IdentityCopy::Damaged, IdentityCopy::Empty, IdentityCopy::Empty, IdentityCopy::Empty];
        assert_eq!(choose_identity(&torn, Vec::new), Ok(IdentityChoice::New));
        let lost = [IdentityCopy::Damaged, IdentityCopy::Empty, IdentityCopy::Damaged, IdentityCopy::Empty];
        let error = choose_identity(&lost, || vec![0, 2]).unwrap_err();
        assert_eq!(error, IdentityError::Lost { damaged: 2, anchors: vec![0, 2] });
        let text = alloc::format!("{error}");
        assert!(text.contains("2 of 4 copies are damaged") && text.contains("replicas 0, 2"), "{text}");
        assert!(choose_identity(&empty, || vec![1]).is_err(), "zeroed copies over stored state");
    }

    #[test]
    fn copies_the_disk_did_not_give_are_not_taken_for_blank() {
        let id = Identity::new(Check([3; 6]), ports(3));
        let read =
            [IdentityCopy::Unreadable, IdentityCopy::Valid(id), IdentityCopy::Empty, IdentityCopy::Valid(id)];
        assert_eq!(
            choose_identity(&read, Vec::new),
            Ok(IdentityChoice::Found { identity: id, rewrite: vec![0, 2] })
        );
        let unread =
            [IdentityCopy::Unreadable, IdentityCopy::Empty, IdentityCopy::Unreadable, IdentityCopy::Empty];
        let error = choose_identity(&unread, Vec::new).unwrap_err();
        assert_eq!(error, IdentityError::Unreadable { copies: vec![0, 2] });
        assert!(alloc::format!("{error}").contains("copies 0, 2 could not be read"));
    }

    #[test]
    fn copies_are_read_from_blocks() {
        let id = Identity::new(Check([3; 6]), ports(3));
        let mut block = id.encode();
        block.resize(512, 0);
        assert_eq!(IdentityCopy::of_block(&block), IdentityCopy::Valid(id));
        assert_eq!(IdentityCopy::of_block(&[0; 512]), IdentityCopy::Empty);
        block[10] ^= 0x40;
        assert_eq!(IdentityCopy::of_block(&block), IdentityCopy::Damaged);
    }
}
