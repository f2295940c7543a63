//! What an endpoint hands to its driver: frames for the wire and events for the
//! threads waiting in `trans` or `get_request`. The node's own identity lives here
//! too, because every outgoing frame carries it.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::events::Event;
use crate::wire::{Addr, FlipHeader, Frame, MAX_FRAGMENT, Mac, Packet, PacketType};

/// A frame to put on the wire.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Destination MAC (unicast or [`Mac::BROADCAST`]); also in `frame[0..6]`.
    pub dst: Mac,
    /// The complete Ethernet frame (without FCS).
    pub frame: Vec<u8>,
}

/// Who this node is on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Identity {
    /// The node's Ethernet address.
    pub mac: Mac,
    /// The node's FLIP address (derived from `mac`).
    pub addr: Addr,
    /// Boot incarnation, carried as the source incarnation of every packet.
    pub inc: u32,
}

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dest {
    /// Next hop's Ethernet address.
    pub mac: Mac,
    /// FLIP destination address: a node, or a port for requests and locates.
    pub addr: Addr,
    /// The destination incarnation the sender believes in (0 = any).
    pub inc: u32,
}

/// Output queues plus identity, kept apart from the protocol state so that a stored
/// message can be sent while the record holding it is borrowed.
pub(crate) struct Outbox {
    /// This node.
    pub me: Identity,
    /// Frames not yet taken by [`crate::Endpoint::poll_transmit`].
    tx: VecDeque<Transmit>,
    /// Events not yet taken by [`crate::Endpoint::poll_event`].
    pub events: VecDeque<Event>,
    /// Frames queued so far (a statistic).
    pub frames_out: u64,
}

impl Outbox {
    pub fn new(me: Identity) -> Outbox {
        Outbox { me, tx: VecDeque::new(), events: VecDeque::new(), frames_out: 0 }
    }

    pub fn pop_transmit(&mut self) -> Option<Transmit> {
        self.tx.pop_front()
    }

    /// The header of a packet from this node to `to` (lengths still zero).
    fn header(&self, to: Dest, ptype: PacketType, flags: u8, msg_id: u64) -> FlipHeader {
        FlipHeader {
            ptype,
            flags,
            hops: 1,
            dst: to.addr,
            src: self.me.addr,
            dst_inc: to.inc,
            src_inc: self.me.inc,
            msg_id,
            total_len: 0,
            frag_off: 0,
        }
    }

    fn send(&mut self, mac: Mac, header: FlipHeader, payload: &[u8]) {
        let frame = Frame { dst: mac, src: self.me.mac, packet: Packet { header, payload } }.encode();
        self.frames_out += 1;
        self.tx.push_back(Transmit { dst: mac, frame });
    }

    /// A single-packet message (everything but UNIDATA).
    pub fn control(&mut self, to: Dest, ptype: PacketType, flags: u8, msg_id: u64, payload: &[u8]) {
        let mut header = self.header(to, ptype, flags, msg_id);
        header.total_len = payload.len() as u32;
        self.send(to.mac, header, payload);
    }

    /// The UNIDATA fragments of `msg` (only those overlapping `ranges`, if given).
    pub fn message(&mut self, to: Dest, flags: u8, msg_id: u64, msg: &[u8], ranges: Option<&[(u32, u32)]>) {
        let mut header = self.header(to, PacketType::Unidata, flags, msg_id);
        header.total_len = msg.len() as u32;
        for (i, chunk) in msg.chunks(MAX_FRAGMENT).enumerate() {
            let off = (i * MAX_FRAGMENT) as u64;
            let end = off + chunk.len() as u64;
            if let Some(r) = ranges {
                let hit = r.iter().any(|&(a, l)| off < a as u64 + l as u64 && (a as u64) < end);
                if !hit {
                    continue;
                }
            }
            header.frag_off = off as u32;
            self.send(to.mac, header, chunk);
        }
    }
}
