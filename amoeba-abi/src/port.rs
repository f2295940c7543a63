//! Ports and the one-way function F.

use core::fmt;
use core::str::FromStr;

use sha2::{Digest, Sha256};

use crate::Rng;

/// The one-way function F: SHA-256 of the 6 input bytes, truncated to the first 48 bits.
///
/// Used both for `put-port = F(get-port)` and for restricted capability checks.
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

    /// The public put-port `F(G)`.
    pub fn put_port(&self) -> Port {
        Port(one_way(&self.0.0))
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
