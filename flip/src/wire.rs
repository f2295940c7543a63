//! Wire formats: Ethernet framing, the FLIP header, and per-type payload rules.
//!
//! Frame layout (all integers big endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..6 | destination MAC |
//! | 6..12 | source MAC |
//! | 12..14 | ethertype [`ETHERTYPE_FLIP`] = 0x88B6 |
//! | 14 | FLIP version ([`VERSION`]) |
//! | 15 | packet type ([`PacketType`]) |
//! | 16 | flags (`F_*`) |
//! | 17 | hop count (1 ..= [`MAX_HOPS`]) |
//! | 18..26 | destination address ([`Addr`]) |
//! | 26..34 | source address |
//! | 34..38 | destination incarnation (0 = any) |
//! | 38..42 | source incarnation |
//! | 42..50 | message id |
//! | 50..54 | total length of the message |
//! | 54..58 | offset of this fragment |
//! | 58..60 | length of this fragment (= bytes that follow) |
//! | 60..62 | reserved, zero |
//! | 62.. | fragment payload |
//!
//! The parser is strict: anything that does not follow these rules is an `Err`.
//!
//! # What the fields carry (version 3)
//!
//! * A request message (the UNIDATA fragments without [`F_REPLY`], reassembled) is
//!   `[`[`RequestPrefix`]`][Amoeba header][buffer]`: the prefix holds the client's
//!   low-water transaction id and the server's **memory epoch** the request is
//!   addressed to. A reply message is `[Amoeba header][buffer]`.
//! * LOCATE carries the client's [`LOCATE_NONCE_LEN`]-byte nonce, HERE_IS the answering
//!   server's memory epoch in the message id (LOCATE's message id is zero) and its
//!   [`HereIsProof`]: the public key of the port and a signature over
//!   [`here_is_message`] (see the `locate` module for the protocol).
//! * NOT_HERE with [`F_STALE`] refuses a request the server cannot judge. If its
//!   source incarnation differs from the one the request was addressed to, the server
//!   rebooted; if it is the same, the server no longer remembers enough about the
//!   client (it forgot it, or shed the record, or the request is addressed to a memory
//!   epoch older than the server's memory of the client). Either way the request did
//!   not run this time, and it ran at most once before.
//! * A reply with [`F_ABORT`] whose header status is `RpcFailure`, answering a
//!   retransmission, says the request ran but its stored reply was shed under the
//!   server's reply budget.
//!
//! Version 1 had an 8-byte request prefix (low-water only) and a zero HERE_IS message
//! id; version 2 had empty LOCATE and HERE_IS payloads (no proof). Their frames are
//! rejected ([`ParseError::Version`]) rather than misread.

use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::{LOCATE_KEY_LEN, LOCATE_SIGNATURE_LEN, Port};

/// Ethertype of FLIP frames.
pub const ETHERTYPE_FLIP: u16 = 0x88B6;
/// Ethernet header length (dst, src, ethertype).
pub const ETH_HEADER_LEN: usize = 14;
/// FLIP header length.
pub const FLIP_HEADER_LEN: usize = 48;
/// Ethernet MTU (maximum Ethernet payload).
pub const MTU: usize = 1500;
/// Maximum fragment payload per frame.
pub const MAX_FRAGMENT: usize = MTU - FLIP_HEADER_LEN;
/// FLIP version understood (3: LOCATE nonce and signed HERE_IS).
pub const VERSION: u8 = 3;
/// Largest hop count accepted.
pub const MAX_HOPS: u8 = 16;
/// Largest number of ranges in an ACK or ENQUIRY payload.
pub const MAX_RANGES: usize = 64;

/// UNIDATA: fragment of a reply (else of a request). ACK: acknowledges a whole reply.
pub const F_REPLY: u8 = 0x01;
/// NOT_HERE: the destination incarnation is not the current one (the node restarted).
pub const F_STALE: u8 = 0x02;
/// UNIDATA reply: the server aborted the request; the header's status says why.
pub const F_ABORT: u8 = 0x04;
/// ACK: the server has no part of the request; send all of it again.
pub const F_NEED_ALL: u8 = 0x08;
/// ACK: the server has the whole request and is serving it.
pub const F_WORKING: u8 = 0x10;
/// ACK / ENQUIRY: the list of missing ranges was truncated.
pub const F_MORE: u8 = 0x20;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// Is this the broadcast address?
    pub fn is_broadcast(&self) -> bool {
        *self == Mac::BROADCAST
    }

    /// Group (multicast or broadcast) address?
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

const TAG_PORT: u8 = 0x01;
const TAG_NODE: u8 = 0x02;

/// A 64-bit FLIP network service access point: top byte a tag, next byte zero, low 48
/// bits a put-port (tag 1: "whoever serves this port") or a node's MAC (tag 2: one
/// endpoint).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Addr(pub u64);

/// What an [`Addr`] names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AddrKind {
    /// A service, by put-port.
    Port(Port),
    /// An endpoint, by MAC.
    Node(Mac),
}

impl Addr {
    /// The address of the service with put-port `p`.
    pub fn port(p: Port) -> Addr {
        Addr((TAG_PORT as u64) << 56 | p.to_u64())
    }

    /// The address of the endpoint with MAC `m`.
    pub fn node(m: Mac) -> Addr {
        Addr((TAG_NODE as u64) << 56 | Port(m.0).to_u64())
    }

    /// Decode; `None` if the tag or the reserved byte is invalid.
    pub fn kind(&self) -> Option<AddrKind> {
        let b = self.0.to_be_bytes();
        if b[1] != 0 {
            return None;
        }
        let low = Port::from_u64(self.0);
        match b[0] {
            TAG_PORT => Some(AddrKind::Port(low)),
            TAG_NODE => Some(AddrKind::Node(Mac(low.0))),
            _ => None,
        }
    }

    /// The put-port, if this is a port address.
    pub fn as_port(&self) -> Option<Port> {
        match self.kind() {
            Some(AddrKind::Port(p)) => Some(p),
            _ => None,
        }
    }

    /// Is this an endpoint address?
    pub fn is_node(&self) -> bool {
        matches!(self.kind(), Some(AddrKind::Node(_)))
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            Some(AddrKind::Port(p)) => write!(f, "Addr(port {p})"),
            Some(AddrKind::Node(m)) => write!(f, "Addr(node {m})"),
            None => write!(f, "Addr({:#018x})", self.0),
        }
    }
}

/// FLIP packet kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Broadcast "who serves put-port P?" (dst = port address).
    Locate = 1,
    /// Answer to LOCATE (dst = port address, src = the serving endpoint).
    HereIs = 2,
    /// A fragment of a request or (with [`F_REPLY`]) a reply.
    Unidata = 3,
    /// "No server for that port here" or (with [`F_STALE`]) "I restarted".
    NotHere = 4,
    /// Acknowledgement: about a request (server → client: working / missing ranges /
    /// need all), or with [`F_REPLY`] of a complete reply (client → server).
    Ack = 5,
    /// Client → server: "what about my transaction?"; payload: missing reply ranges.
    Enquiry = 6,
}

impl PacketType {
    fn from_u8(v: u8) -> Option<PacketType> {
        Some(match v {
            1 => PacketType::Locate,
            2 => PacketType::HereIs,
            3 => PacketType::Unidata,
            4 => PacketType::NotHere,
            5 => PacketType::Ack,
            6 => PacketType::Enquiry,
            _ => return None,
        })
    }

    /// Flags allowed on this type.
    pub fn allowed_flags(self) -> u8 {
        match self {
            PacketType::Locate | PacketType::HereIs => 0,
            PacketType::Unidata => F_REPLY | F_ABORT,
            PacketType::NotHere => F_STALE,
            PacketType::Ack => F_REPLY | F_NEED_ALL | F_WORKING | F_MORE,
            PacketType::Enquiry => F_MORE,
        }
    }
}

/// The fixed fields of a FLIP packet (the fragment length is the payload's length).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FlipHeader {
    /// Packet kind.
    pub ptype: PacketType,
    /// `F_*` flags.
    pub flags: u8,
    /// Hop count (1 ..= [`MAX_HOPS`]).
    pub hops: u8,
    /// Destination.
    pub dst: Addr,
    /// Source.
    pub src: Addr,
    /// Incarnation of the destination endpoint the sender believes in (0 = any).
    pub dst_inc: u32,
    /// Incarnation of the sender.
    pub src_inc: u32,
    /// Message id (transaction id for RPC packets).
    pub msg_id: u64,
    /// Total length of the message this fragment belongs to.
    pub total_len: u32,
    /// Offset of this fragment in the message.
    pub frag_off: u32,
}

/// A parsed FLIP packet borrowing its payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Packet<'a> {
    /// Header.
    pub header: FlipHeader,
    /// Fragment payload.
    pub payload: &'a [u8],
}

/// Why a frame or packet was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ParseError {
    /// Shorter than the headers.
    Short,
    /// Not ethertype 0x88B6.
    NotFlip,
    /// Unknown version.
    Version,
    /// Unknown packet type.
    Type,
    /// Flags not allowed for the type.
    Flags,
    /// Hop count 0 or above [`MAX_HOPS`].
    Hops,
    /// Invalid address tag.
    Address,
    /// Fragment length does not match the bytes present.
    Length,
    /// Fragment does not fit in the total length, or a single-packet type is fragmented.
    Fragment,
    /// Reserved bits set.
    Reserved,
    /// Payload not valid for the packet type.
    Payload,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed FLIP packet: {self:?}")
    }
}

fn be_u32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn be_u64(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_be_bytes(a)
}

impl<'a> Packet<'a> {
    /// Parse a FLIP packet (the Ethernet payload). Strict: the whole input must be the
    /// packet, and every field must be valid.
    pub fn parse(b: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let (h, payload) = b.split_first_chunk::<FLIP_HEADER_LEN>().ok_or(ParseError::Short)?;
        if h[0] != VERSION {
            return Err(ParseError::Version);
        }
        let ptype = PacketType::from_u8(h[1]).ok_or(ParseError::Type)?;
        let flags = h[2];
        if flags & !ptype.allowed_flags() != 0 {
            return Err(ParseError::Flags);
        }
        if ptype == PacketType::Unidata && flags & F_ABORT != 0 && flags & F_REPLY == 0 {
            return Err(ParseError::Flags);
        }
        let hops = h[3];
        if hops == 0 || hops > MAX_HOPS {
            return Err(ParseError::Hops);
        }
        let dst = Addr(be_u64(h, 4));
        let src = Addr(be_u64(h, 12));
        if dst.kind().is_none() || src.kind().is_none() {
            return Err(ParseError::Address);
        }
        let dst_inc = be_u32(h, 20);
        let src_inc = be_u32(h, 24);
        let msg_id = be_u64(h, 28);
        let total_len = be_u32(h, 36);
        let frag_off = be_u32(h, 40);
        let frag_len = u16::from_be_bytes([h[44], h[45]]) as usize;
        if h[46] != 0 || h[47] != 0 {
            return Err(ParseError::Reserved);
        }
        if frag_len != payload.len() {
            return Err(ParseError::Length);
        }
        if frag_off as u64 + frag_len as u64 > total_len as u64 {
            return Err(ParseError::Fragment);
        }
        match ptype {
            PacketType::Unidata => {
                if frag_len == 0 || frag_len > MAX_FRAGMENT {
                    return Err(ParseError::Fragment);
                }
            }
            _ => {
                if frag_off != 0 || total_len as usize != frag_len {
                    return Err(ParseError::Fragment);
                }
            }
        }
        match ptype {
            PacketType::Locate if payload.len() != LOCATE_NONCE_LEN => return Err(ParseError::Payload),
            PacketType::HereIs if payload.len() != HERE_IS_PROOF_LEN => return Err(ParseError::Payload),
            PacketType::NotHere if !payload.is_empty() => return Err(ParseError::Payload),
            PacketType::Locate | PacketType::HereIs | PacketType::NotHere => {}
            PacketType::Ack | PacketType::Enquiry => {
                parse_ranges(payload)?;
            }
            PacketType::Unidata => {}
        }
        Ok(Packet {
            header: FlipHeader {
                ptype,
                flags,
                hops,
                dst,
                src,
                dst_inc,
                src_inc,
                msg_id,
                total_len,
                frag_off,
            },
            payload,
        })
    }

    /// Append the encoded packet to `out`. The payload must be at most `u16::MAX`
    /// bytes (it is at most [`MAX_FRAGMENT`] when built by this crate).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let h = &self.header;
        out.push(VERSION);
        out.push(h.ptype as u8);
        out.push(h.flags);
        out.push(h.hops);
        out.extend_from_slice(&h.dst.0.to_be_bytes());
        out.extend_from_slice(&h.src.0.to_be_bytes());
        out.extend_from_slice(&h.dst_inc.to_be_bytes());
        out.extend_from_slice(&h.src_inc.to_be_bytes());
        out.extend_from_slice(&h.msg_id.to_be_bytes());
        out.extend_from_slice(&h.total_len.to_be_bytes());
        out.extend_from_slice(&h.frag_off.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(self.payload);
    }

    /// The encoded packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(FLIP_HEADER_LEN + self.payload.len());
        self.encode_into(&mut v);
        v
    }
}

/// Length of a LOCATE's nonce (its whole payload).
pub const LOCATE_NONCE_LEN: usize = 16;
/// Length of a HERE_IS's proof (its whole payload): public key, then signature.
pub const HERE_IS_PROOF_LEN: usize = LOCATE_KEY_LEN + LOCATE_SIGNATURE_LEN;
/// Length of [`here_is_message`].
pub const HERE_IS_MESSAGE_LEN: usize = HERE_IS_DOMAIN.len() + LOCATE_NONCE_LEN + 6 + 8 + 4 + 8;
/// What every signed HERE_IS message starts with, so a locate signature can never be
/// taken for a signature of anything else.
const HERE_IS_DOMAIN: &[u8; 12] = b"flip-here-is";

/// The payload of a HERE_IS: the port's locate public key (whose 48-bit SHA-256 is
/// the put-port) and its signature over [`here_is_message`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HereIsProof {
    /// Public key of the put-port (`amoeba_abi::LocateKey::public_key`).
    pub public_key: [u8; LOCATE_KEY_LEN],
    /// Signature over [`here_is_message`].
    pub signature: [u8; LOCATE_SIGNATURE_LEN],
}

impl HereIsProof {
    /// The encoded proof (a HERE_IS's payload).
    pub fn encode(&self) -> [u8; HERE_IS_PROOF_LEN] {
        let mut b = [0u8; HERE_IS_PROOF_LEN];
        b[..LOCATE_KEY_LEN].copy_from_slice(&self.public_key);
        b[LOCATE_KEY_LEN..].copy_from_slice(&self.signature);
        b
    }

    /// The proof in a HERE_IS's payload, if it has the right length.
    pub fn parse(b: &[u8]) -> Option<HereIsProof> {
        let (public_key, signature) = b.split_first_chunk::<LOCATE_KEY_LEN>()?;
        Some(HereIsProof { public_key: *public_key, signature: (*signature).try_into().ok()? })
    }
}

/// What a server signs to answer a LOCATE: the client's nonce, the put-port, and
/// where requests will go (the server's node address, which names its MAC), its
/// incarnation and memory epoch, the fields of the HERE_IS a client acts on.
pub fn here_is_message(
    nonce: &[u8; LOCATE_NONCE_LEN],
    port: Port,
    server: Addr,
    incarnation: u32,
    epoch: u64,
) -> [u8; HERE_IS_MESSAGE_LEN] {
    let mut m = [0u8; HERE_IS_MESSAGE_LEN];
    let mut at = 0;
    for part in [
        &HERE_IS_DOMAIN[..],
        &nonce[..],
        &port.0[..],
        &server.0.to_be_bytes()[..],
        &incarnation.to_be_bytes()[..],
        &epoch.to_be_bytes()[..],
    ] {
        m[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    m
}

/// Length of [`RequestPrefix`] on the wire.
pub const REQUEST_PREFIX_LEN: usize = 16;

/// The start of every request message, before the Amoeba header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RequestPrefix {
    /// The lowest transaction id the client still has open: the server forgets its
    /// records below it and ignores any packet for them.
    pub low_water: u64,
    /// The server's memory epoch the client learned from its HERE_IS: a server that
    /// does not remember the client runs the request only if its memory reaches back
    /// to this epoch.
    pub epoch: u64,
}

impl RequestPrefix {
    /// The encoded prefix.
    pub fn encode(&self) -> [u8; REQUEST_PREFIX_LEN] {
        let mut b = [0u8; REQUEST_PREFIX_LEN];
        b[..8].copy_from_slice(&self.low_water.to_be_bytes());
        b[8..].copy_from_slice(&self.epoch.to_be_bytes());
        b
    }

    /// The prefix at the start of `b`, if `b` is long enough.
    pub fn parse(b: &[u8]) -> Option<RequestPrefix> {
        let b = b.get(..REQUEST_PREFIX_LEN)?;
        Some(RequestPrefix { low_water: be_u64(b, 0), epoch: be_u64(b, 8) })
    }
}

/// A parsed Ethernet frame carrying FLIP.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Frame<'a> {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// The FLIP packet.
    pub packet: Packet<'a>,
}

impl<'a> Frame<'a> {
    /// Parse a whole Ethernet frame (without FCS). FLIP frames are at least 62 bytes,
    /// so they are never padded; trailing bytes are an error.
    pub fn parse(b: &'a [u8]) -> Result<Frame<'a>, ParseError> {
        let (eth, rest) = b.split_first_chunk::<ETH_HEADER_LEN>().ok_or(ParseError::Short)?;
        if u16::from_be_bytes([eth[12], eth[13]]) != ETHERTYPE_FLIP {
            return Err(ParseError::NotFlip);
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&eth[0..6]);
        let mut src = [0u8; 6];
        src.copy_from_slice(&eth[6..12]);
        Ok(Frame { dst: Mac(dst), src: Mac(src), packet: Packet::parse(rest)? })
    }

    /// Encode the whole Ethernet frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ETH_HEADER_LEN + FLIP_HEADER_LEN + self.packet.payload.len());
        v.extend_from_slice(&self.dst.0);
        v.extend_from_slice(&self.src.0);
        v.extend_from_slice(&ETHERTYPE_FLIP.to_be_bytes());
        self.packet.encode_into(&mut v);
        v
    }
}

/// Parse an ACK/ENQUIRY payload: up to [`MAX_RANGES`] `(offset u32, length u32)`
/// pairs, each non-empty and not wrapping around 2^32.
pub fn parse_ranges(b: &[u8]) -> Result<Vec<(u32, u32)>, ParseError> {
    if !b.len().is_multiple_of(8) || b.len() / 8 > MAX_RANGES {
        return Err(ParseError::Payload);
    }
    let mut v = Vec::with_capacity(b.len() / 8);
    for c in b.chunks_exact(8) {
        let off = be_u32(c, 0);
        let len = be_u32(c, 4);
        if len == 0 || off.checked_add(len).is_none() {
            return Err(ParseError::Payload);
        }
        v.push((off, len));
    }
    Ok(v)
}

/// Encode ranges for an ACK/ENQUIRY payload (at most [`MAX_RANGES`] are used).
pub fn encode_ranges(r: &[(u32, u32)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(r.len().min(MAX_RANGES) * 8);
    for (off, len) in r.iter().take(MAX_RANGES) {
        v.extend_from_slice(&off.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> FlipHeader {
        FlipHeader {
            ptype: PacketType::Unidata,
            flags: F_REPLY,
            hops: 1,
            dst: Addr::node(Mac([2, 0, 0, 0, 0, 1])),
            src: Addr::node(Mac([2, 0, 0, 0, 0, 2])),
            dst_inc: 7,
            src_inc: 9,
            msg_id: 0x0102_0304_0506_0708,
            total_len: 100,
            frag_off: 10,
        }
    }

    #[test]
    fn layout() {
        let payload = [0xaa; 5];
        let f = Frame {
            dst: Mac([2, 0, 0, 0, 0, 1]),
            src: Mac([2, 0, 0, 0, 0, 2]),
            packet: Packet { header: sample(), payload: &payload },
        };
        let b = f.encode();
        assert_eq!(b.len(), ETH_HEADER_LEN + FLIP_HEADER_LEN + 5);
        assert_eq!(&b[12..14], &[0x88, 0xB6]);
        assert_eq!(b[14], VERSION);
        assert_eq!(b[15], 3);
        assert_eq!(b[16], F_REPLY);
        assert_eq!(&b[18..26], &[2, 0, 2, 0, 0, 0, 0, 1]);
        assert_eq!(&b[42..50], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[50..54], &[0, 0, 0, 100]);
        assert_eq!(&b[54..58], &[0, 0, 0, 10]);
        assert_eq!(&b[58..60], &[0, 5]);
        assert_eq!(Frame::parse(&b), Ok(f));
    }

    fn encoded(h: FlipHeader, payload: &[u8]) -> Vec<u8> {
        Packet { header: h, payload }.encode()
    }

    #[test]
    fn rejects() {
        let good = encoded(sample(), &[1; 5]);
        assert!(Packet::parse(&good).is_ok());
        let bad = |i: usize, v: u8| {
            let mut b = good.clone();
            b[i] = v;
            Packet::parse(&b).map(|_| ())
        };
        assert_eq!(bad(0, 1), Err(ParseError::Version)); // version 1 frames are not misread
        assert_eq!(bad(0, 2), Err(ParseError::Version)); // nor version 2 (unproved HERE_IS)
        assert_eq!(bad(0, 4), Err(ParseError::Version));
        assert_eq!(bad(1, 0), Err(ParseError::Type));
        assert_eq!(bad(1, 7), Err(ParseError::Type));
        assert_eq!(bad(2, F_STALE), Err(ParseError::Flags));
        assert_eq!(bad(2, F_ABORT), Err(ParseError::Flags));
        assert_eq!(bad(3, 0), Err(ParseError::Hops));
        assert_eq!(bad(3, MAX_HOPS + 1), Err(ParseError::Hops));
        assert_eq!(bad(4, 3), Err(ParseError::Address));
        assert_eq!(bad(5, 1), Err(ParseError::Address));
        assert_eq!(bad(12, 0), Err(ParseError::Address));
        assert_eq!(bad(46, 1), Err(ParseError::Reserved));
        assert_eq!(bad(45, 6), Err(ParseError::Length));
        assert_eq!(bad(39, 14), Err(ParseError::Fragment)); // total 14 < 10 + 5
        assert_eq!(Packet::parse(&good[..good.len() - 1]), Err(ParseError::Length));
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Packet::parse(&long), Err(ParseError::Length));
        for n in 0..FLIP_HEADER_LEN {
            assert_eq!(Packet::parse(&good[..n]), Err(ParseError::Short));
        }
        // Control packets: no fragmentation, no payload where none is allowed.
        let mut h = sample();
        h.ptype = PacketType::Locate;
        h.flags = 0;
        h.total_len = LOCATE_NONCE_LEN as u32;
        h.frag_off = 0;
        assert!(Packet::parse(&encoded(h, &[7; LOCATE_NONCE_LEN])).is_ok());
        h.total_len = 0;
        assert_eq!(Packet::parse(&encoded(h, &[])), Err(ParseError::Payload)); // a LOCATE needs its nonce
        h.total_len = 5;
        assert_eq!(Packet::parse(&encoded(h, &[])), Err(ParseError::Fragment));
        h.ptype = PacketType::HereIs;
        h.total_len = HERE_IS_PROOF_LEN as u32;
        assert!(Packet::parse(&encoded(h, &[1; HERE_IS_PROOF_LEN])).is_ok());
        h.total_len = 0;
        assert_eq!(Packet::parse(&encoded(h, &[])), Err(ParseError::Payload)); // a HERE_IS needs its proof
        h.ptype = PacketType::NotHere;
        h.total_len = 1;
        assert_eq!(Packet::parse(&encoded(h, &[0])), Err(ParseError::Payload));
        // Ranges.
        h.ptype = PacketType::Ack;
        h.total_len = 7;
        assert_eq!(Packet::parse(&encoded(h, &[0; 7])), Err(ParseError::Payload));
        h.total_len = 8;
        assert_eq!(Packet::parse(&encoded(h, &[0; 8])), Err(ParseError::Payload)); // empty range
        let r = encode_ranges(&[(u32::MAX, 1)]);
        assert_eq!(Packet::parse(&encoded(h, &r)), Err(ParseError::Payload));
        let r = encode_ranges(&[(5, 1), (u32::MAX - 1, 1)]);
        h.total_len = 16;
        let p = encoded(h, &r);
        assert_eq!(parse_ranges(Packet::parse(&p).unwrap().payload), Ok(vec![(5, 1), (u32::MAX - 1, 1)]));
        // Unidata must carry data.
        let mut h = sample();
        h.total_len = 0;
        h.frag_off = 0;
        assert_eq!(Packet::parse(&encoded(h, &[])), Err(ParseError::Fragment));
        // Frames.
        let f = Frame {
            dst: Mac::BROADCAST,
            src: Mac([2, 0, 0, 0, 0, 2]),
            packet: Packet::parse(&good).unwrap(),
        }
        .encode();
        assert!(Frame::parse(&f).is_ok());
        let mut g = f.clone();
        g[13] = 0;
        assert_eq!(Frame::parse(&g), Err(ParseError::NotFlip));
        assert_eq!(Frame::parse(&f[..13]), Err(ParseError::Short));
        assert!(Mac::BROADCAST.is_broadcast() && Mac::BROADCAST.is_multicast());
    }

    #[test]
    fn here_is_proof_and_message() {
        let proof = HereIsProof { public_key: [1; 32], signature: [2; 64] };
        assert_eq!(HereIsProof::parse(&proof.encode()), Some(proof));
        assert_eq!(HereIsProof::parse(&[0; HERE_IS_PROOF_LEN - 1]), None);
        let m = here_is_message(&[3; 16], Port([4; 6]), Addr::node(Mac([5; 6])), 6, 7);
        assert_eq!(&m[..12], b"flip-here-is");
        assert_eq!(&m[12..28], &[3; 16]);
        assert_eq!(&m[28..34], &[4; 6]);
        assert_eq!(&m[34..42], &[2, 0, 5, 5, 5, 5, 5, 5]);
        assert_eq!(&m[42..46], &[0, 0, 0, 6]);
        assert_eq!(&m[46..], &[0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn request_prefix() {
        let p = RequestPrefix { low_water: 0x0102_0304_0506_0708, epoch: 9 };
        let b = p.encode();
        assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[8..], &[0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(RequestPrefix::parse(&b), Some(p));
        assert_eq!(RequestPrefix::parse(&b[..15]), None);
    }

    #[test]
    fn addresses() {
        let p = amoeba_abi::Port([1, 2, 3, 4, 5, 6]);
        assert_eq!(Addr::port(p).kind(), Some(AddrKind::Port(p)));
        assert_eq!(Addr::port(p).as_port(), Some(p));
        let m = Mac([7, 8, 9, 10, 11, 12]);
        assert_eq!(Addr::node(m).kind(), Some(AddrKind::Node(m)));
        assert!(Addr::node(m).is_node());
        assert_eq!(Addr(0).kind(), None);
        assert_eq!(Addr(0x0101 << 48).kind(), None);
    }

    fn arb_addr() -> impl Strategy<Value = Addr> {
        (any::<bool>(), any::<[u8; 6]>())
            .prop_map(|(port, b)| if port { Addr::port(amoeba_abi::Port(b)) } else { Addr::node(Mac(b)) })
    }

    fn arb_packet() -> impl Strategy<Value = (FlipHeader, Vec<u8>)> {
        (
            0usize..6,
            any::<u8>(),
            1u8..=MAX_HOPS,
            arb_addr(),
            arb_addr(),
            any::<(u32, u32, u64)>(),
            proptest::collection::vec(any::<u8>(), 1..300),
            any::<(u16, u16)>(),
            proptest::collection::vec((0u32..1 << 31, 1u32..1 << 30), 0..MAX_RANGES),
        )
            .prop_map(|(t, flags, hops, dst, src, (di, si, id), data, (off, extra), ranges)| {
                let ptype = [
                    PacketType::Locate,
                    PacketType::HereIs,
                    PacketType::Unidata,
                    PacketType::NotHere,
                    PacketType::Ack,
                    PacketType::Enquiry,
                ][t];
                let mut flags = flags & ptype.allowed_flags();
                if ptype == PacketType::Unidata && flags & F_REPLY == 0 {
                    flags &= !F_ABORT;
                }
                let (payload, frag_off, total_len) = match ptype {
                    PacketType::Unidata => {
                        let n = data.len() as u32;
                        (data, off as u32, off as u32 + n + extra as u32)
                    }
                    PacketType::Ack | PacketType::Enquiry => {
                        let p = encode_ranges(&ranges);
                        let n = p.len() as u32;
                        (p, 0, n)
                    }
                    PacketType::Locate => (
                        data.iter().cycle().take(LOCATE_NONCE_LEN).copied().collect(),
                        0,
                        LOCATE_NONCE_LEN as u32,
                    ),
                    PacketType::HereIs => (
                        data.iter().cycle().take(HERE_IS_PROOF_LEN).copied().collect(),
                        0,
                        HERE_IS_PROOF_LEN as u32,
                    ),
                    _ => (Vec::new(), 0, 0),
                };
                let h = FlipHeader {
                    ptype,
                    flags,
                    hops,
                    dst,
                    src,
                    dst_inc: di,
                    src_inc: si,
                    msg_id: id,
                    total_len,
                    frag_off,
                };
                (h, payload)
            })
    }

    proptest! {
        #[test]
        fn roundtrip((h, payload) in arb_packet(), dst: [u8; 6], src: [u8; 6]) {
            let bytes = encoded(h, &payload);
            let p = Packet::parse(&bytes).unwrap();
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.payload, &payload[..]);
            let f = Frame { dst: Mac(dst), src: Mac(src), packet: p };
            let fb = f.encode();
            prop_assert_eq!(Frame::parse(&fb), Ok(f));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Packet::parse(&b) {
                prop_assert_eq!(p.encode(), b.clone());
            }
            if let Ok(f) = Frame::parse(&b) {
                prop_assert_eq!(f.encode(), b.clone());
            }
            let _ = parse_ranges(&b);
        }

        #[test]
        fn mutated_packets_never_panic((h, payload) in arb_packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
            let mut b = encoded(h, &payload);
            for (i, v) in flips {
                let n = b.len();
                b[i % n] ^= v;
            }
            let n = cut % (b.len() + 1);
            for s in [&b[..], &b[..n]] {
                if let Ok(p) = Packet::parse(s) {
                    prop_assert_eq!(p.encode(), s.to_vec());
                }
            }
        }
    }
}
