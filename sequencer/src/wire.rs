//! Group packet wire format.
//!
//! Every packet starts with a 26-byte header (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 2 | magic `0x5351` ("SQ") |
//! | 1 | version (3) |
//! | 1 | kind |
//! | 6 | group port (48 bits) |
//! | 4 | incarnation of the group the sender is in |
//! | 4 | sender's member id ([`NO_MEMBER`] if it has none) |
//! | 8 | the one member address it is for, or 0 for the whole group |
//!
//! followed by a body that depends on the kind, and an 8-byte tag: a keyed
//! hash ([`crate::auth`]) over the sender's address and every byte before
//! it. Version 3 adds the addressee and the tag, the rights of every member
//! (in joins, welcomes and reset views), a digest of each BB payload in the
//! sequencer's accept, and the join handshake (a challenge and a proof
//! instead of the credential itself).
//!
//! Decoding is strict: unknown
//! kinds, truncated or trailing bytes, out-of-range values and non-canonical
//! booleans are all errors. The decoder never panics and never allocates more
//! than the input length justifies. It does not check the tag: that takes
//! the key, which depends on the kind (see [`crate::auth`]).

use alloc::vec::Vec;
use amoeba_abi::wire::{Reader, Truncated, Writer};

/// Magic number at the start of every group packet.
pub const MAGIC: u16 = 0x5351;
/// Wire format version.
pub const VERSION: u8 = 3;
/// Member id used by a process that is not (yet) a member.
pub const NO_MEMBER: u32 = u32::MAX;
/// Group ports are 48-bit values.
pub const PORT_MASK: u64 = (1 << 48) - 1;
/// Size of the common header.
pub const HEADER_LEN: usize = 26;
/// Size of the tag at the end of every packet.
pub const TAG_LEN: usize = 8;

/// Data/accept flag: the receiver must acknowledge (resilience > 0).
pub const FLAG_NEED_ACK: u8 = 0x01;
/// Data flag: this is a retransmission.
pub const FLAG_RETRANS: u8 = 0x02;
/// Status flag: every member must answer with an [`Body::Ack`] (alive check /
/// sync). On an [`Body::Ack`]: the sender asks the sequencer for a status (it
/// has not heard from it for a while).
pub const FLAG_SYNC: u8 = 0x04;
const DATA_FLAGS: u8 = FLAG_NEED_ACK | FLAG_RETRANS | FLAG_SYNC;

/// Why decoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The packet ended early.
    Truncated,
    /// Wrong magic number.
    BadMagic,
    /// Unsupported version.
    BadVersion(u8),
    /// Unknown packet kind.
    BadKind(u8),
    /// A field holds a value outside its range.
    BadValue,
    /// Bytes left over after the body.
    TrailingBytes,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated group packet"),
            DecodeError::BadMagic => write!(f, "bad magic"),
            DecodeError::BadVersion(v) => write!(f, "unsupported version {v}"),
            DecodeError::BadKind(k) => write!(f, "unknown packet kind {k}"),
            DecodeError::BadValue => write!(f, "field out of range"),
            DecodeError::TrailingBytes => write!(f, "trailing bytes"),
        }
    }
}

/// Common header of every group packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Group port (48 bits).
    pub port: u64,
    /// Incarnation (bumped by every completed reset).
    pub inc: u32,
    /// Sender's member id, or [`NO_MEMBER`].
    pub src: u32,
    /// The member address the packet is for, or 0 for the whole group.
    pub to: u64,
}

/// Paxos-style ballot used during reset: ordered by round, then coordinator id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// Round number.
    pub round: u32,
    /// Coordinator's member id.
    pub id: u32,
}

/// What a sequenced entry carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryBody {
    /// An application message.
    App(Vec<u8>),
    /// A member joined; the entry's `sender` is the new member id.
    Join {
        /// The new member's address.
        addr: u64,
        /// The rights its capability carries ([`crate::RIGHT_SEND`]: it
        /// may send).
        rights: u8,
    },
    /// The entry's `sender` left; if it was the sequencer, `successor` takes over.
    Leave {
        /// New sequencer, or [`NO_MEMBER`].
        successor: u32,
    },
    /// The sequencer removed a member that stopped answering.
    Remove {
        /// The removed member.
        member: u32,
    },
    /// First entry of a new incarnation after a reset.
    Reset {
        /// The new incarnation.
        new_inc: u32,
        /// Members dropped by the reset (id, address).
        removed: Vec<(u32, u64)>,
    },
}

/// What a [`Body::Data`] carries for one sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// The whole entry.
    Entry(Entry),
    /// A BB message (its payload was broadcast by its sender): the sequencer
    /// only names it.
    Bb {
        /// Original sender.
        sender: u32,
        /// Original message id.
        msg_id: u32,
        /// [`crate::auth::digest`] of the payload the sequencer ordered: a
        /// member takes only that payload for this entry.
        digest: [u8; 8],
    },
}

/// Item tag of [`Item::Bb`] on the wire (after the entry body tags).
const TAG_BB: u8 = 5;

/// Bytes of a [`Body::Data`] packet besides its items.
pub const DATA_OVERHEAD: usize = HEADER_LEN + 8 + 8 + 8 + 1 + 2 + TAG_LEN;

impl Item {
    /// Bytes this item takes in a [`Body::Data`] packet.
    pub fn encoded_len(&self) -> usize {
        const FIXED: usize = 4 + 4 + 1;
        FIXED
            + match self {
                Item::Bb { .. } => 8,
                Item::Entry(e) => match &e.body {
                    EntryBody::App(p) => 4 + p.len(),
                    EntryBody::Join { .. } => 9,
                    EntryBody::Leave { .. } | EntryBody::Remove { .. } => 4,
                    EntryBody::Reset { removed, .. } => 4 + 2 + 12 * removed.len(),
                },
            }
    }
}

/// One sequenced entry of the total order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Member that sent it (for `Join`, the new member's id).
    pub sender: u32,
    /// Sender-local message id (duplicate suppression).
    pub msg_id: u32,
    /// Contents.
    pub body: EntryBody,
}

/// A member of a view proposed by a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewMember {
    /// Member id.
    pub id: u32,
    /// Address.
    pub addr: u64,
    /// What it acknowledged in its promise (it holds everything below).
    pub ack: u64,
    /// The rights it joined with.
    pub rights: u8,
}

/// The value a reset agrees on: the new incarnation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Incarnation being replaced.
    pub old_inc: u32,
    /// New incarnation.
    pub new_inc: u32,
    /// New sequencer.
    pub sequencer: u32,
    /// Lowest sequence number anyone still needed.
    pub min_d: u64,
    /// Everything below was delivered somewhere and is accepted.
    pub floor: u64,
    /// Entries from `base` on are discarded; `base` becomes the reset entry.
    pub base: u64,
    /// The members of the new incarnation.
    pub members: Vec<ViewMember>,
    /// Members dropped.
    pub removed: Vec<(u32, u64)>,
}

/// Group parameters, fixed at creation and handed to joiners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupParams {
    /// Resilience degree r.
    pub resilience: u16,
    /// Maximum number of members.
    pub max_members: u16,
    /// History buffer size (entries).
    pub history_size: u32,
    /// Largest application payload.
    pub max_message_size: u32,
    /// Payloads larger than this use the BB method.
    pub bb_threshold: u32,
    /// Members a reset needs; 0 means a majority of the membership.
    pub min_reset_members: u16,
}

/// A member as listed in a welcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WelcomeMember {
    /// Member id.
    pub id: u32,
    /// Address.
    pub addr: u64,
    /// Highest message id of this member sequenced so far.
    pub last_msg_id: u32,
    /// The rights it joined with.
    pub rights: u8,
}

/// Packet bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// Member → sequencer: please sequence this (PB method), or my leave.
    Send {
        /// Sender-local message id.
        msg_id: u32,
        /// Sender holds every entry below this.
        ack: u64,
        /// This is a leave request (payload empty).
        leave: bool,
        /// The message.
        payload: Vec<u8>,
    },
    /// Member → group: a large message (BB method).
    BbData {
        /// Sender-local message id.
        msg_id: u32,
        /// Sender holds every entry below this.
        ack: u64,
        /// The message.
        payload: Vec<u8>,
    },
    /// Sequenced entries `seq`, `seq + 1`, … (at least one).
    Data {
        /// Sequence number of the first item.
        seq: u64,
        /// Entries below are accepted (deliverable).
        accepted: u64,
        /// Entries below are held by every member.
        stable: u64,
        /// `FLAG_*`.
        flags: u8,
        /// The entries, in order.
        items: Vec<Item>,
    },
    /// Sequencer → group: heartbeat, accept and sync request.
    Status {
        /// Next sequence number to be stamped.
        next_seq: u64,
        /// Entries below are accepted.
        accepted: u64,
        /// Entries below are stable.
        stable: u64,
        /// `FLAG_*`.
        flags: u8,
    },
    /// Member → sequencer: I hold every entry below `ack`.
    Ack {
        /// Acknowledged prefix.
        ack: u64,
        /// The sender knows that every member holds the entries below this.
        stable: u64,
        /// [`FLAG_SYNC`]: please answer with a status.
        flags: u8,
    },
    /// Ask for entries `from..to`.
    Retrans {
        /// First wanted.
        from: u64,
        /// One past the last wanted.
        to: u64,
        /// Any member holding them may answer, not only the sequencer.
        any: bool,
    },
    /// Joiner → group: let me in, on the strength of a capability for the
    /// group with these object and rights. The check field never travels:
    /// with `challenge` set, the tag, keyed by the check
    /// ([`crate::auth::capability_key`]), proves the joiner holds it.
    JoinReq {
        /// The joiner's number for this join attempt; the sequencer's
        /// answers repeat it.
        nonce: u64,
        /// The capability's object number (0 for a group).
        object: u32,
        /// The capability's rights.
        rights: u8,
        /// The sequencer's challenge being answered, if one came.
        challenge: Option<Challenge>,
    },
    /// Sequencer → joiner: prove you hold the capability, for this
    /// challenge (tagged with the capability's key).
    Challenge {
        /// The joiner's nonce.
        nonce: u64,
        /// What to answer.
        challenge: Challenge,
    },
    /// Sequencer → joiner: you are in (tagged with the capability's key).
    Welcome {
        /// The joiner's nonce.
        nonce: u64,
        /// Your member id.
        member_id: u32,
        /// Sequence number of your join entry.
        join_seq: u64,
        /// Sequencer's member id.
        sequencer: u32,
        /// Entries below are accepted.
        accepted: u64,
        /// Entries below are stable.
        stable: u64,
        /// Group parameters.
        params: GroupParams,
        /// Membership right after your join.
        members: Vec<WelcomeMember>,
        /// The group's secret check, so that any member can check joiners
        /// once it is the sequencer (only nuclei and the host see it),
        /// encrypted with [`crate::auth::welcome_pad`].
        secret: [u8; 6],
    },
    /// Sequencer → joiner: no (the capability lacks the right to join, or
    /// the group is full); tagged with the capability's key.
    JoinDenied {
        /// The joiner's nonce.
        nonce: u64,
    },
    /// Sequencer → sender: you are not a member (any more).
    NotMember {
        /// The member id the sender claimed.
        member: u32,
    },
    /// Reset: I am resetting and hold everything below `recv_upto`.
    ResetStatus {
        /// Contiguously held prefix.
        recv_upto: u64,
    },
    /// Reset phase 1a.
    Prepare {
        /// Coordinator's ballot.
        ballot: Ballot,
    },
    /// Reset phase 1b.
    Promise {
        /// Ballot promised.
        ballot: Ballot,
        /// Next sequence number this member would deliver.
        delivered: u64,
        /// Sequence number of this member's join: it never held what came
        /// before.
        joined: u64,
        /// Contiguously held prefix.
        recv_upto: u64,
        /// Held sequence numbers as half-open ranges, ascending.
        held: Vec<(u64, u64)>,
        /// A view accepted earlier in this reset, if any.
        accepted: Option<(Ballot, View)>,
        /// Set by the member that was the sequencer: its accepted mark.
        seq_accepted: Option<u64>,
    },
    /// Reset: I promised a higher ballot.
    Nack {
        /// The ballot promised.
        ballot: Ballot,
    },
    /// Reset phase 2a.
    Accept {
        /// Coordinator's ballot.
        ballot: Ballot,
        /// Proposed view.
        view: View,
    },
    /// Reset phase 2b.
    Accepted {
        /// Ballot accepted.
        ballot: Ballot,
    },
    /// Reset outcome: install this view.
    Decided {
        /// The chosen view.
        view: View,
    },
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Send { .. } => 1,
            Body::BbData { .. } => 2,
            Body::Data { .. } => 3,
            Body::Status { .. } => 5,
            Body::Ack { .. } => 6,
            Body::Retrans { .. } => 7,
            Body::JoinReq { .. } => 8,
            Body::Welcome { .. } => 9,
            Body::JoinDenied { .. } => 10,
            Body::NotMember { .. } => 11,
            Body::Challenge { .. } => 19,
            Body::ResetStatus { .. } => 12,
            Body::Prepare { .. } => 13,
            Body::Promise { .. } => 14,
            Body::Nack { .. } => 15,
            Body::Accept { .. } => 16,
            Body::Accepted { .. } => 17,
            Body::Decided { .. } => 18,
        }
    }
}

/// What a sequencer asks a joiner to prove its capability for: the point
/// in the order it was asked at. It changes with every membership change,
/// so a recorded join request is worthless once its join (or any other
/// change) is in the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The group's incarnation.
    pub inc: u32,
    /// Sequence number of the last membership change.
    pub last_change: u64,
}

/// A whole group packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Common header.
    pub header: Header,
    /// Kind-specific body.
    pub body: Body,
}

// ---------------------------------------------------------------- encoding

/// The shared writer, with this format's own fields on top.
struct W(Writer);

impl core::ops::Deref for W {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.0
    }
}

impl core::ops::DerefMut for W {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.0
    }
}

impl W {
    fn bool(&mut self, v: bool) {
        self.u8(v as u8);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.raw(b);
    }
    fn count(&mut self, n: usize) {
        // Lists are bounded by u16 counts; the state machine never builds longer ones.
        debug_assert!(n <= u16::MAX as usize);
        self.u16(n as u16);
    }
    fn ballot(&mut self, b: Ballot) {
        self.u32(b.round);
        self.u32(b.id);
    }
    fn item(&mut self, item: &Item) {
        match item {
            Item::Entry(e) => self.entry(e),
            Item::Bb { sender, msg_id, digest } => {
                self.u32(*sender);
                self.u32(*msg_id);
                self.u8(TAG_BB);
                self.raw(digest);
            }
        }
    }
    fn entry(&mut self, e: &Entry) {
        self.u32(e.sender);
        self.u32(e.msg_id);
        match &e.body {
            EntryBody::App(p) => {
                self.u8(0);
                self.bytes(p);
            }
            EntryBody::Join { addr, rights } => {
                self.u8(1);
                self.u64(*addr);
                self.u8(*rights);
            }
            EntryBody::Leave { successor } => {
                self.u8(2);
                self.u32(*successor);
            }
            EntryBody::Remove { member } => {
                self.u8(3);
                self.u32(*member);
            }
            EntryBody::Reset { new_inc, removed } => {
                self.u8(4);
                self.u32(*new_inc);
                self.pairs(removed);
            }
        }
    }
    fn pairs(&mut self, v: &[(u32, u64)]) {
        self.count(v.len());
        for (id, addr) in v {
            self.u32(*id);
            self.u64(*addr);
        }
    }
    fn view(&mut self, v: &View) {
        self.u32(v.old_inc);
        self.u32(v.new_inc);
        self.u32(v.sequencer);
        self.u64(v.min_d);
        self.u64(v.floor);
        self.u64(v.base);
        self.count(v.members.len());
        for m in &v.members {
            self.u32(m.id);
            self.u64(m.addr);
            self.u64(m.ack);
            self.u8(m.rights);
        }
        self.pairs(&v.removed);
    }
    fn challenge(&mut self, c: &Challenge) {
        self.u32(c.inc);
        self.u64(c.last_change);
    }
}

impl Packet {
    /// Encodes the packet, with a tag of zeros (see
    /// [`crate::auth::seal`] for the real one).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.encode_unsealed();
        bytes.extend_from_slice(&[0; TAG_LEN]);
        bytes
    }

    /// Encodes everything the tag covers (the packet without its tag).
    pub fn encode_unsealed(&self) -> Vec<u8> {
        let mut w = W(Writer::from_vec(Vec::with_capacity(64)));
        w.u16(MAGIC);
        w.u8(VERSION);
        w.u8(self.body.kind());
        w.u48(self.header.port & PORT_MASK);
        w.u32(self.header.inc);
        w.u32(self.header.src);
        w.u64(self.header.to);
        match &self.body {
            Body::Send { msg_id, ack, leave, payload } => {
                w.u32(*msg_id);
                w.u64(*ack);
                w.bool(*leave);
                w.bytes(payload);
            }
            Body::BbData { msg_id, ack, payload } => {
                w.u32(*msg_id);
                w.u64(*ack);
                w.bytes(payload);
            }
            Body::Data { seq, accepted, stable, flags, items } => {
                w.u64(*seq);
                w.u64(*accepted);
                w.u64(*stable);
                w.u8(*flags);
                w.count(items.len());
                for item in items {
                    w.item(item);
                }
            }
            Body::Status { next_seq, accepted, stable, flags } => {
                w.u64(*next_seq);
                w.u64(*accepted);
                w.u64(*stable);
                w.u8(*flags);
            }
            Body::Ack { ack, stable, flags } => {
                w.u64(*ack);
                w.u64(*stable);
                w.u8(*flags);
            }
            Body::Retrans { from, to, any } => {
                w.u64(*from);
                w.u64(*to);
                w.bool(*any);
            }
            Body::JoinReq { nonce, object, rights, challenge } => {
                w.u64(*nonce);
                w.raw(&object.to_be_bytes()[1..]);
                w.u8(*rights);
                match challenge {
                    None => w.u8(0),
                    Some(c) => {
                        w.u8(1);
                        w.challenge(c);
                    }
                }
            }
            Body::Challenge { nonce, challenge } => {
                w.u64(*nonce);
                w.challenge(challenge);
            }
            Body::JoinDenied { nonce } => w.u64(*nonce),
            Body::NotMember { member } => w.u32(*member),
            Body::Welcome {
                nonce,
                member_id,
                join_seq,
                sequencer,
                accepted,
                stable,
                params,
                members,
                secret,
            } => {
                w.u64(*nonce);
                w.raw(secret);
                w.u32(*member_id);
                w.u64(*join_seq);
                w.u32(*sequencer);
                w.u64(*accepted);
                w.u64(*stable);
                w.u16(params.resilience);
                w.u16(params.max_members);
                w.u32(params.history_size);
                w.u32(params.max_message_size);
                w.u32(params.bb_threshold);
                w.u16(params.min_reset_members);
                w.count(members.len());
                for m in members {
                    w.u32(m.id);
                    w.u64(m.addr);
                    w.u32(m.last_msg_id);
                    w.u8(m.rights);
                }
            }
            Body::ResetStatus { recv_upto } => w.u64(*recv_upto),
            Body::Prepare { ballot } | Body::Nack { ballot } | Body::Accepted { ballot } => w.ballot(*ballot),
            Body::Promise { ballot, delivered, joined, recv_upto, held, accepted, seq_accepted } => {
                w.ballot(*ballot);
                w.u64(*delivered);
                w.u64(*joined);
                w.u64(*recv_upto);
                w.count(held.len());
                for (a, b) in held {
                    w.u64(*a);
                    w.u64(*b);
                }
                match accepted {
                    None => w.u8(0),
                    Some((b, v)) => {
                        w.u8(1);
                        w.ballot(*b);
                        w.view(v);
                    }
                }
                match seq_accepted {
                    None => w.u8(0),
                    Some(a) => {
                        w.u8(1);
                        w.u64(*a);
                    }
                }
            }
            Body::Accept { ballot, view } => {
                w.ballot(*ballot);
                w.view(view);
            }
            Body::Decided { view } => w.view(view),
        }
        w.0.buf
    }

    /// Decodes a packet, strictly (its tag is not checked: see
    /// [`crate::auth::open`]).
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(DecodeError::Truncated);
        }
        let mut r = R(Reader::new(&bytes[..bytes.len() - TAG_LEN]));
        if r.u16()? != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::BadVersion(version));
        }
        let kind = r.u8()?;
        let header = Header { port: r.u48()?, inc: r.u32()?, src: r.u32()?, to: r.u64()? };
        let body = match kind {
            1 => Body::Send { msg_id: r.u32()?, ack: r.u64()?, leave: r.bool()?, payload: r.bytes()? },
            2 => Body::BbData { msg_id: r.u32()?, ack: r.u64()?, payload: r.bytes()? },
            3 => {
                let seq = r.u64()?;
                let accepted = r.u64()?;
                let stable = r.u64()?;
                let flags = r.flags()?;
                let n = r.count(9)?;
                if n == 0 || seq.checked_add(n as u64).is_none() {
                    return Err(DecodeError::BadValue);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(r.item()?);
                }
                Body::Data { seq, accepted, stable, flags, items }
            }
            5 => Body::Status { next_seq: r.u64()?, accepted: r.u64()?, stable: r.u64()?, flags: r.flags()? },
            6 => Body::Ack { ack: r.u64()?, stable: r.u64()?, flags: r.flags()? },
            7 => {
                let from = r.u64()?;
                let to = r.u64()?;
                if from > to {
                    return Err(DecodeError::BadValue);
                }
                Body::Retrans { from, to, any: r.bool()? }
            }
            8 => {
                let nonce = r.u64()?;
                let object = r.u24()?;
                let rights = r.u8()?;
                let challenge = match r.u8()? {
                    0 => None,
                    1 => Some(r.challenge()?),
                    _ => return Err(DecodeError::BadValue),
                };
                Body::JoinReq { nonce, object, rights, challenge }
            }
            19 => Body::Challenge { nonce: r.u64()?, challenge: r.challenge()? },
            9 => {
                let nonce = r.u64()?;
                let secret = r.array()?;
                let member_id = r.u32()?;
                let join_seq = r.u64()?;
                let sequencer = r.u32()?;
                let accepted = r.u64()?;
                let stable = r.u64()?;
                let params = GroupParams {
                    resilience: r.u16()?,
                    max_members: r.u16()?,
                    history_size: r.u32()?,
                    max_message_size: r.u32()?,
                    bb_threshold: r.u32()?,
                    min_reset_members: r.u16()?,
                };
                if params.history_size == 0 {
                    return Err(DecodeError::BadValue);
                }
                let n = r.count(17)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    members.push(WelcomeMember {
                        id: r.u32()?,
                        addr: r.u64()?,
                        last_msg_id: r.u32()?,
                        rights: r.u8()?,
                    });
                }
                Body::Welcome {
                    nonce,
                    member_id,
                    join_seq,
                    sequencer,
                    accepted,
                    stable,
                    params,
                    members,
                    secret,
                }
            }
            10 => Body::JoinDenied { nonce: r.u64()? },
            11 => Body::NotMember { member: r.u32()? },
            12 => Body::ResetStatus { recv_upto: r.u64()? },
            13 => Body::Prepare { ballot: r.ballot()? },
            14 => {
                let ballot = r.ballot()?;
                let delivered = r.u64()?;
                let joined = r.u64()?;
                let recv_upto = r.u64()?;
                let n = r.count(16)?;
                let mut held = Vec::with_capacity(n);
                for _ in 0..n {
                    let a = r.u64()?;
                    let b = r.u64()?;
                    if a > b {
                        return Err(DecodeError::BadValue);
                    }
                    held.push((a, b));
                }
                let accepted = match r.u8()? {
                    0 => None,
                    1 => Some((r.ballot()?, r.view()?)),
                    _ => return Err(DecodeError::BadValue),
                };
                let seq_accepted = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    _ => return Err(DecodeError::BadValue),
                };
                Body::Promise { ballot, delivered, joined, recv_upto, held, accepted, seq_accepted }
            }
            15 => Body::Nack { ballot: r.ballot()? },
            16 => Body::Accept { ballot: r.ballot()?, view: r.view()? },
            17 => Body::Accepted { ballot: r.ballot()? },
            18 => Body::Decided { view: r.view()? },
            k => return Err(DecodeError::BadKind(k)),
        };
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(Packet { header, body })
    }
}

// ---------------------------------------------------------------- decoding

/// The shared reader, with this format's own fields on top.
struct R<'a>(Reader<'a>);

impl<'a> core::ops::Deref for R<'a> {
    type Target = Reader<'a>;
    fn deref(&self) -> &Reader<'a> {
        &self.0
    }
}

impl core::ops::DerefMut for R<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<Truncated> for DecodeError {
    fn from(_: Truncated) -> DecodeError {
        DecodeError::Truncated
    }
}

impl R<'_> {
    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue),
        }
    }
    fn flags(&mut self) -> Result<u8, DecodeError> {
        let f = self.u8()?;
        if f & !DATA_FLAGS != 0 {
            return Err(DecodeError::BadValue);
        }
        Ok(f)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    /// A u16 element count, checked against the bytes left (`elem` bytes each).
    fn count(&mut self, elem: usize) -> Result<usize, DecodeError> {
        let n = self.u16()? as usize;
        if n * elem > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    fn ballot(&mut self) -> Result<Ballot, DecodeError> {
        Ok(Ballot { round: self.u32()?, id: self.u32()? })
    }
    fn pairs(&mut self) -> Result<Vec<(u32, u64)>, DecodeError> {
        let n = self.count(12)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push((self.u32()?, self.u64()?));
        }
        Ok(v)
    }
    fn item(&mut self) -> Result<Item, DecodeError> {
        let sender = self.u32()?;
        let msg_id = self.u32()?;
        let body = match self.u8()? {
            TAG_BB => return Ok(Item::Bb { sender, msg_id, digest: self.array()? }),
            0 => EntryBody::App(self.bytes()?),
            1 => EntryBody::Join { addr: self.u64()?, rights: self.u8()? },
            2 => EntryBody::Leave { successor: self.u32()? },
            3 => EntryBody::Remove { member: self.u32()? },
            4 => EntryBody::Reset { new_inc: self.u32()?, removed: self.pairs()? },
            _ => return Err(DecodeError::BadValue),
        };
        Ok(Item::Entry(Entry { sender, msg_id, body }))
    }
    fn view(&mut self) -> Result<View, DecodeError> {
        let old_inc = self.u32()?;
        let new_inc = self.u32()?;
        let sequencer = self.u32()?;
        let min_d = self.u64()?;
        let floor = self.u64()?;
        let base = self.u64()?;
        if min_d > floor || floor > base {
            return Err(DecodeError::BadValue);
        }
        let n = self.count(21)?;
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(ViewMember {
                id: self.u32()?,
                addr: self.u64()?,
                ack: self.u64()?,
                rights: self.u8()?,
            });
        }
        let removed = self.pairs()?;
        Ok(View { old_inc, new_inc, sequencer, min_d, floor, base, members, removed })
    }
    fn challenge(&mut self) -> Result<Challenge, DecodeError> {
        Ok(Challenge { inc: self.u32()?, last_change: self.u64()? })
    }
}
