//! Capabilities, rights, and check fields.

use core::fmt;
use core::ops::{BitAnd, BitOr, Not};
use core::str::FromStr;

use crate::port::{ParseError, parse_hex};
use crate::{Port, one_way};

/// Largest object number (24 bits).
pub const OBJECT_MAX: u32 = 0x00FF_FFFF;

/// The 8 rights bits of a capability.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rights(pub u8);

impl Rights {
    /// No rights.
    pub const NONE: Rights = Rights(0);
    /// Create (standard class bit 0x01).
    pub const CREATE: Rights = Rights(0x01);
    /// Read (0x02).
    pub const READ: Rights = Rights(0x02);
    /// Modify (0x04).
    pub const MODIFY: Rights = Rights(0x04);
    /// Delete / destroy (0x08).
    pub const DELETE: Rights = Rights(0x08);
    /// All 8 bits: the owner.
    pub const ALL: Rights = Rights(0xFF);
    /// Synonym of [`Rights::ALL`].
    pub const OWNER: Rights = Rights::ALL;

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Does `self` include every bit of `other`?
    pub const fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// Is this the owner (all bits)?
    pub const fn is_owner(self) -> bool {
        self.0 == 0xFF
    }
}

impl BitAnd for Rights {
    type Output = Rights;
    fn bitand(self, o: Rights) -> Rights {
        Rights(self.0 & o.0)
    }
}

impl BitOr for Rights {
    type Output = Rights;
    fn bitor(self, o: Rights) -> Rights {
        Rights(self.0 | o.0)
    }
}

impl Not for Rights {
    type Output = Rights;
    fn not(self) -> Rights {
        Rights(!self.0)
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rights({:#04x})", self.0)
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// A 48-bit check field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Check(pub [u8; 6]);

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Check({self})")
    }
}

/// Why a capability was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The check field does not match (forged or for another object incarnation).
    BadCheck,
    /// Only an owner capability can be restricted without asking the server.
    NotOwner,
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapError::BadCheck => f.write_str("capability check field does not match"),
            CapError::NotOwner => {
                f.write_str("only an owner capability can be restricted locally; use STD_RESTRICT")
            }
        }
    }
}

impl core::error::Error for CapError {}

/// The check field of a capability with `rights` for an object whose (owner) random
/// check value is `random`.
///
/// * `rights == ALL` (owner): the random value itself.
/// * otherwise: `F(random XOR [rights; 6])`, i.e. the rights byte XORed into every
///   byte of the random value, then the one-way function [`one_way`].
///
/// Without the random value nobody can compute the check of another rights mask, so
/// restricting an already-restricted capability goes through the server (STD_RESTRICT).
pub fn restrict(owner_random: &Check, rights: Rights) -> Check {
    if rights.is_owner() {
        return *owner_random;
    }
    let mut mixed = owner_random.0;
    for b in &mut mixed {
        *b ^= rights.0;
    }
    Check(one_way(&mixed))
}

/// Server side: check `cap` against the object's stored random value, in constant time
/// (the comparison has no early exit). Returns the capability's rights.
pub fn verify(stored_random: &Check, cap: &Capability) -> Result<Rights, CapError> {
    let expected = restrict(stored_random, cap.rights);
    if ct_eq(&expected.0, &cap.check.0) { Ok(cap.rights) } else { Err(CapError::BadCheck) }
}

fn ct_eq(a: &[u8; 6], b: &[u8; 6]) -> bool {
    let mut diff = 0u8;
    for i in 0..6 {
        diff |= a[i] ^ b[i];
    }
    core::hint::black_box(diff) == 0
}

/// The private part of a capability (what travels in a message header next to the
/// port): object number, rights, check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Private {
    /// Object number (24 bits; higher bits are dropped on the wire).
    pub object: u32,
    /// Rights.
    pub rights: Rights,
    /// Check field.
    pub check: Check,
}

impl Private {
    /// Encoded length.
    pub const LEN: usize = 10;

    /// Encode as object (3 bytes BE) | rights | check.
    pub fn encode(&self) -> [u8; 10] {
        let mut out = [0u8; 10];
        out[..3].copy_from_slice(&self.object.to_be_bytes()[1..]);
        out[3] = self.rights.0;
        out[4..].copy_from_slice(&self.check.0);
        out
    }

    /// Decode from exactly 10 bytes.
    pub fn decode(b: &[u8; 10]) -> Private {
        let mut check = [0u8; 6];
        check.copy_from_slice(&b[4..]);
        Private {
            object: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            rights: Rights(b[3]),
            check: Check(check),
        }
    }
}

/// A 128-bit capability: `port (48) | object (24) | rights (8) | check (48)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capability {
    /// The server's put-port.
    pub port: Port,
    /// Object number (24 bits).
    pub object: u32,
    /// Rights.
    pub rights: Rights,
    /// Check field.
    pub check: Check,
}

impl Capability {
    /// Encoded length in bytes.
    pub const LEN: usize = 16;

    /// The null capability (all zero).
    pub const NULL: Capability =
        Capability { port: Port::NULL, object: 0, rights: Rights::NONE, check: Check([0; 6]) };

    /// The owner capability for `object` with its random check value.
    pub fn owner(port: Port, object: u32, random: Check) -> Capability {
        Capability { port, object: object & OBJECT_MAX, rights: Rights::ALL, check: random }
    }

    /// A capability that names only a service's put-port: for public operations
    /// (object 0, no rights, no check).
    pub fn for_port(port: Port) -> Capability {
        Capability { port, ..Capability::NULL }
    }

    /// Join a port and a private part.
    pub fn from_parts(port: Port, p: Private) -> Capability {
        Capability { port, object: p.object & OBJECT_MAX, rights: p.rights, check: p.check }
    }

    /// The private part.
    pub fn private(&self) -> Private {
        Private { object: self.object, rights: self.rights, check: self.check }
    }

    /// Restrict an *owner* capability to `self.rights & mask` without the server (the
    /// owner's check is the random value). A restricted capability must be restricted
    /// by the server (STD_RESTRICT): this returns `Err(CapError::NotOwner)`.
    pub fn restrict(&self, mask: Rights) -> Result<Capability, CapError> {
        if !self.rights.is_owner() {
            return Err(CapError::NotOwner);
        }
        let rights = self.rights & mask;
        Ok(Capability { rights, check: restrict(&self.check, rights), ..*self })
    }

    /// 16-byte big-endian wire form.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..6].copy_from_slice(&self.port.0);
        out[6..].copy_from_slice(&self.private().encode());
        out
    }

    /// From the 16-byte wire form.
    pub fn decode(b: &[u8; 16]) -> Capability {
        let mut port = [0u8; 6];
        port.copy_from_slice(&b[..6]);
        let mut p = [0u8; 10];
        p.copy_from_slice(&b[6..]);
        Capability::from_parts(Port(port), Private::decode(&p))
    }

    /// From a slice that must be exactly 16 bytes long.
    pub fn from_slice(b: &[u8]) -> Option<Capability> {
        let arr: &[u8; 16] = b.try_into().ok()?;
        Some(Capability::decode(arr))
    }
}

impl fmt::Display for Capability {
    /// `pppppppppppp:oooooo:rr:cccccccccccc` in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:06x}:{}:{}", self.port, self.object & OBJECT_MAX, self.rights, self.check)
    }
}

impl fmt::Debug for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capability({self})")
    }
}

impl FromStr for Capability {
    type Err = ParseError;
    /// Parses the `Display` form.
    fn from_str(s: &str) -> Result<Capability, ParseError> {
        let mut it = s.split(':');
        let port = it.next().ok_or(ParseError)?.parse::<Port>()?;
        let obj = parse_hex::<3>(it.next().ok_or(ParseError)?)?;
        let rights = parse_hex::<1>(it.next().ok_or(ParseError)?)?;
        let check = parse_hex::<6>(it.next().ok_or(ParseError)?)?;
        if it.next().is_some() {
            return Err(ParseError);
        }
        Ok(Capability {
            port,
            object: u32::from_be_bytes([0, obj[0], obj[1], obj[2]]),
            rights: Rights(rights[0]),
            check: Check(check),
        })
    }
}

/// In typed message buffers a capability travels in its 16-byte wire form.
#[cfg(feature = "serde")]
impl serde::Serialize for Capability {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.encode().serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Capability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <[u8; 16]>::deserialize(deserializer).map(|bytes| Capability::decode(&bytes))
    }
}

/// Rights travel as their byte.
#[cfg(feature = "serde")]
impl serde::Serialize for Rights {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Rights {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u8::deserialize(deserializer).map(Rights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cap() -> Capability {
        Capability {
            port: Port([1, 2, 3, 4, 5, 6]),
            object: 0x0a0b0c,
            rights: Rights(0x0f),
            check: Check([0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6]),
        }
    }

    #[test]
    fn wire_layout_is_big_endian() {
        assert_eq!(
            cap().encode(),
            [1, 2, 3, 4, 5, 6, 0x0a, 0x0b, 0x0c, 0x0f, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6]
        );
    }

    #[test]
    fn display_and_parse() {
        let c = cap();
        assert_eq!(c.to_string(), "010203040506:0a0b0c:0f:a1b2c3d4e5f6");
        assert_eq!(format!("{c:?}"), "Capability(010203040506:0a0b0c:0f:a1b2c3d4e5f6)");
        assert_eq!(c.to_string().parse::<Capability>(), Ok(c));
        assert!("010203040506:0a0b0c:0f".parse::<Capability>().is_err());
        assert!("010203040506:0a0b0c:0f:a1b2c3d4e5f6:00".parse::<Capability>().is_err());
        assert!(Capability::from_slice(&[0; 15]).is_none());
    }

    #[test]
    fn owner_and_restricted_verify() {
        let random = Check([9, 8, 7, 6, 5, 4]);
        let owner = Capability::owner(Port([1; 6]), 5, random);
        assert_eq!(verify(&random, &owner), Ok(Rights::ALL));
        let r = owner.restrict(Rights::READ | Rights::MODIFY).unwrap();
        assert_eq!(r.rights, Rights(0x06));
        assert_ne!(r.check, random);
        assert_eq!(verify(&random, &r), Ok(Rights(0x06)));
        // Cannot restrict a restricted capability locally.
        assert_eq!(r.restrict(Rights::READ), Err(CapError::NotOwner));
        // Raising the rights of a restricted capability breaks the check.
        let forged = Capability { rights: Rights(0x07), ..r };
        assert_eq!(verify(&random, &forged), Err(CapError::BadCheck));
        let forged_owner = Capability { rights: Rights::ALL, ..r };
        assert_eq!(verify(&random, &forged_owner), Err(CapError::BadCheck));
        // Wrong random.
        assert_eq!(verify(&Check([9, 8, 7, 6, 5, 3]), &owner), Err(CapError::BadCheck));
        // Restricting the owner with ALL is the owner.
        assert_eq!(owner.restrict(Rights::ALL), Ok(owner));
    }

    #[test]
    fn restricted_check_definition() {
        let random = Check([0x10, 0x20, 0x30, 0x40, 0x50, 0x60]);
        let r = Rights(0x03);
        let mixed = [0x13, 0x23, 0x33, 0x43, 0x53, 0x63];
        assert_eq!(restrict(&random, r), Check(one_way(&mixed)));
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(port: [u8; 6], object in 0u32..=OBJECT_MAX, rights: u8, check: [u8; 6]) {
            let c = Capability { port: Port(port), object, rights: Rights(rights), check: Check(check) };
            prop_assert_eq!(Capability::decode(&c.encode()), c);
            prop_assert_eq!(c.to_string().parse::<Capability>(), Ok(c));
            prop_assert_eq!(Private::decode(&c.private().encode()), c.private());
        }

        #[test]
        fn restricted_verifies_only_with_its_rights(random: [u8; 6], mask: u8, other: u8) {
            let random = Check(random);
            let owner = Capability::owner(Port([7; 6]), 1, random);
            let r = owner.restrict(Rights(mask)).unwrap();
            prop_assert_eq!(verify(&random, &r), Ok(Rights(mask)));
            if other != mask {
                let f = Capability { rights: Rights(other), ..r };
                prop_assert_eq!(verify(&random, &f), Err(CapError::BadCheck));
            }
        }
    }
}
