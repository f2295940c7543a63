//! The fixed-size message header of requests and replies.

use core::fmt;

use crate::{Capability, Port, Private, Status};

/// Encoded length of a [`Header`] in bytes.
pub const HEADER_LEN: usize = 46;

/// The message header carried by every request and reply.
///
/// Wire layout (big endian), [`HEADER_LEN`] = 46 bytes:
///
/// | bytes | field |
/// |---|---|
/// | 0..6 | `port` |
/// | 6..12 | `signature` |
/// | 12..22 | `private` (object 24, rights 8, check 48) |
/// | 22..26 | `command` (u32) |
/// | 26..30 | `status` (i32) |
/// | 30..38 | `offset` (u64) |
/// | 38..42 | `size` (u32) |
/// | 42..46 | `extra` (u32) |
///
/// In a request `port` is the server's put-port and `private` the private part of the
/// capability being used; in a reply `status` is the outcome and the other fields are
/// the server's to use (e.g. a new capability in `port` + `private`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Header {
    /// Put-port of the server (request) or a port returned (reply).
    pub port: Port,
    /// Signature port (for authentication schemes; zero if unused).
    pub signature: Port,
    /// Private part of a capability.
    pub private: Private,
    /// Command number (see the interfaces in `amoeba-ipc`).
    pub command: u32,
    /// Status (see [`Status`]); 0 = OK, negative = error.
    pub status: i32,
    /// Offset (e.g. into a file).
    pub offset: u64,
    /// Size (e.g. of the data wanted).
    pub size: u32,
    /// Command-specific extra argument.
    pub extra: u32,
}

/// Error decoding a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Input shorter than [`HEADER_LEN`].
    Short,
    /// Input longer than [`HEADER_LEN`] (only from [`Header::decode`]).
    Long,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => f.write_str("message header too short"),
            HeaderError::Long => f.write_str("trailing bytes after message header"),
        }
    }
}

impl Header {
    /// A request header for `command` on the object named by `cap`.
    pub fn request(cap: &Capability, command: u32) -> Header {
        Header { port: cap.port, private: cap.private(), command, ..Header::default() }
    }

    /// A reply header with `status`.
    pub fn reply(status: Status) -> Header {
        Header { status: status.into(), ..Header::default() }
    }

    /// The capability formed by `port` and `private`.
    pub fn capability(&self) -> Capability {
        Capability::from_parts(self.port, self.private)
    }

    /// Put `cap` into `port` and `private`.
    pub fn set_capability(&mut self, cap: &Capability) {
        self.port = cap.port;
        self.private = cap.private();
    }

    /// The status field as a [`Status`] (unknown codes become [`Status::SysErr`]).
    pub fn status(&self) -> Status {
        Status::from_i32_lossy(self.status)
    }

    /// Encode into the fixed 46-byte form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..6].copy_from_slice(&self.port.0);
        b[6..12].copy_from_slice(&self.signature.0);
        b[12..22].copy_from_slice(&self.private.encode());
        b[22..26].copy_from_slice(&self.command.to_be_bytes());
        b[26..30].copy_from_slice(&self.status.to_be_bytes());
        b[30..38].copy_from_slice(&self.offset.to_be_bytes());
        b[38..42].copy_from_slice(&self.size.to_be_bytes());
        b[42..46].copy_from_slice(&self.extra.to_be_bytes());
        b
    }

    /// Decode exactly [`HEADER_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        match b.len() {
            n if n < HEADER_LEN => Err(HeaderError::Short),
            HEADER_LEN => Ok(Header::decode_prefix(b)?.0),
            _ => Err(HeaderError::Long),
        }
    }

    /// Decode a header from the start of `b`; returns it and the rest of `b`.
    pub fn decode_prefix(b: &[u8]) -> Result<(Header, &[u8]), HeaderError> {
        let (h, rest) = b.split_first_chunk::<HEADER_LEN>().ok_or(HeaderError::Short)?;
        let port = |r: core::ops::Range<usize>| {
            let mut p = [0u8; 6];
            p.copy_from_slice(&h[r]);
            Port(p)
        };
        let mut private = [0u8; 10];
        private.copy_from_slice(&h[12..22]);
        let u32_at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&h[30..38]);
        Ok((
            Header {
                port: port(0..6),
                signature: port(6..12),
                private: Private::decode(&private),
                command: u32_at(22),
                status: u32_at(26) as i32,
                offset: u64::from_be_bytes(off),
                size: u32_at(38),
                extra: u32_at(42),
            },
            rest,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Check, Rights};
    use proptest::prelude::*;

    #[test]
    fn short_and_long_rejected() {
        for n in 0..HEADER_LEN {
            assert_eq!(Header::decode(&vec![0; n]), Err(HeaderError::Short));
            assert!(Header::decode_prefix(&vec![0; n]).is_err());
        }
        assert_eq!(Header::decode(&[0; HEADER_LEN + 1]), Err(HeaderError::Long));
        let (h, rest) = Header::decode_prefix(&[0; HEADER_LEN + 3]).unwrap();
        assert_eq!(h, Header::default());
        assert_eq!(rest.len(), 3);
    }

    #[test]
    fn layout() {
        let h = Header {
            port: Port([1, 2, 3, 4, 5, 6]),
            command: 0x01020304,
            status: -1,
            offset: 0x1122334455667788,
            size: 7,
            extra: 9,
            ..Header::default()
        };
        let b = h.encode();
        assert_eq!(&b[0..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&b[22..26], &[1, 2, 3, 4]);
        assert_eq!(&b[26..30], &[0xff; 4]);
        assert_eq!(&b[30..38], &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
        assert_eq!(&b[38..42], &[0, 0, 0, 7]);
        assert_eq!(&b[42..46], &[0, 0, 0, 9]);
        assert_eq!(h.status(), Status::CapBad);
    }

    proptest! {
        #[test]
        fn roundtrip(port: [u8; 6], sig: [u8; 6], object in 0u32..=crate::OBJECT_MAX, rights: u8,
                     check: [u8; 6], command: u32, status: i32, offset: u64, size: u32, extra: u32) {
            let h = Header {
                port: Port(port), signature: Port(sig),
                private: Private { object, rights: Rights(rights), check: Check(check) },
                command, status, offset, size, extra,
            };
            prop_assert_eq!(Header::decode(&h.encode()), Ok(h));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..100)) {
            let r = Header::decode(&b);
            prop_assert_eq!(r.is_ok(), b.len() == HEADER_LEN);
            if let Ok(h) = r {
                prop_assert_eq!(&h.encode()[..], &b[..]);
            }
        }
    }
}
