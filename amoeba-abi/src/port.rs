//! Ports, the port function F (put-port = F(get-port)) and the key that lets a
//! server prove it holds a get-port without revealing it.
//!
//! # F and the locate key
//!
//! A get-port G determines an Ed25519 key pair: the secret seed is
//! `SHA-256("flip-locate" ‖ G)`, and the put-port is the first 48 bits of
//! `SHA-256(public key)`. So `P = F(G)` is still one-way (finding G from P means
//! inverting SHA-256 and the curve), and anyone who knows only P can check that a
//! public key belongs to P, and then that a signature was made with the secret
//! half, which only a holder of G can compute. FLIP's HERE_IS carries such a
//! signature over the locating client's nonce (see the `flip` crate's `locate`
//! module), so a station that does not know G cannot pass for P's server.
//!
//! Deriving the key costs one fixed-base scalar multiplication: a few microseconds
//! natively, about a millisecond on an emulated board. Servers compute it once
//! per registered port ([`GetPort::locate_key`]) and keep it.
//!
//! The check fields of restricted capabilities use the plain one-way function
//! [`one_way`] (SHA-256 truncated to 48 bits); nothing there needs a key pair.

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Rng;

/// Length of a locate public key (Ed25519).
pub const LOCATE_KEY_LEN: usize = 32;
/// Length of a locate signature (Ed25519).
pub const LOCATE_SIGNATURE_LEN: usize = 64;

/// The one-way function used for restricted capability checks: SHA-256 of the 6
/// input bytes, truncated to the first 48 bits.
pub fn one_way(input: &[u8; 6]) -> [u8; 6] {
    let digest = Sha256::digest(input);
    let mut out = [0u8; 6];
    out.copy_from_slice(&digest[..6]);
    out
}

/// A 48-bit port: the public address of a service (a put-port) or, wrapped in
/// [`GetPort`], the private one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Port(pub [u8; 6]);

impl Port {
    /// The all-zero port, used as "no port".
    pub const NULL: Port = Port([0; 6]);

    /// Port from its 6 bytes.
    pub const fn from_bytes(b: [u8; 6]) -> Port {
        Port(b)
    }

    /// The 6 bytes.
    pub const fn to_bytes(self) -> [u8; 6] {
        self.0
    }

    /// Is this the null port?
    pub fn is_null(&self) -> bool {
        self.0 == [0; 6]
    }

    /// The port as an integer (low 48 bits of the result).
    pub fn to_u64(self) -> u64 {
        let mut b = [0u8; 8];
        b[2..].copy_from_slice(&self.0);
        u64::from_be_bytes(b)
    }

    /// The port from the low 48 bits of `v` (high 16 bits ignored).
    pub fn from_u64(v: u64) -> Port {
        let b = v.to_be_bytes();
        let mut p = [0u8; 6];
        p.copy_from_slice(&b[2..]);
        Port(p)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Port({self})")
    }
}

/// Error parsing the textual form of a port or capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError;

impl core::error::Error for ParseError {}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed port or capability text")
    }
}

pub(crate) fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], ParseError> {
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return Err(ParseError);
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = hex_digit(s[2 * i])?;
        let lo = hex_digit(s[2 * i + 1])?;
        *o = (hi << 4) | lo;
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Result<u8, ParseError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(ParseError),
    }
}

impl FromStr for Port {
    type Err = ParseError;
    /// 12 hex digits, as printed by `Display`.
    fn from_str(s: &str) -> Result<Port, ParseError> {
        parse_hex::<6>(s).map(Port)
    }
}

/// A private get-port. Only the server knows it; it registers with it
/// (`get_request(G)`) and publishes [`GetPort::put_port`] `= F(G)`.
///
/// `Debug` does not print the secret.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GetPort(pub Port);

impl GetPort {
    /// A fresh random get-port.
    pub fn random(rng: &mut Rng) -> GetPort {
        let mut b = [0u8; 6];
        rng.fill(&mut b);
        GetPort(Port(b))
    }

    /// The public put-port `F(G)`: the first 48 bits of SHA-256 of the public half of
    /// [`GetPort::locate_key`]. Costs one key derivation: a server that needs it per
    /// request keeps it (or the whole [`LocateKey`]).
    pub fn put_port(&self) -> Port {
        self.locate_key().put_port()
    }

    /// The key pair that proves, to anyone knowing only the put-port, that its holder
    /// knows this get-port.
    pub fn locate_key(&self) -> LocateKey {
        let mut seed = Sha256::new();
        seed.update(b"flip-locate");
        seed.update(self.0.0);
        let signing = SigningKey::from_bytes(&seed.finalize().into());
        let public = signing.verifying_key().to_bytes();
        LocateKey { signing, public, put: put_port_of_key(&public) }
    }
}

/// The put-port a locate public key belongs to: the first 48 bits of its SHA-256.
pub fn put_port_of_key(public: &[u8; LOCATE_KEY_LEN]) -> Port {
    let digest = Sha256::digest(public);
    let mut p = [0u8; 6];
    p.copy_from_slice(&digest[..6]);
    Port(p)
}

/// Is `signature` a signature of `message` by the locate key of put-port `put`,
/// whose public half is `public`? False for a key of another port, a malformed key
/// or signature, or a signature of anything else (strict Ed25519 verification: no
/// small-order keys, no malleable signatures).
pub fn verify_locate(
    put: Port,
    public: &[u8; LOCATE_KEY_LEN],
    message: &[u8],
    signature: &[u8; LOCATE_SIGNATURE_LEN],
) -> bool {
    if put_port_of_key(public) != put {
        return false;
    }
    let Ok(key) = VerifyingKey::from_bytes(public) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(signature)).is_ok()
}

/// The key pair of a get-port (see the module documentation): its owner signs with
/// it, anyone checks with [`verify_locate`] and the put-port alone.
///
/// `Debug` does not print the secret.
#[derive(Clone)]
pub struct LocateKey {
    /// The secret half, derived from the get-port.
    signing: SigningKey,
    /// The public half, as sent.
    public: [u8; LOCATE_KEY_LEN],
    /// `F(G)`.
    put: Port,
}

impl LocateKey {
    /// The put-port `F(G)`.
    pub fn put_port(&self) -> Port {
        self.put
    }

    /// The public half, to send with a signature.
    pub fn public_key(&self) -> [u8; LOCATE_KEY_LEN] {
        self.public
    }

    /// Sign `message` (deterministic Ed25519).
    pub fn sign(&self, message: &[u8]) -> [u8; LOCATE_SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for LocateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocateKey(<secret>, put={})", self.put)
    }
}

impl fmt::Debug for GetPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GetPort(<secret>, put={})", self.put_port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_way_is_sha256_prefix() {
        // SHA-256 of six zero bytes starts with b0f66adc83641586...
        assert_eq!(one_way(&[0; 6]), [0xb0, 0xf6, 0x6a, 0xdc, 0x83, 0x64]);
    }

    #[test]
    fn put_port_is_the_hash_of_the_locate_key() {
        let g = GetPort(Port([1, 2, 3, 4, 5, 6]));
        let key = g.locate_key();
        assert_eq!(key.put_port(), g.put_port());
        assert_eq!(put_port_of_key(&key.public_key()), g.put_port());
        // Not the old F (a plain hash of G): a put-port follows from the key alone.
        assert_ne!(g.put_port().0, one_way(&g.0.0));
        // Known answer (checked against an independent Ed25519: Python's `cryptography`),
        // so that the nucleus, host and programs agree across builds.
        assert_eq!(GetPort(Port([0; 6])).put_port().to_string(), "a9b2bf81c6df");
    }

    #[test]
    fn locate_signatures_check_with_the_put_port_alone() {
        let g = GetPort(Port([9, 8, 7, 6, 5, 4]));
        let key = g.locate_key();
        let (put, pk) = (key.put_port(), key.public_key());
        let sig = key.sign(b"nonce and address");
        assert!(verify_locate(put, &pk, b"nonce and address", &sig));
        // Another message, another port, a flipped bit: refused.
        assert!(!verify_locate(put, &pk, b"nonce and addresz", &sig));
        assert!(!verify_locate(GetPort(Port([1; 6])).put_port(), &pk, b"nonce and address", &sig));
        let mut bad = sig;
        bad[10] ^= 1;
        assert!(!verify_locate(put, &pk, b"nonce and address", &bad));
        // An impostor with its own key for the same message: its key is not P's.
        let other = GetPort(Port([1; 6])).locate_key();
        let forged = other.sign(b"nonce and address");
        assert!(!verify_locate(put, &other.public_key(), b"nonce and address", &forged));
        assert!(!verify_locate(put, &pk, b"nonce and address", &forged));
        // Garbage keys never panic.
        assert!(!verify_locate(put_port_of_key(&[0xff; 32]), &[0xff; 32], b"x", &[0; 64]));
        assert!(!format!("{key:?}").contains("090807060504"));
    }

    #[test]
    fn put_port_differs_and_is_deterministic() {
        let g = GetPort(Port([1, 2, 3, 4, 5, 6]));
        assert_eq!(g.put_port(), g.put_port());
        assert_ne!(g.put_port(), g.0);
    }

    #[test]
    fn text_roundtrip() {
        let p = Port([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]);
        assert_eq!(p.to_string(), "deadbeef0001");
        assert_eq!("deadbeef0001".parse::<Port>(), Ok(p));
        assert_eq!("DEADBEEF0001".parse::<Port>(), Ok(p));
        assert!("deadbeef000".parse::<Port>().is_err());
        assert!("deadbeef00g1".parse::<Port>().is_err());
        assert!("é".parse::<Port>().is_err());
        assert_eq!(Port::from_u64(p.to_u64()), p);
        assert!(!format!("{:?}", GetPort(p)).contains("deadbeef0001"));
    }
}
