//! The server side of RPC: registered ports, LOCATE answers, and the at-most-once
//! memory kept per client, within fixed budgets.
//!
//! # At most once, in bounded memory
//!
//! A request is delivered to the application at most once. The server keeps, per
//! client incarnation, a record per transaction (being received, in progress,
//! replied with the reply kept until the client acknowledges it, done, refused with
//! NOT_HERE), so a retransmission is answered from its record instead of running
//! again. Everything is bounded by [`Config`] budgets: clients (`max_clients`),
//! records (`max_records`, `max_records_per_client`), partial requests
//! (`max_reassembly_bytes`) and stored replies (`max_reply_bytes`).
//!
//! **The rule: a request the server can no longer judge is refused, never run.**
//! When a budget is reached, or a client has been silent for `client_ttl`, the
//! server sheds state, cheapest first, and keeps just enough to refuse what it can
//! no longer judge:
//!
//! 1. A partly received request is dropped. It never ran; the client sends it again.
//! 2. A stored reply (least recently sent first) is replaced by a "reply lost" mark.
//!    A retransmission gets an abort with `RpcFailure`: it ran once, its reply is
//!    gone.
//! 3. A finished record (done, refused, reply lost; and under record pressure a
//!    replied one) is dropped, and the client's *forgotten-up-to* id rises to it. A
//!    request at or below that id without a record is refused.
//! 4. A whole client (the least recently heard from, when `max_clients` are
//!    remembered) is forgotten. The server's memory epoch moves past every epoch that
//!    client's requests were addressed to (below), so copies of them are refused.
//!
//! A silent client loses its records (steps 1 to 3) but stays remembered in a few
//! bytes until step 4 needs its place. A request in progress (delivered, not yet
//! answered) is never shed.
//!
//! A new request whose first fragment finds the budget for partly received
//! requests full is refused at once with an abort carrying `NoSpace` (its record
//! answers a retransmission the same way), so that a flood of large requests
//! ends in prompt refusals rather than in retransmissions of whole requests that
//! congest the wire until the clients give up with `RpcFailure`. It never ran,
//! so the client may send it again later.
//!
//! # The memory epoch
//!
//! The epoch E starts at 1 in every boot; it means something only together with the
//! boot incarnation, which a request must match exactly before its epoch is looked
//! at, so epochs of two boots never meet. HERE_IS advertises E, and a client puts the
//! epoch it learned into every request. The server keeps W, the highest epoch any
//! request of a forgotten client may have been addressed to (counting requests that
//! ran here or were refused with NOT_HERE), and keeps W < E by moving E on when a
//! forgotten client had used it. Each remembered client has a *since* epoch: W + 1 at
//! the moment the memory of it was made.
//!
//! A request without a record, from client C, addressed to epoch e, runs only if its
//! id is above C's forgotten-up-to id and `since(C) ≤ e ≤ E`. Why that is safe: a
//! copy that ran here before, in a memory of C that was forgotten since, was
//! addressed to an epoch ≤ W at that forgetting, and the current memory of C was made
//! later, with a larger since. For a client the server does not remember, since is
//! W + 1 now: the request must be addressed to an epoch advertised after the server
//! last forgot a client that had used that epoch. A newcomer located the server
//! moments ago, so this holds unless the server forgot such a client in between; to
//! keep that rare, the cleanup pass moves E on one pass before the next eviction
//! would have to, so clients that locate meanwhile already hold the new epoch.
//!
//! Packets from an older incarnation of a remembered client are ignored, unless the
//! newer one has been silent for `client_ttl` (an incarnation counter may wrap): then
//! the newer one is forgotten (step 4) and the packet judged as a newcomer's.
//!
//! A refusal is NOT_HERE with `F_STALE` from the server's current incarnation. The
//! client ends the transaction with `ServerRestarted` (it ran at most once, before)
//! and locates the server again, which teaches it the current epoch.
//!
//! This module handles the packets; `memory` holds the records, their accounting,
//! the budgets and the epoch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use amoeba_abi::{GetPort, HEADER_LEN, Header, LocateKey, Port, Status};

use crate::config::Config;
use crate::events::{Event, ReplyError, ReqId};
use crate::outbox::{Dest, Outbox};
use crate::reasm::Reassembly;
use crate::wire::{
    Addr, F_ABORT, F_MORE, F_NEED_ALL, F_REPLY, F_STALE, F_WORKING, FlipHeader, HereIsProof,
    LOCATE_NONCE_LEN, MAX_RANGES, Mac, Packet, PacketType, REQUEST_PREFIX_LEN, RequestPrefix, encode_ranges,
    here_is_message, parse_ranges,
};

mod answers;
mod memory;

use answers::AnswerBudget;
use memory::{ClientMemory, Rec, Usage};

/// Where a delivered request came from.
enum Origin {
    /// From a client elsewhere, as its transaction `trans`.
    Remote { client: Addr, trans: u64 },
    /// From this endpoint's own client side, as its transaction `trans`.
    Local { trans: u64 },
}

/// An answer to a delivered request.
pub(crate) struct Reply<'a> {
    /// The reply header.
    pub header: &'a Header,
    /// The reply buffer.
    pub buf: &'a [u8],
    /// The request was aborted; `header.status` says why.
    pub abort: bool,
}

/// Who gets an answer: [`ServerSide::answer`] sends remote ones itself.
pub(crate) enum Answered {
    /// Sent to a client elsewhere.
    Remote,
    /// For this endpoint's own transaction `trans`.
    Local { trans: u64 },
}

/// What a server holds for its clients, against its [`Config`] budgets
/// ([`crate::Endpoint::server_memory`]).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct ServerMemory {
    /// Clients remembered (at most `max_clients`).
    pub clients: usize,
    /// Transaction records (at most `max_records`).
    pub records: usize,
    /// Largest number of records of one client (at most `max_records_per_client`).
    pub most_records_per_client: usize,
    /// Bytes of partly received requests (at most `max_reassembly_bytes`).
    pub reassembly_bytes: usize,
    /// Bytes of stored replies (at most `max_reply_bytes`).
    pub reply_bytes: usize,
    /// The memory epoch advertised in HERE_IS.
    pub epoch: u64,
    /// The highest epoch a forgotten client's requests may carry (always below
    /// `epoch`).
    pub forgotten_epoch: u64,
}

/// Counters of the server side.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct ServerStats {
    /// Requests delivered to the application.
    pub delivered: u64,
    /// Duplicates answered from a stored reply.
    pub replays: u64,
    /// Requests refused because the server could not judge them.
    pub refused: u64,
    /// Stored replies shed.
    pub replies_lost: u64,
    /// Finished records shed.
    pub records_shed: u64,
    /// Clients forgotten.
    pub clients_forgotten: u64,
    /// HERE_IS proofs signed.
    pub here_is_signed: u64,
    /// LOCATEs left unanswered because a proof budget was used up.
    pub locates_unanswered: u64,
}

/// A registered port.
struct Registration {
    /// Its get-port, to find it again without deriving the key.
    get: GetPort,
    /// The key that signs its HERE_IS answers.
    key: LocateKey,
    /// How many registrations it has.
    count: u32,
}

/// Registered ports and what the server remembers about its clients.
pub(crate) struct ServerSide {
    /// Registered put-ports, with their keys and how many registrations each has.
    registered: BTreeMap<Port, Registration>,
    /// At-most-once memory per client address.
    clients: BTreeMap<Addr, ClientMemory>,
    /// Requests delivered and not yet answered, by request id.
    requests: BTreeMap<u64, Origin>,
    /// The next request id.
    next_req: u64,
    /// What the records hold.
    usage: Usage,
    /// The memory epoch, advertised in HERE_IS.
    epoch: u64,
    /// The highest epoch a request of a forgotten client may carry (< `epoch`).
    forgotten_epoch: u64,
    /// When the next cleanup pass is due.
    gc_at: Option<u64>,
    /// What answering LOCATEs may still cost, and the proofs made lately.
    answers: AnswerBudget,
    /// Counters.
    pub stats: ServerStats,
}

impl ServerSide {
    pub fn new() -> ServerSide {
        ServerSide {
            registered: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_req: 1,
            usage: Usage::default(),
            epoch: 1,
            forgotten_epoch: 0,
            gc_at: None,
            answers: AnswerBudget::default(),
            stats: ServerStats::default(),
        }
    }

    /// Number of clients remembered.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Number of registered ports.
    pub fn port_count(&self) -> usize {
        self.registered.len()
    }

    /// Register `get`, deriving its key only if it is not registered yet.
    pub fn register(&mut self, get: &GetPort) -> Port {
        if let Some(p) = self.registered_port(get) {
            if let Some(r) = self.registered.get_mut(&p) {
                r.count = r.count.saturating_add(1);
            }
            return p;
        }
        let key = get.locate_key();
        let p = key.put_port();
        self.registered.insert(p, Registration { get: *get, key, count: 1 });
        p
    }

    /// The put-port of `get` if it is registered (a few ports: a scan is cheaper
    /// than deriving it).
    pub fn registered_port(&self, get: &GetPort) -> Option<Port> {
        self.registered.iter().find(|(_, r)| r.get == *get).map(|(p, _)| *p)
    }

    pub fn unregister(&mut self, get: &GetPort) -> bool {
        let Some(p) = self.registered_port(get) else {
            return false;
        };
        match self.registered.get_mut(&p) {
            Some(r) if r.count > 1 => r.count -= 1,
            _ => {
                self.registered.remove(&p);
            }
        }
        true
    }

    pub fn is_registered(&self, p: &Port) -> bool {
        self.registered.contains_key(p)
    }

    /// When the next cleanup pass is due.
    pub fn next_deadline(&self) -> Option<u64> {
        self.gc_at
    }

    /// Run the cleanup pass if it is due.
    pub fn timeout(&mut self, now: u64, cfg: &Config) {
        if self.gc_at.is_some_and(|g| g <= now) {
            self.gc(now, cfg);
        }
    }

    /// Deliver a request from this endpoint's own client side (transaction `trans`);
    /// returns the request id.
    pub fn deliver_local(&mut self, header: &Header, buf: Vec<u8>, trans: u64, out: &mut Outbox) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        self.requests.insert(req, Origin::Local { trans });
        self.stats.delivered += 1;
        let client = out.me.addr;
        out.events.push_back(Event::RequestArrived {
            req: ReqId(req),
            port: header.port,
            header: *header,
            buf,
            client,
        });
        req
    }

    /// Forget a delivered local request (its transaction was abandoned).
    pub fn cancel_local(&mut self, req: u64) {
        self.requests.remove(&req);
    }

    /// A LOCATE: answer HERE_IS, with the memory epoch, if a server for the port is
    /// registered here, proving with the port's key that this endpoint holds its get-port (see the
    /// `locate` module). A copy of a LOCATE answered lately is answered with the same
    /// proof; a new one only within the port's and the asking station's budgets
    /// (`Config::here_is_per_port`, `here_is_per_station`), so a flood of LOCATEs
    /// costs a bounded number of signatures per window.
    pub fn on_locate(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        let Some(port) = h.dst.as_port() else { return };
        let (Some(r), Ok(nonce)) =
            (self.registered.get(&port), <&[u8; LOCATE_NONCE_LEN]>::try_from(p.payload))
        else {
            return;
        };
        if !h.src.is_node() {
            return;
        }
        let proof = match self.answers.made(port, nonce, self.epoch) {
            Some(proof) => proof,
            None if self.answers.allow(now, port, src, cfg) => {
                let message = here_is_message(nonce, port, out.me.addr, out.me.inc, self.epoch);
                let proof =
                    HereIsProof { public_key: r.key.public_key(), signature: r.key.sign(&message) }.encode();
                self.stats.here_is_signed += 1;
                self.answers.keep(port, *nonce, self.epoch, proof);
                proof
            }
            None => {
                self.stats.locates_unanswered += 1;
                return;
            }
        };
        let to = Dest { mac: src, addr: Addr::port(port), inc: h.src_inc };
        out.control(to, PacketType::HereIs, 0, self.epoch, &proof);
    }

    // ------------------------------------------------------------ requests

    /// Refuse a request the server cannot judge (it does not run).
    fn refuse(&mut self, to: Dest, id: u64, out: &mut Outbox) {
        self.stats.refused += 1;
        out.control(to, PacketType::NotHere, F_STALE, id, &[]);
    }

    /// A request fragment or an enquiry from a client.
    pub fn on_request(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        if h.dst.as_port().is_none() || !h.src.is_node() {
            return;
        }
        let first = h.ptype == PacketType::Enquiry || h.frag_off == 0;
        if h.dst_inc != out.me.inc {
            if first {
                let back = Dest { mac: src, addr: h.src, inc: h.src_inc };
                out.control(back, PacketType::NotHere, F_STALE, h.msg_id, &[]);
            }
            return;
        }
        if !self.client_state(now, h.src, h.src_inc, src, cfg) {
            return;
        }
        let Some(c) = self.clients.get(&h.src) else { return };
        if h.msg_id < c.low_water {
            return;
        }
        if c.recs.contains_key(&h.msg_id) {
            self.known_request(now, p, cfg, out);
        } else {
            self.new_request(now, p, cfg, out);
        }
    }

    /// A packet of a request that has a record.
    fn known_request(&mut self, now: u64, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        let (client, id) = (h.src, h.msg_id);
        let enquiry = h.ptype == PacketType::Enquiry;
        let first = enquiry || h.frag_off == 0;
        let epoch = self.epoch;
        let Some(c) = self.clients.get_mut(&client) else { return };
        let back = c.dest(client);
        let Some(rec) = c.recs.get_mut(&id) else { return };
        match rec {
            Rec::Receiving(r) => {
                if enquiry {
                    let (ranges, more) = r.missing(MAX_RANGES);
                    let flags = if more { F_MORE } else { 0 };
                    out.control(back, PacketType::Ack, flags, id, &encode_ranges(&ranges));
                } else if r.total() == h.total_len && r.insert(h.frag_off, p.payload, now) && r.is_complete()
                {
                    self.complete(now, client, id, h.dst.as_port(), out);
                }
            }
            Rec::InProgress(_) => {
                if first {
                    out.control(back, PacketType::Ack, F_WORKING, id, &[]);
                }
            }
            Rec::Replied { msg, abort, last_sent } => {
                // Resend on an enquiry, or on a retransmitted request (not more often
                // than every half initial timeout: duplicates must not cause storms).
                if enquiry || (first && now >= last_sent.saturating_add(cfg.rto_initial / 2)) {
                    *last_sent = now;
                    let ranges =
                        if enquiry { parse_ranges(p.payload).unwrap_or_default() } else { Vec::new() };
                    let flags = F_REPLY | if *abort { F_ABORT } else { 0 };
                    let sel = if ranges.is_empty() { None } else { Some(&ranges[..]) };
                    out.message(back, flags, id, msg, sel);
                    self.stats.replays += 1;
                }
            }
            Rec::ReplyLost { last_sent } => {
                // Only an enquiry listing missing ranges proves the client lost part
                // of the reply; anything else may have crossed the reply on the wire.
                let missing = enquiry && !p.payload.is_empty();
                if missing || (first && now >= last_sent.saturating_add(cfg.rto_initial / 2)) {
                    *last_sent = now;
                    let lost = Header::reply(Status::RpcFailure).encode();
                    out.message(back, F_REPLY | F_ABORT, id, &lost, None);
                }
            }
            Rec::Busy { last_sent } => {
                if first && now >= last_sent.saturating_add(cfg.rto_initial / 2) {
                    *last_sent = now;
                    let busy = Header::reply(Status::NoSpace).encode();
                    out.message(back, F_REPLY | F_ABORT, id, &busy, None);
                }
            }
            Rec::Done => {}
            Rec::Refused => {
                if first {
                    c.epoch_bound = c.epoch_bound.max(epoch);
                    out.control(back, PacketType::NotHere, 0, id, &[]);
                }
            }
        }
    }

    /// A packet of a request without a record: a new one, or one the server may
    /// have forgotten.
    fn new_request(&mut self, now: u64, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        let (client, id) = (h.src, h.msg_id);
        let enquiry = h.ptype == PacketType::Enquiry;
        let first = enquiry || h.frag_off == 0;
        let registered = h.dst.as_port().is_some_and(|port| self.registered.contains_key(&port));
        let Some(c) = self.clients.get(&client) else { return };
        let back = c.dest(client);
        if id <= c.forgot_upto {
            if first {
                self.refuse(back, id, out);
            }
            return;
        }
        if enquiry {
            // Whatever happened, the request (which says its epoch) can tell.
            out.control(back, PacketType::Ack, F_NEED_ALL, id, &[]);
            return;
        }
        let prefix = if h.frag_off == 0 { RequestPrefix::parse(p.payload) } else { None };
        if let Some(prefix) = prefix
            && !c.judges(prefix.epoch, self.epoch)
        {
            self.refuse(back, id, out);
            return;
        }
        if !registered {
            // NOT_HERE promises that the request never runs here, so the client may
            // take it elsewhere: give it only for a request this memory can judge
            // (the first fragment says its epoch), and only with a record to keep
            // the promise.
            if prefix.is_none() || !self.make_room(client, cfg) {
                return;
            }
            let epoch = self.epoch;
            let Some(c) = self.clients.get_mut(&client) else { return };
            c.put(&mut self.usage, id, Rec::Refused);
            c.epoch_bound = c.epoch_bound.max(epoch);
            out.control(back, PacketType::NotHere, 0, id, &[]);
            return;
        }
        let total = h.total_len as usize;
        if total > REQUEST_PREFIX_LEN + HEADER_LEN + cfg.max_buf || total < REQUEST_PREFIX_LEN + HEADER_LEN {
            return;
        }
        if self.usage.reassembly_bytes + total > cfg.max_reassembly_bytes {
            // No room to receive it now. The first fragment (which says the
            // request's epoch, so this memory can keep the promise) gets a
            // refusal with `NoSpace` at once, rather than silence that the
            // client would fill with retransmissions of the whole request.
            if prefix.is_some() && self.make_room(client, cfg) {
                let Some(c) = self.clients.get_mut(&client) else { return };
                c.put(&mut self.usage, id, Rec::Busy { last_sent: now });
                self.stats.refused += 1;
                let busy = Header::reply(Status::NoSpace).encode();
                out.message(back, F_REPLY | F_ABORT, id, &busy, None);
            }
            return;
        }
        if !self.make_room(client, cfg) {
            return;
        }
        let Some(mut r) = Reassembly::try_new(h.total_len, now) else { return };
        r.insert(h.frag_off, p.payload, now);
        let complete = r.is_complete();
        let Some(c) = self.clients.get_mut(&client) else { return };
        c.put(&mut self.usage, id, Rec::Receiving(r));
        if complete {
            self.complete(now, client, id, h.dst.as_port(), out);
        }
    }

    /// Request `id` of `client` is complete: judge it and deliver it, or refuse it.
    fn complete(&mut self, now: u64, client: Addr, id: u64, port: Option<Port>, out: &mut Outbox) {
        let epoch = self.epoch;
        let Some(c) = self.clients.get_mut(&client) else { return };
        let back = c.dest(client);
        let Some(Rec::Receiving(r)) = c.take(&mut self.usage, id) else { return };
        let mut msg = r.into_vec();
        let (Some(port), Some(prefix)) = (port, RequestPrefix::parse(&msg)) else { return };
        if !c.judges(prefix.epoch, epoch) {
            self.refuse(back, id, out);
            return;
        }
        let Ok((header, _)) = Header::decode_prefix(&msg[REQUEST_PREFIX_LEN..]) else {
            // Garbage that can never become a valid request: remember the verdict.
            c.put(&mut self.usage, id, Rec::Done);
            return;
        };
        let low_water = prefix.low_water.min(id);
        if low_water > c.low_water {
            c.low_water = low_water;
            let old: Vec<u64> = c.recs.range(..low_water).map(|(k, _)| *k).collect();
            for k in old {
                c.take(&mut self.usage, k);
            }
        }
        c.epoch_bound = c.epoch_bound.max(prefix.epoch);
        let req = self.next_req;
        self.next_req += 1;
        c.put(&mut self.usage, id, Rec::InProgress(req));
        c.last_active = now;
        self.requests.insert(req, Origin::Remote { client, trans: id });
        self.stats.delivered += 1;
        msg.drain(..REQUEST_PREFIX_LEN + HEADER_LEN);
        out.events.push_back(Event::RequestArrived { req: ReqId(req), port, header, buf: msg, client });
    }

    /// Answer delivered request `req`. Remote answers are sent and kept (within the
    /// reply budget) until the client acknowledges them; local ones are for the
    /// caller to hand over.
    pub fn answer(
        &mut self,
        now: u64,
        req: u64,
        reply: Reply<'_>,
        cfg: &Config,
        out: &mut Outbox,
    ) -> Result<Answered, ReplyError> {
        let origin = self.requests.remove(&req).ok_or(ReplyError::NoSuchRequest)?;
        let (client, trans) = match origin {
            Origin::Local { trans } => return Ok(Answered::Local { trans }),
            Origin::Remote { client, trans } => (client, trans),
        };
        let c = self.clients.get(&client).ok_or(ReplyError::NoSuchRequest)?;
        if !matches!(c.recs.get(&trans), Some(Rec::InProgress(r)) if *r == req) {
            return Err(ReplyError::NoSuchRequest);
        }
        let to = c.dest(client);
        let len = HEADER_LEN + reply.buf.len();
        let mut msg = Vec::new();
        let stored = if msg.try_reserve_exact(len).is_ok() {
            msg.extend_from_slice(&reply.header.encode());
            msg.extend_from_slice(reply.buf);
            let flags = F_REPLY | if reply.abort { F_ABORT } else { 0 };
            out.message(to, flags, trans, &msg, None);
            if len <= cfg.max_reply_bytes {
                self.make_reply_room(len, cfg);
                Rec::Replied { msg, abort: reply.abort, last_sent: now }
            } else {
                Rec::ReplyLost { last_sent: now }
            }
        } else {
            // No memory for the reply: the client learns it ran but its reply is gone.
            let lost = Header::reply(Status::RpcFailure).encode();
            out.message(to, F_REPLY | F_ABORT, trans, &lost, None);
            Rec::ReplyLost { last_sent: now }
        };
        if matches!(stored, Rec::ReplyLost { .. }) {
            self.stats.replies_lost += 1;
        }
        let c = self.clients.get_mut(&client).ok_or(ReplyError::NoSuchRequest)?;
        c.put(&mut self.usage, trans, stored);
        c.last_active = now;
        Ok(Answered::Remote)
    }

    /// The client acknowledged a reply: free it.
    pub fn on_reply_ack(&mut self, now: u64, h: &FlipHeader, out: &Outbox) {
        if h.dst != out.me.addr || h.dst_inc != out.me.inc {
            return;
        }
        let Some(c) = self.clients.get_mut(&h.src) else { return };
        if c.inc != h.src_inc {
            return;
        }
        if matches!(
            c.recs.get(&h.msg_id),
            Some(Rec::Replied { .. } | Rec::ReplyLost { .. } | Rec::Busy { .. })
        ) {
            c.put(&mut self.usage, h.msg_id, Rec::Done);
            c.last_active = now;
        }
    }
}
