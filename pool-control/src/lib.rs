//! Pool control frames and the boot bundle format: the frame-level protocol the host's `boot` program
//! and every nucleus speak directly on the virtual Ethernet, below FLIP.
//!
//! It carries what must work before any service does: discovery and
//! readiness of boards, and an echo answered straight from the nucleus'
//! network path (the baseline every RPC benchmark is measured against).
//!
//! Frame: destination MAC, source MAC, [`ETHERTYPE`], then a message:
//! `kind: u8`, `version: u8`, then the kind's fields, big endian.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bundle;
pub mod pattern;
pub mod secret;

/// Local experimental ethertype (IEEE 802 "Local Experimental Ethertype 1").
pub const ETHERTYPE: u16 = 0x88B5;
pub const VERSION: u8 = 1;
pub const BROADCAST: Mac = Mac([0xff; 6]);
/// Ethernet header: two MACs and the ethertype.
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Longest frame a board accepts (Ethernet MTU plus header).
pub const MAX_FRAME_LEN: usize = 1514;
/// Longest echo payload that fits one frame.
pub const MAX_ECHO_PAYLOAD: usize = MAX_FRAME_LEN - ETHERNET_HEADER_LEN - 6;
/// Longest role name a board reports.
pub const MAX_ROLE_LEN: usize = 32;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The MAC the pool gives board `id`: locally administered, unicast.
    pub const fn for_board(id: u16) -> Mac {
        Mac([0x52, 0x54, 0x00, 0xa0, (id >> 8) as u8, id as u8])
    }

    /// The MAC of host port `index` (host ports live in a separate range).
    pub const fn for_host(index: u16) -> Mac {
        Mac([0x52, 0x54, 0x00, 0xff, (index >> 8) as u8, index as u8])
    }
}

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl core::fmt::Debug for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// Why a frame was not a valid pool control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    TooShort,
    NotPoolControl,
    UnknownVersion(u8),
    UnknownKind(u8),
    /// A text field (role, program name) that is empty, too long or not UTF-8.
    BadRole,
    /// A field whose value is out of its range.
    BadValue,
}

/// What a board reports about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardStatus<'a> {
    pub board_id: u16,
    /// Boot incarnation: changes every time the board boots.
    pub incarnation: u32,
    pub role: &'a str,
    /// Milliseconds since the board booted.
    pub uptime_ms: u32,
}

/// One pool control message (the Ethernet payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Answer with an `EchoReply` carrying the same id and payload.
    EchoRequest {
        id: u32,
        payload: &'a [u8],
    },
    EchoReply {
        id: u32,
        payload: &'a [u8],
    },
    /// Every board answers with `Ready` to the sender.
    Discover,
    /// A board is up (sent once at boot to broadcast, and on `Discover`).
    Ready(BoardStatus<'a>),
    /// Ask a board to echo `target` and report back with `PeerEchoResult`:
    /// lets the host test and time board-to-board paths.
    PeerEcho {
        id: u32,
        target: Mac,
    },
    /// The target answered; `round_trip_us` is the board's own time from
    /// sending the echo request to receiving the reply (the raw frame round
    /// trip between two boards, without the host's leg).
    PeerEchoResult {
        id: u32,
        target: Mac,
        round_trip_us: u32,
    },
    /// Ask a board for its clock: it answers with `TimeReply`. The host
    /// aligns the boards' clocks to its own with these (benchmarks that
    /// compare timestamps taken on different boards).
    TimeQuery {
        id: u32,
    },
    /// `micros`: the board's microseconds since boot, the clock user
    /// programs read with `amoeba_rt::time::now_us`.
    TimeReply {
        id: u32,
        micros: u64,
    },
    /// The switch to a host station that has just attached: the MAC it was
    /// given (the switch drops every frame the station sends from another
    /// source), and a 64-bit number no other attachment of this switch gets
    /// (an incarnation for the station's protocols).
    PortAssigned {
        mac: Mac,
        attachment: u64,
    },
    /// Ask a board for its work counters: it answers with `Counters`.
    /// Benchmarks read them before and after an operation, so that the
    /// nucleus's own work (its driver, the server side of a call) is counted
    /// without the board printing anything.
    CounterQuery {
        id: u32,
    },
    Counters {
        id: u32,
        counters: BoardCounters,
    },
}

/// What a board's nucleus has counted since boot. Instruction counts come
/// from the PMU's instructions-retired event, which QEMU provides only under
/// `-icount` (zero otherwise); each is the low 32 bits, wrapping, of a count
/// (take differences of readings with `wrapping_sub` on `u32`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardCounters {
    /// Every instruction the board executed, at EL0 and EL1.
    pub instructions: u32,
    /// Frames the network driver took from the device, and its instructions doing so.
    pub rx_frames: u32,
    pub rx_instructions: u32,
    /// Frames the driver handed to the device, and its instructions doing so.
    pub tx_frames: u32,
    pub tx_instructions: u32,
    /// The network device's interrupts, and the instructions of their handler.
    pub interrupts: u32,
    pub interrupt_instructions: u32,
}

impl BoardCounters {
    /// The counts from `earlier` to `self`, across a wrap of any of them.
    pub fn since(&self, earlier: &BoardCounters) -> BoardCounters {
        BoardCounters {
            instructions: self.instructions.wrapping_sub(earlier.instructions),
            rx_frames: self.rx_frames.wrapping_sub(earlier.rx_frames),
            rx_instructions: self.rx_instructions.wrapping_sub(earlier.rx_instructions),
            tx_frames: self.tx_frames.wrapping_sub(earlier.tx_frames),
            tx_instructions: self.tx_instructions.wrapping_sub(earlier.tx_instructions),
            interrupts: self.interrupts.wrapping_sub(earlier.interrupts),
            interrupt_instructions: self.interrupt_instructions.wrapping_sub(earlier.interrupt_instructions),
        }
    }

    fn fields(&self) -> [u32; 7] {
        [
            self.instructions,
            self.rx_frames,
            self.rx_instructions,
            self.tx_frames,
            self.tx_instructions,
            self.interrupts,
            self.interrupt_instructions,
        ]
    }

    fn from_fields(f: [u32; 7]) -> BoardCounters {
        BoardCounters {
            instructions: f[0],
            rx_frames: f[1],
            rx_instructions: f[2],
            tx_frames: f[3],
            tx_instructions: f[4],
            interrupts: f[5],
            interrupt_instructions: f[6],
        }
    }
}

const KIND_ECHO_REQUEST: u8 = 1;
const KIND_ECHO_REPLY: u8 = 2;
const KIND_DISCOVER: u8 = 3;
const KIND_READY: u8 = 4;
const KIND_PEER_ECHO: u8 = 5;
const KIND_PEER_ECHO_RESULT: u8 = 6;
// Kinds 7 to 13 carried process control before the process server took it
// over by RPC; they are not reused.
const KIND_TIME_QUERY: u8 = 14;
const KIND_TIME_REPLY: u8 = 15;
const KIND_PORT_ASSIGNED: u8 = 16;
const KIND_COUNTER_QUERY: u8 = 17;
const KIND_COUNTERS: u8 = 18;

/// The shared reader, with a MAC on top.
struct Reader<'a>(amoeba_abi::wire::Reader<'a>);

impl<'a> core::ops::Deref for Reader<'a> {
    type Target = amoeba_abi::wire::Reader<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Reader<'_> {
    fn mac(&mut self) -> Result<Mac, DecodeError> {
        Ok(Mac(self.array()?))
    }
}

impl From<amoeba_abi::wire::Truncated> for DecodeError {
    fn from(_: amoeba_abi::wire::Truncated) -> DecodeError {
        DecodeError::TooShort
    }
}

/// A bounds-checked cursor over an output buffer.
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

/// The output buffer was too small for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall;

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.len.checked_add(bytes.len()).ok_or(BufferTooSmall)?;
        self.buf.get_mut(self.len..end).ok_or(BufferTooSmall)?.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }
}

impl<'a> Message<'a> {
    /// Parses an Ethernet payload. Never panics; anything malformed is an error.
    pub fn decode(payload: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(amoeba_abi::wire::Reader::new(payload));
        let kind = r.u8()?;
        let version = r.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        Ok(match kind {
            KIND_ECHO_REQUEST => Message::EchoRequest { id: r.u32()?, payload: r.rest() },
            KIND_ECHO_REPLY => Message::EchoReply { id: r.u32()?, payload: r.rest() },
            KIND_DISCOVER => Message::Discover,
            KIND_READY => {
                let board_id = r.u16()?;
                let incarnation = r.u32()?;
                let uptime_ms = r.u32()?;
                let role_len = r.u8()? as usize;
                if role_len > MAX_ROLE_LEN {
                    return Err(DecodeError::BadRole);
                }
                let role = core::str::from_utf8(r.take(role_len)?).map_err(|_| DecodeError::BadRole)?;
                Message::Ready(BoardStatus { board_id, incarnation, role, uptime_ms })
            }
            KIND_PEER_ECHO => Message::PeerEcho { id: r.u32()?, target: r.mac()? },
            KIND_PEER_ECHO_RESULT => {
                Message::PeerEchoResult { id: r.u32()?, target: r.mac()?, round_trip_us: r.u32()? }
            }
            KIND_TIME_QUERY => Message::TimeQuery { id: r.u32()? },
            KIND_TIME_REPLY => Message::TimeReply { id: r.u32()?, micros: r.u64()? },
            KIND_PORT_ASSIGNED => Message::PortAssigned { mac: r.mac()?, attachment: r.u64()? },
            KIND_COUNTER_QUERY => Message::CounterQuery { id: r.u32()? },
            KIND_COUNTERS => {
                let id = r.u32()?;
                let mut fields = [0u32; 7];
                for field in &mut fields {
                    *field = r.u32()?;
                }
                Message::Counters { id, counters: BoardCounters::from_fields(fields) }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }

    /// Writes the message into `buf`, returning its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = Writer { buf, len: 0 };
        match self {
            Message::EchoRequest { id, payload } | Message::EchoReply { id, payload } => {
                let kind = if matches!(self, Message::EchoRequest { .. }) {
                    KIND_ECHO_REQUEST
                } else {
                    KIND_ECHO_REPLY
                };
                w.put(&[kind, VERSION])?;
                w.put(&id.to_be_bytes())?;
                w.put(payload)?;
            }
            Message::Discover => w.put(&[KIND_DISCOVER, VERSION])?,
            Message::Ready(status) => {
                let role = status.role.as_bytes();
                if role.len() > MAX_ROLE_LEN {
                    return Err(BufferTooSmall);
                }
                w.put(&[KIND_READY, VERSION])?;
                w.put(&status.board_id.to_be_bytes())?;
                w.put(&status.incarnation.to_be_bytes())?;
                w.put(&status.uptime_ms.to_be_bytes())?;
                w.put(&[role.len() as u8])?;
                w.put(role)?;
            }
            Message::PeerEcho { id, target } => {
                w.put(&[KIND_PEER_ECHO, VERSION])?;
                w.put(&id.to_be_bytes())?;
                w.put(&target.0)?;
            }
            Message::PeerEchoResult { id, target, round_trip_us } => {
                w.put(&[KIND_PEER_ECHO_RESULT, VERSION])?;
                w.put(&id.to_be_bytes())?;
                w.put(&target.0)?;
                w.put(&round_trip_us.to_be_bytes())?;
            }
            Message::TimeQuery { id } => {
                w.put(&[KIND_TIME_QUERY, VERSION])?;
                w.put(&id.to_be_bytes())?;
            }
            Message::TimeReply { id, micros } => {
                w.put(&[KIND_TIME_REPLY, VERSION])?;
                w.put(&id.to_be_bytes())?;
                w.put(&micros.to_be_bytes())?;
            }
            Message::PortAssigned { mac, attachment } => {
                w.put(&[KIND_PORT_ASSIGNED, VERSION])?;
                w.put(&mac.0)?;
                w.put(&attachment.to_be_bytes())?;
            }
            Message::CounterQuery { id } => {
                w.put(&[KIND_COUNTER_QUERY, VERSION])?;
                w.put(&id.to_be_bytes())?;
            }
            Message::Counters { id, counters } => {
                w.put(&[KIND_COUNTERS, VERSION])?;
                w.put(&id.to_be_bytes())?;
                for field in counters.fields() {
                    w.put(&field.to_be_bytes())?;
                }
            }
        }
        Ok(w.len)
    }
}

/// An Ethernet frame split into its header fields and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub destination: Mac,
    pub source: Mac,
    pub ethertype: u16,
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(amoeba_abi::wire::Reader::new(bytes));
        let destination = r.mac()?;
        let source = r.mac()?;
        let ethertype = r.u16()?;
        Ok(Frame { destination, source, ethertype, payload: r.rest() })
    }

    /// The pool control message this frame carries.
    pub fn message(&self) -> Result<Message<'a>, DecodeError> {
        if self.ethertype != ETHERTYPE {
            return Err(DecodeError::NotPoolControl);
        }
        Message::decode(self.payload)
    }
}

/// Writes a whole pool control frame into `buf`, returning its length.
pub fn encode_frame(
    buf: &mut [u8],
    destination: Mac,
    source: Mac,
    message: &Message<'_>,
) -> Result<usize, BufferTooSmall> {
    let header = buf.get_mut(..ETHERNET_HEADER_LEN).ok_or(BufferTooSmall)?;
    header[..6].copy_from_slice(&destination.0);
    header[6..12].copy_from_slice(&source.0);
    header[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    let len = message.encode(&mut buf[ETHERNET_HEADER_LEN..])?;
    Ok(ETHERNET_HEADER_LEN + len)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;

    fn round_trip(message: Message<'_>) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        let len = encode_frame(&mut buf, BROADCAST, Mac::for_board(3), &message).unwrap();
        let frame = Frame::parse(&buf[..len]).unwrap();
        assert_eq!(frame.destination, BROADCAST);
        assert_eq!(frame.source, Mac::for_board(3));
        assert_eq!(frame.message().unwrap(), message);
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Message::EchoRequest { id: 7, payload: b"hello" });
        round_trip(Message::EchoReply { id: u32::MAX, payload: &[] });
        round_trip(Message::Discover);
        round_trip(Message::Ready(BoardStatus {
            board_id: 12,
            incarnation: 0xdead_beef,
            role: "pool",
            uptime_ms: 1234,
        }));
        round_trip(Message::PeerEcho { id: 9, target: Mac::for_board(2) });
        round_trip(Message::PeerEchoResult { id: 9, target: Mac::for_board(2), round_trip_us: 345 });
        round_trip(Message::PortAssigned { mac: Mac::for_host(3), attachment: u64::MAX - 1 });
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(Frame::parse(&[0; 13]), Err(DecodeError::TooShort));
        assert_eq!(Message::decode(&[]), Err(DecodeError::TooShort));
        assert_eq!(Message::decode(&[KIND_ECHO_REQUEST, 9]), Err(DecodeError::UnknownVersion(9)));
        assert_eq!(Message::decode(&[77, VERSION]), Err(DecodeError::UnknownKind(77)));
        assert_eq!(Message::decode(&[KIND_ECHO_REQUEST, VERSION, 0, 0]), Err(DecodeError::TooShort));
        // A role length that points past the end of the frame.
        assert_eq!(
            Message::decode(&[KIND_READY, VERSION, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 20, b'x']),
            Err(DecodeError::TooShort)
        );
        assert_eq!(
            Message::decode(&[KIND_READY, VERSION, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0xff]),
            Err(DecodeError::BadRole)
        );
        let other_ethertype = [0u8; 20];
        assert_eq!(Frame::parse(&other_ethertype).unwrap().message(), Err(DecodeError::NotPoolControl));
    }

    #[test]
    fn time_query_and_reply_round_trip() {
        round_trip(Message::TimeQuery { id: 0 });
        round_trip(Message::TimeQuery { id: u32::MAX });
        round_trip(Message::TimeReply { id: 5, micros: 0 });
        round_trip(Message::TimeReply { id: u32::MAX, micros: u64::MAX });
        // A reply cut short in its clock field is refused, not misread.
        let mut buf = [0u8; 32];
        let len = Message::TimeReply { id: 5, micros: 1 << 40 }.encode(&mut buf).unwrap();
        assert_eq!(len, 14);
        assert_eq!(Message::decode(&buf[..len - 1]), Err(DecodeError::TooShort));
        assert_eq!(Message::decode(&buf[..len]), Ok(Message::TimeReply { id: 5, micros: 1 << 40 }));
    }

    #[test]
    fn counter_query_and_counters_round_trip() {
        round_trip(Message::CounterQuery { id: 7 });
        let counters = BoardCounters {
            instructions: u32::MAX,
            rx_frames: 1,
            rx_instructions: 2,
            tx_frames: 3,
            tx_instructions: 4,
            interrupts: 5,
            interrupt_instructions: 6,
        };
        round_trip(Message::Counters { id: 9, counters });
        let mut buf = [0u8; 64];
        let len = Message::Counters { id: 9, counters }.encode(&mut buf).unwrap();
        assert_eq!(len, 2 + 4 + 7 * 4);
        assert_eq!(Message::decode(&buf[..len - 1]), Err(DecodeError::TooShort));
        // Differences survive a wrap of the 32-bit counts.
        let later = BoardCounters { instructions: 10, rx_frames: 4, ..counters };
        let since = later.since(&counters);
        assert_eq!((since.instructions, since.rx_frames, since.tx_frames), (11, 3, 0));
    }

    #[test]
    fn small_buffers_are_refused() {
        let mut buf = [0u8; 20];
        let message = Message::EchoRequest { id: 1, payload: &[0; 64] };
        assert_eq!(encode_frame(&mut buf, BROADCAST, BROADCAST, &message), Err(BufferTooSmall));
    }

    #[test]
    fn board_and_host_macs_are_unicast_and_distinct() {
        assert!(!Mac::for_board(1).is_multicast());
        assert!(!Mac::for_host(1).is_multicast());
        assert_ne!(Mac::for_board(1), Mac::for_host(1));
        assert!(BROADCAST.is_multicast());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Frame::parse(&bytes).map(|f| f.message());
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn echo_round_trips(id in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..MAX_ECHO_PAYLOAD)) {
            let mut buf = [0u8; MAX_FRAME_LEN];
            let message = Message::EchoRequest { id, payload: &payload };
            let len = encode_frame(&mut buf, Mac::for_host(0), Mac::for_board(1), &message).unwrap();
            prop_assert_eq!(Frame::parse(&buf[..len]).unwrap().message().unwrap(), message);
        }
    }
}
