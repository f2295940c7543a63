//! The server side of RPC: registered ports, LOCATE answers, and the at-most-once
//! records kept per client.
//!
//! A request is delivered to the server application exactly once: the server keeps a
//! record per (client, transaction) and the reply until the client acknowledges it,
//! so retransmissions are answered without re-executing.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use amoeba::{GetPort, HEADER_LEN, Header, Port};

use crate::client::REQ_PREFIX;
use crate::config::Config;
use crate::events::{Event, ReplyError, ReqId};
use crate::outbox::{Dest, Outbox};
use crate::reasm::Reassembly;
use crate::wire::{
    Addr, F_ABORT, F_MORE, F_NEED_ALL, F_REPLY, F_STALE, F_WORKING, FlipHeader, MAX_RANGES, Mac, Packet,
    PacketType, encode_ranges, parse_ranges,
};

/// What the server knows about one transaction of a client.
enum Rec {
    /// Fragments are arriving.
    Receiving(Reassembly),
    /// Delivered to the application as request `.0`; no reply yet.
    InProgress(u64),
    /// Answered; the reply is kept until the client acknowledges it.
    Replied {
        /// The reply message (header and buffer), to send again on request.
        msg: Vec<u8>,
        /// The reply is an abort.
        abort: bool,
        /// When it was last sent (resends are rate limited).
        last_sent: u64,
    },
    /// Answered and acknowledged.
    Done,
    /// Answered NOT_HERE (no server for the port here): must never run here later.
    Refused,
}

impl Rec {
    fn pinned(&self) -> bool {
        matches!(self, Rec::InProgress(_) | Rec::Replied { .. })
    }
}

/// What the server remembers about one client endpoint.
struct ClientMemory {
    /// The client's incarnation; packets from older ones are ignored.
    inc: u32,
    /// Where its packets came from last.
    mac: Mac,
    /// When it was last heard from.
    last_active: u64,
    /// Transactions below this id are finished at the client: ignore them.
    low_water: u64,
    /// Records by transaction id.
    recs: BTreeMap<u64, Rec>,
}

impl ClientMemory {
    fn pinned(&self) -> bool {
        self.recs.values().any(Rec::pinned)
    }
}

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

/// Registered ports and what the server remembers about its clients.
pub(crate) struct ServerSide {
    /// Registered put-ports, with how many registrations each has.
    registered: BTreeMap<Port, u32>,
    /// At-most-once memory per client address.
    clients: BTreeMap<Addr, ClientMemory>,
    /// Requests delivered and not yet answered, by request id.
    requests: BTreeMap<u64, Origin>,
    /// The next request id.
    next_req: u64,
    /// Bytes held by partly received requests (all clients).
    reasm_bytes: usize,
    /// When the next cleanup pass is due.
    gc_at: Option<u64>,
    /// Requests delivered to the application (a statistic).
    pub delivered: u64,
    /// Duplicates answered from a stored reply (a statistic).
    pub replays: u64,
}

impl ServerSide {
    pub fn new() -> ServerSide {
        ServerSide {
            registered: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_req: 1,
            reasm_bytes: 0,
            gc_at: None,
            delivered: 0,
            replays: 0,
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

    pub fn register(&mut self, get: &GetPort) -> Port {
        let p = get.put_port();
        *self.registered.entry(p).or_insert(0) += 1;
        p
    }

    pub fn unregister(&mut self, get: &GetPort) -> bool {
        let p = get.put_port();
        match self.registered.get_mut(&p) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.registered.remove(&p);
                true
            }
            None => false,
        }
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
    pub fn deliver_local(&mut self, header: &Header, buf: &[u8], trans: u64, out: &mut Outbox) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        self.requests.insert(req, Origin::Local { trans });
        self.delivered += 1;
        out.events.push_back(Event::RequestArrived {
            req: ReqId(req),
            port: header.port,
            header: *header,
            buf: buf.to_vec(),
            client: out.me.addr,
        });
        req
    }

    /// Forget a delivered local request (its transaction was abandoned).
    pub fn cancel_local(&mut self, req: u64) {
        self.requests.remove(&req);
    }

    /// A LOCATE: answer HERE_IS if a server for the port is registered here.
    pub fn on_locate(&mut self, src: Mac, h: &FlipHeader, out: &mut Outbox) {
        let Some(port) = h.dst.as_port() else { return };
        if !h.src.is_node() || !self.registered.contains_key(&port) {
            return;
        }
        let to = Dest { mac: src, addr: Addr::port(port), inc: h.src_inc };
        out.control(to, PacketType::HereIs, 0, h.msg_id, &[]);
    }

    /// Find (or make) the state of client `addr`; false = ignore the packet.
    fn client_state(&mut self, now: u64, addr: Addr, inc: u32, mac: Mac, cfg: &Config) -> bool {
        if let Some(c) = self.clients.get(&addr) {
            if inc < c.inc {
                return false;
            }
            if inc > c.inc {
                // The client rebooted: its old transactions are gone.
                self.drop_client(addr);
            }
        }
        if !self.clients.contains_key(&addr) {
            if self.clients.len() >= cfg.max_clients {
                let victim = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.pinned())
                    .min_by_key(|(_, c)| c.last_active)
                    .map(|(a, _)| *a);
                match victim {
                    Some(v) => self.drop_client(v),
                    None => return false,
                }
            }
            self.clients.insert(
                addr,
                ClientMemory { inc, mac, last_active: now, low_water: 0, recs: BTreeMap::new() },
            );
            if self.gc_at.is_none() {
                self.gc_at = Some(now + gc_interval(cfg));
            }
        }
        if let Some(c) = self.clients.get_mut(&addr) {
            c.mac = mac;
            c.last_active = now;
        }
        true
    }

    fn drop_client(&mut self, addr: Addr) {
        if let Some(c) = self.clients.remove(&addr) {
            for r in c.recs.values() {
                if let Rec::Receiving(r) = r {
                    self.reasm_bytes -= r.total() as usize;
                }
            }
        }
    }

    /// Make room for one more record of `c`; false if impossible.
    fn make_room(c: &mut ClientMemory, max: usize, reasm_bytes: &mut usize) -> bool {
        if c.recs.len() < max {
            return true;
        }
        let victim = c.recs.iter().find(|(_, r)| matches!(r, Rec::Done | Rec::Refused)).map(|(k, _)| *k);
        match victim {
            Some(k) => {
                c.recs.remove(&k);
                true
            }
            None => {
                // Drop the oldest partial request instead (the client will resend).
                let victim = c.recs.iter().find(|(_, r)| matches!(r, Rec::Receiving(_))).map(|(k, _)| *k);
                match victim {
                    Some(k) => {
                        if let Some(Rec::Receiving(r)) = c.recs.remove(&k) {
                            *reasm_bytes -= r.total() as usize;
                        }
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// A request fragment or an enquiry from a client.
    pub fn on_request(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        let enquiry = h.ptype == PacketType::Enquiry;
        let Some(port) = h.dst.as_port() else { return };
        if !h.src.is_node() {
            return;
        }
        let first = enquiry || h.frag_off == 0;
        let (client_addr, id) = (h.src, h.msg_id);
        let back = Dest { mac: src, addr: client_addr, inc: h.src_inc };
        if h.dst_inc != out.me.inc {
            if first {
                out.control(back, PacketType::NotHere, F_STALE, id, &[]);
            }
            return;
        }
        if !self.client_state(now, client_addr, h.src_inc, src, cfg) {
            return;
        }
        let registered = self.registered.contains_key(&port);
        let max_total = REQ_PREFIX + HEADER_LEN + cfg.max_buf;
        let Some(c) = self.clients.get_mut(&client_addr) else { return };
        if id < c.low_water {
            return;
        }
        match c.recs.get_mut(&id) {
            None => {
                if !registered {
                    if Self::make_room(c, cfg.max_records_per_client, &mut self.reasm_bytes) {
                        c.recs.insert(id, Rec::Refused);
                    }
                    if first {
                        out.control(back, PacketType::NotHere, 0, id, &[]);
                    }
                    return;
                }
                if enquiry {
                    out.control(back, PacketType::Ack, F_NEED_ALL, id, &[]);
                    return;
                }
                let total = h.total_len as usize;
                if total > max_total
                    || total < REQ_PREFIX + HEADER_LEN
                    || self.reasm_bytes + total > cfg.max_reassembly_bytes
                    || !Self::make_room(c, cfg.max_records_per_client, &mut self.reasm_bytes)
                {
                    return;
                }
                let mut r = Reassembly::new(h.total_len, now);
                r.insert(h.frag_off, p.payload, now);
                self.reasm_bytes += total;
                c.recs.insert(id, Rec::Receiving(r));
            }
            Some(Rec::Receiving(r)) => {
                if enquiry {
                    let (ranges, more) = r.missing(MAX_RANGES);
                    let flags = if more { F_MORE } else { 0 };
                    out.control(back, PacketType::Ack, flags, id, &encode_ranges(&ranges));
                    return;
                }
                if r.total() != h.total_len {
                    return;
                }
                r.insert(h.frag_off, p.payload, now);
            }
            Some(Rec::InProgress(_)) => {
                if first {
                    out.control(back, PacketType::Ack, F_WORKING, id, &[]);
                }
                return;
            }
            Some(Rec::Replied { msg, abort, last_sent }) => {
                // Resend on an enquiry, or on a retransmitted request (not more often
                // than every half initial timeout: duplicates must not cause storms).
                if enquiry || (first && now >= last_sent.saturating_add(cfg.rto_initial / 2)) {
                    *last_sent = now;
                    let ranges =
                        if enquiry { parse_ranges(p.payload).unwrap_or_default() } else { Vec::new() };
                    let flags = F_REPLY | if *abort { F_ABORT } else { 0 };
                    let sel = if ranges.is_empty() { None } else { Some(&ranges[..]) };
                    out.message(back, flags, id, msg, sel);
                    self.replays += 1;
                }
                return;
            }
            Some(Rec::Done) => return,
            Some(Rec::Refused) => {
                if first {
                    out.control(back, PacketType::NotHere, 0, id, &[]);
                }
                return;
            }
        }
        // A fragment was added: complete?
        let complete = matches!(c.recs.get(&id), Some(Rec::Receiving(r)) if r.is_complete());
        if !complete {
            return;
        }
        let Some(Rec::Receiving(r)) = c.recs.remove(&id) else {
            return;
        };
        self.reasm_bytes -= r.total() as usize;
        let msg = r.into_vec();
        let Some((lw_bytes, rest)) = msg.split_first_chunk::<REQ_PREFIX>() else {
            return;
        };
        let low_water = u64::from_be_bytes(*lw_bytes).min(id);
        let Ok((header, buf)) = Header::decode_prefix(rest) else {
            c.recs.insert(id, Rec::Done);
            return;
        };
        if low_water > c.low_water {
            c.low_water = low_water;
            let old: Vec<u64> = c.recs.range(..low_water).map(|(k, _)| *k).collect();
            for k in old {
                if let Some(Rec::Receiving(r)) = c.recs.remove(&k) {
                    self.reasm_bytes -= r.total() as usize;
                }
            }
        }
        let req = self.next_req;
        self.next_req += 1;
        c.recs.insert(id, Rec::InProgress(req));
        self.requests.insert(req, Origin::Remote { client: client_addr, trans: id });
        self.delivered += 1;
        out.events.push_back(Event::RequestArrived {
            req: ReqId(req),
            port,
            header,
            buf: buf.to_vec(),
            client: client_addr,
        });
    }

    /// Answer delivered request `req`. Remote answers are sent and kept until the
    /// client acknowledges them; local ones are for the caller to hand over.
    pub fn answer(
        &mut self,
        now: u64,
        req: u64,
        reply: Reply<'_>,
        out: &mut Outbox,
    ) -> Result<Answered, ReplyError> {
        let origin = self.requests.remove(&req).ok_or(ReplyError::NoSuchRequest)?;
        let (client, trans) = match origin {
            Origin::Local { trans } => return Ok(Answered::Local { trans }),
            Origin::Remote { client, trans } => (client, trans),
        };
        let c = self.clients.get_mut(&client).ok_or(ReplyError::NoSuchRequest)?;
        let rec = c.recs.get_mut(&trans).ok_or(ReplyError::NoSuchRequest)?;
        if !matches!(rec, Rec::InProgress(r) if *r == req) {
            return Err(ReplyError::NoSuchRequest);
        }
        let mut msg = Vec::with_capacity(HEADER_LEN + reply.buf.len());
        msg.extend_from_slice(&reply.header.encode());
        msg.extend_from_slice(reply.buf);
        let flags = F_REPLY | if reply.abort { F_ABORT } else { 0 };
        let to = Dest { mac: c.mac, addr: client, inc: c.inc };
        out.message(to, flags, trans, &msg, None);
        *rec = Rec::Replied { msg, abort: reply.abort, last_sent: now };
        c.last_active = now;
        Ok(Answered::Remote)
    }

    /// The client acknowledged a reply: free it.
    pub fn on_reply_ack(&mut self, now: u64, h: &FlipHeader, out: &Outbox) {
        if h.dst != out.me.addr || h.dst_inc != out.me.inc {
            return;
        }
        if let Some(c) = self.clients.get_mut(&h.src) {
            if c.inc != h.src_inc {
                return;
            }
            if let Some(rec) = c.recs.get_mut(&h.msg_id)
                && matches!(rec, Rec::Replied { .. })
            {
                *rec = Rec::Done;
                c.last_active = now;
            }
        }
    }

    fn gc(&mut self, now: u64, cfg: &Config) {
        let rt = cfg.reassembly_timeout;
        let ttl = cfg.client_ttl;
        let mut freed = 0usize;
        let mut dead = Vec::new();
        for (a, c) in self.clients.iter_mut() {
            c.recs.retain(|_, r| match r {
                Rec::Receiving(x) if now >= x.last_activity.saturating_add(rt) => {
                    freed += x.total() as usize;
                    false
                }
                _ => true,
            });
            let in_progress = c.recs.values().any(|r| matches!(r, Rec::InProgress(_)));
            if now >= c.last_active.saturating_add(ttl) && !in_progress {
                dead.push(*a);
            }
        }
        self.reasm_bytes -= freed;
        for a in dead {
            self.drop_client(a);
        }
        self.gc_at = if self.clients.is_empty() { None } else { Some(now + gc_interval(cfg)) };
    }
}

/// How often the cleanup pass runs.
fn gc_interval(cfg: &Config) -> u64 {
    (cfg.reassembly_timeout.min(cfg.client_ttl) / 4).max(1)
}
