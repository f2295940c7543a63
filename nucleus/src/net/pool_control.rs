//! The board side of the pool control protocol (crate `pool-control`):
//! readiness, discovery, the frame echo, clock readings and work counters, answered
//! straight from the network path. Nothing here changes the board's state:
//! processes are made through the process server, by capability.

#![forbid(unsafe_code)]

use crate::drivers::net as device;
pub use pool_control::Mac;
use pool_control::{BROADCAST, BoardCounters, BoardStatus, Frame, MAX_FRAME_LEN, Message, encode_frame};

/// Who this board is, as it reports itself.
pub struct Identity {
    pub mac: Mac,
    pub board_id: u16,
    pub incarnation: u32,
    pub role: &'static str,
}

/// Peer echoes this board started for someone, waiting for the target's reply.
const MAX_PENDING_PEER_ECHOES: usize = 8;

#[derive(Clone, Copy)]
struct PendingPeerEcho {
    id: u32,
    target: Mac,
    requester: Mac,
    /// When the echo request went out (µs since boot).
    sent_at: u64,
}

pub struct PoolControl {
    identity: Identity,
    pending: [Option<PendingPeerEcho>; MAX_PENDING_PEER_ECHOES],
    next_pending: usize,
}

impl PoolControl {
    pub fn new(identity: Identity) -> Self {
        Self { identity, pending: [None; MAX_PENDING_PEER_ECHOES], next_pending: 0 }
    }

    pub fn board_id(&self) -> u16 {
        self.identity.board_id
    }

    pub fn mac(&self) -> Mac {
        self.identity.mac
    }

    pub fn role(&self) -> &'static str {
        self.identity.role
    }

    pub fn incarnation(&self) -> u32 {
        self.identity.incarnation
    }

    fn status(&self) -> BoardStatus<'static> {
        BoardStatus {
            board_id: self.identity.board_id,
            incarnation: self.identity.incarnation,
            role: self.identity.role,
            // Counted by timer interrupts, so it also shows that they arrive.
            uptime_ms: crate::drivers::timer::uptime_millis() as u32,
        }
    }

    fn send(&self, destination: Mac, message: &Message<'_>) {
        let mut buf = [0u8; MAX_FRAME_LEN];
        match encode_frame(&mut buf, destination, self.identity.mac, message) {
            Ok(len) => {
                if let Err(error) = device::send(&buf[..len]) {
                    crate::println!("nucleus: send failed: {error}");
                }
            }
            Err(_) => crate::println!("nucleus: pool control message does not fit a frame"),
        }
    }

    /// Tells the pool this board is up.
    pub fn announce(&self) {
        self.send(BROADCAST, &Message::Ready(self.status()));
    }

    /// Handles one received frame; anything not for us or malformed is dropped.
    pub fn handle_frame(&mut self, bytes: &[u8]) {
        let Ok(frame) = Frame::parse(bytes) else {
            return;
        };
        if frame.destination != self.identity.mac && !frame.destination.is_multicast() {
            return;
        }
        let Ok(message) = frame.message() else { return };
        match message {
            Message::EchoRequest { id, payload } => {
                self.send(frame.source, &Message::EchoReply { id, payload });
            }
            Message::Discover => self.send(frame.source, &Message::Ready(self.status())),
            Message::PeerEcho { id, target } => {
                let sent_at = crate::drivers::timer::uptime_micros();
                self.pending[self.next_pending] =
                    Some(PendingPeerEcho { id, target, requester: frame.source, sent_at });
                self.next_pending = (self.next_pending + 1) % MAX_PENDING_PEER_ECHOES;
                self.send(target, &Message::EchoRequest { id, payload: b"peer echo" });
            }
            Message::EchoReply { id, .. } => {
                let matching = self.pending.iter_mut().find(|slot| {
                    slot.is_some_and(|pending| pending.id == id && pending.target == frame.source)
                });
                if let Some(slot) = matching
                    && let Some(pending) = slot.take()
                {
                    let took = crate::drivers::timer::uptime_micros().saturating_sub(pending.sent_at);
                    let round_trip_us = u32::try_from(took).unwrap_or(u32::MAX);
                    let result = Message::PeerEchoResult { id, target: pending.target, round_trip_us };
                    self.send(pending.requester, &result);
                }
            }
            Message::TimeQuery { id } => {
                let micros = crate::drivers::timer::uptime_micros();
                self.send(frame.source, &Message::TimeReply { id, micros });
            }
            Message::CounterQuery { id } => {
                let instructions = crate::arch::pmu::instructions();
                let [
                    rx_frames,
                    rx_instructions,
                    tx_frames,
                    tx_instructions,
                    interrupts,
                    interrupt_instructions,
                ] = device::counters();
                let counters = BoardCounters {
                    instructions,
                    rx_frames,
                    rx_instructions,
                    tx_frames,
                    tx_instructions,
                    interrupts,
                    interrupt_instructions,
                };
                self.send(frame.source, &Message::Counters { id, counters });
            }
            Message::Ready(_)
            | Message::PeerEchoResult { .. }
            | Message::TimeReply { .. }
            | Message::PortAssigned { .. }
            | Message::Counters { .. } => {}
        }
    }
}
