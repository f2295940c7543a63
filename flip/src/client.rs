//! The client side of RPC: open transactions, from `start_trans` to `TransDone`.
//!
//! A transaction finds its server through the [`Locator`], sends its request (all
//! fragments), then waits. Silence for a whole timeout makes it probe the server (a
//! resent one-fragment request, or an ENQUIRY listing what is still missing of the
//! reply) with exponential back-off; `max_retries` silent timeouts in a row declare
//! the server dead. NOT_HERE sends the request to another server of the port (or
//! locates again), under a fresh id: the refusing server remembers that the old id
//! never runs there, and may be the port's next server (restarted in place). A
//! stale NOT_HERE (the server rebooted, or it can no longer judge the request: see
//! [`crate::server`]) ends the transaction with `ServerRestarted` and drops the
//! server from the cache, so the next transaction learns its current incarnation
//! and memory epoch.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use amoeba_abi::{HEADER_LEN, Header, Port, Status};

use crate::config::Config;
use crate::events::{Event, TransId};
use crate::locate::{Locator, ServerRef};
use crate::outbox::{Dest, Outbox};
use crate::reasm::Reassembly;
use crate::wire::{
    Addr, F_ABORT, F_MORE, F_NEED_ALL, F_REPLY, F_STALE, F_WORKING, FlipHeader, MAX_FRAGMENT, MAX_RANGES,
    Mac, Packet, PacketType, REQUEST_PREFIX_LEN, RequestPrefix, encode_ranges, parse_ranges,
};

/// A transaction whose request went to a server.
struct Sent {
    /// The server it went to.
    server: ServerRef,
    /// Current retransmission timeout (doubles on silence, up to `rto_max`).
    rto: u64,
    /// When silence becomes a timeout.
    deadline: u64,
    /// Timeouts in a row without any answer.
    retries: u32,
    /// The server said it has the whole request and is serving it.
    working: bool,
    /// The reply as far as it has arrived.
    reply: Option<Reassembly>,
}

impl Sent {
    /// The server answered: it is alive. New data also resets the back-off; the
    /// retransmission timer measures silence.
    fn heard(&mut self, now: u64, new_data: bool, rto_initial: u64) {
        self.retries = 0;
        if new_data {
            self.rto = rto_initial;
            self.working = false;
        }
        self.deadline = now + self.rto;
    }
}

/// Where a transaction stands.
enum TState {
    /// Waiting for a LOCATE answer.
    Locating,
    /// Sent to a server.
    Sent(Sent),
    /// Delivered to a server on this endpoint as request `req` (no network).
    Local { req: u64 },
}

/// An open transaction.
struct Trans {
    /// The id its caller knows it by (`TransId`). Its requests go out under the
    /// id it is kept under in [`ClientSide::open`], which is this one until a
    /// NOT_HERE sends it on under a fresh one.
    trans: u64,
    /// The put-port it is addressed to.
    port: Port,
    /// The request as sent: prefix, header, buffer (empty for local transactions).
    /// The prefix's epoch is set for each server the request goes to.
    msg: Vec<u8>,
    /// When it started (for `max_trans_time`).
    started: u64,
    /// NOT_HERE redirections so far.
    redirects: u32,
    /// Where it stands.
    state: TState,
}

/// The open transactions of one endpoint and the locate cache they use.
pub(crate) struct ClientSide {
    /// Open transactions by the id their requests carry.
    open: BTreeMap<u64, Trans>,
    /// The next transaction id (ids start at 1 in every incarnation).
    next_id: u64,
    /// Who serves which port.
    pub locator: Locator,
    /// Timeouts that led to a probe (a statistic).
    pub retransmits: u64,
}

impl ClientSide {
    pub fn new() -> ClientSide {
        ClientSide { open: BTreeMap::new(), next_id: 1, locator: Locator::default(), retransmits: 0 }
    }

    /// A fresh transaction id.
    pub fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Number of open transactions.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// End the transaction whose requests carry `id` (or transaction `id`, not
    /// opened yet) with `result`.
    pub fn finish(&mut self, id: u64, result: Result<(Header, Vec<u8>), Status>, out: &mut Outbox) {
        let trans = self.open.remove(&id).map_or(id, |t| t.trans);
        out.events.push_back(Event::TransDone { id: TransId(trans), result });
    }

    /// Open transaction `id`, already delivered to this endpoint's own server as
    /// request `req`.
    pub fn open_local(&mut self, now: u64, id: u64, port: Port, req: u64) {
        let t = Trans {
            trans: id,
            port,
            msg: Vec::new(),
            started: now,
            redirects: 0,
            state: TState::Local { req },
        };
        self.open.insert(id, t);
    }

    /// Open transaction `id` to a remote server and send it (or locate first). Fails
    /// with `NoMem` if there is no memory for the request.
    pub fn open_remote(
        &mut self,
        now: u64,
        id: u64,
        header: &Header,
        buf: &[u8],
        cfg: &Config,
        out: &mut Outbox,
    ) {
        let low_water = self
            .open
            .iter()
            .filter(|(_, t)| !matches!(t.state, TState::Local { .. }))
            .map(|(k, _)| *k)
            .next()
            .unwrap_or(id)
            .min(id);
        let mut msg = Vec::new();
        if msg.try_reserve_exact(REQUEST_PREFIX_LEN + HEADER_LEN + buf.len()).is_err() {
            self.finish(id, Err(Status::NoMem), out);
            return;
        }
        msg.extend_from_slice(&RequestPrefix { low_water, epoch: 0 }.encode());
        msg.extend_from_slice(&header.encode());
        msg.extend_from_slice(buf);
        let t =
            Trans { trans: id, port: header.port, msg, started: now, redirects: 0, state: TState::Locating };
        self.open.insert(id, t);
        self.dispatch(now, id, cfg, out);
    }

    /// Send transaction `id` to the next cached server of its port, or locate.
    fn dispatch(&mut self, now: u64, id: u64, cfg: &Config, out: &mut Outbox) {
        let Some(t) = self.open.get_mut(&id) else {
            return;
        };
        match self.locator.pick(now, t.port, cfg) {
            Some(server) => {
                t.state = TState::Sent(Sent {
                    server,
                    rto: cfg.rto_initial,
                    deadline: now + cfg.rto_initial,
                    retries: 0,
                    working: false,
                    reply: None,
                });
                if let Some(epoch) = t.msg.get_mut(8..REQUEST_PREFIX_LEN) {
                    epoch.copy_from_slice(&server.epoch.to_be_bytes());
                }
                out.message(server.dest(t.port), 0, id, &t.msg, None);
            }
            None => {
                t.state = TState::Locating;
                self.locator.search(now, t.port, cfg, out);
            }
        }
    }

    /// Ids of the transactions waiting for `port` to be located.
    fn waiting_for(&self, port: Port) -> Vec<u64> {
        self.open
            .iter()
            .filter(|(_, t)| t.port == port && matches!(t.state, TState::Locating))
            .map(|(k, _)| *k)
            .collect()
    }

    /// A HERE_IS: cache the server and send what waited for it.
    pub fn on_here_is(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        if let Some(port) = self.locator.on_here_is(now, src, p, out.me.inc) {
            for id in self.waiting_for(port) {
                self.dispatch(now, id, cfg, out);
            }
        }
    }

    /// The search timers due at `now`: broadcast again, or fail what waits.
    pub fn locate_timeouts(&mut self, now: u64, cfg: &Config, out: &mut Outbox) {
        for port in self.locator.due(now) {
            if !self.locator.retry(now, port, cfg, out) {
                for id in self.waiting_for(port) {
                    self.finish(id, Err(Status::RpcNotFound), out);
                }
            }
        }
    }

    /// When the next transaction or search timer is due.
    pub fn next_deadline(&self, cfg: &Config) -> Option<u64> {
        let mut d = self.locator.next_deadline();
        let mut upd = |t: u64| d = Some(d.map_or(t, |x: u64| x.min(t)));
        for t in self.open.values() {
            if let TState::Sent(s) = &t.state {
                upd(s.deadline);
            }
            if let Some(max) = cfg.max_trans_time {
                upd(t.started.saturating_add(max));
            }
        }
        d
    }

    /// Ids of the transactions whose timer is due at `now`.
    pub fn due(&self, now: u64, cfg: &Config) -> Vec<u64> {
        self.open
            .iter()
            .filter(|(_, t)| {
                let late = cfg.max_trans_time.is_some_and(|m| now >= t.started.saturating_add(m));
                late || matches!(&t.state, TState::Sent(s) if s.deadline <= now)
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Abandon transaction `id`: `None` if it was not open, else the local request
    /// it was delivered as (which the server side must forget).
    pub fn abandon(&mut self, id: u64) -> Option<Option<u64>> {
        let key = match self.open.get(&id) {
            Some(t) if t.trans == id => id,
            _ => self.open.iter().find(|(_, t)| t.trans == id).map(|(k, _)| *k)?,
        };
        let t = self.open.remove(&key)?;
        Some(match t.state {
            TState::Local { req } => Some(req),
            _ => None,
        })
    }

    /// The local server answered request `req` of transaction `id`; false if that
    /// transaction is no longer waiting for it.
    pub fn finish_local(
        &mut self,
        id: u64,
        req: u64,
        result: Result<(Header, Vec<u8>), Status>,
        out: &mut Outbox,
    ) -> bool {
        // Local transactions keep their own id as key: no NOT_HERE sends them on.
        let waiting = matches!(self.open.get(&id),
            Some(t) if t.trans == id && matches!(t.state, TState::Local { req: r } if r == req));
        if waiting {
            self.finish(id, result, out);
        }
        waiting
    }

    /// The open transaction `id` if it was sent to `server_addr`.
    fn sent_to(&mut self, id: u64, server_addr: Addr) -> Option<&mut Trans> {
        self.open.get_mut(&id).filter(|t| matches!(&t.state, TState::Sent(s) if s.server.addr == server_addr))
    }

    /// NOT_HERE: the server does not serve the port (try another), or (stale) it
    /// rebooted since the client learned of it.
    pub fn on_not_here(&mut self, now: u64, h: &FlipHeader, cfg: &Config, out: &mut Outbox) {
        if h.dst != out.me.addr || h.dst_inc != out.me.inc {
            return;
        }
        let Some(t) = self.sent_to(h.msg_id, h.src) else {
            return;
        };
        let TState::Sent(s) = &t.state else { return };
        let (server, port) = (s.server, t.port);
        if h.flags & F_STALE != 0 {
            // Rebooted (another incarnation), or (the same one) it can no longer
            // judge this request. Either way it did not run now and ran at most once
            // before; the next transaction locates afresh.
            self.locator.remove_server(port, h.src);
            self.finish(h.msg_id, Err(Status::ServerRestarted), out);
            return;
        }
        if h.src_inc != server.inc {
            return;
        }
        // That server does not serve the port (any more) and did not run the request.
        self.locator.remove_server(port, h.src);
        let Some(mut t) = self.open.remove(&h.msg_id) else { return };
        t.redirects += 1;
        if t.redirects > cfg.max_redirects {
            out.events.push_back(Event::TransDone { id: TransId(t.trans), result: Err(Status::RpcNotFound) });
            return;
        }
        // The request goes on under a fresh id. The server that refused it keeps
        // a record that the old id never runs there (a late copy must not), so
        // under the old id it would refuse the request again even once it serves
        // the port: a server restarted in place on the same station.
        let id = self.new_id();
        self.open.insert(id, t);
        self.dispatch(now, id, cfg, out);
    }

    /// An ACK about a request: the server is working on it, needs all of it again, or
    /// misses some ranges.
    pub fn on_request_ack(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        if h.dst != out.me.addr || h.dst_inc != out.me.inc {
            return;
        }
        let Some(t) = self.sent_to(h.msg_id, h.src) else {
            return;
        };
        let port = t.port;
        let TState::Sent(s) = &mut t.state else {
            return;
        };
        if s.server.inc != h.src_inc || s.reply.is_some() {
            return;
        }
        let to = Dest { mac: src, ..s.server.dest(port) };
        if h.flags & F_NEED_ALL != 0 {
            s.working = false;
            out.message(to, 0, h.msg_id, &t.msg, None);
        } else if h.flags & F_WORKING != 0 {
            s.heard(now, false, cfg.rto_initial);
            s.working = true;
        } else {
            let ranges = parse_ranges(p.payload).unwrap_or_default();
            if ranges.is_empty() {
                return;
            }
            s.heard(now, true, cfg.rto_initial);
            out.message(to, 0, h.msg_id, &t.msg, Some(&ranges));
        }
    }

    /// A fragment of a reply.
    pub fn on_reply_frag(&mut self, now: u64, src: Mac, p: &Packet<'_>, cfg: &Config, out: &mut Outbox) {
        let h = &p.header;
        if h.dst != out.me.addr || h.dst_inc != out.me.inc || !h.src.is_node() {
            return;
        }
        let max_total = HEADER_LEN + cfg.max_buf;
        let next_id = self.next_id;
        let Some(t) = self.sent_to(h.msg_id, h.src) else {
            // A duplicate of a reply we already have: acknowledge it again.
            if h.msg_id < next_id && h.frag_off == 0 {
                let back = Dest { mac: src, addr: h.src, inc: h.src_inc };
                out.control(back, PacketType::Ack, F_REPLY, h.msg_id, &[]);
            }
            return;
        };
        let port = t.port;
        let TState::Sent(s) = &mut t.state else {
            return;
        };
        if s.server.inc != h.src_inc {
            return;
        }
        let total = h.total_len as usize;
        if !(HEADER_LEN..=max_total).contains(&total) {
            return;
        }
        if let Some(r) = &s.reply
            && r.total() != h.total_len
        {
            // A short abort says the server no longer has the reply. It replaces the
            // part received only once that has stopped arriving: the abort may have
            // overtaken fragments still on their way.
            if h.flags & F_ABORT == 0 || now < r.last_activity.saturating_add(cfg.rto_initial) {
                return;
            }
            s.reply = None;
        }
        let r = match &mut s.reply {
            Some(r) => r,
            None => match Reassembly::try_new(h.total_len, now) {
                Some(r) => s.reply.insert(r),
                None => return,
            },
        };
        let new_data = r.insert(h.frag_off, p.payload, now);
        let complete = r.is_complete();
        if new_data {
            s.heard(now, true, cfg.rto_initial);
        }
        if !complete {
            return;
        }
        let server = s.server;
        let Some(reply) = s.reply.take() else { return };
        let msg = reply.into_vec();
        let ack_to = Dest { mac: server.mac, addr: server.addr, inc: server.inc };
        out.control(ack_to, PacketType::Ack, F_REPLY, h.msg_id, &[]);
        self.locator.confirm(port, now);
        let result = match Header::decode_prefix(&msg) {
            Ok((hdr, _)) if h.flags & F_ABORT != 0 => {
                let st = Status::from_i32_lossy(hdr.status);
                Err(if st.is_ok() { Status::RpcAborted } else { st })
            }
            Ok((hdr, buf)) => Ok((hdr, buf.to_vec())),
            Err(_) => Err(Status::RpcFailure),
        };
        self.finish(h.msg_id, result, out);
    }

    /// Transaction `id`'s timer fired: probe the server, or give up. Returns the local
    /// request to forget if a local transaction ran out of time.
    pub fn timeout(&mut self, now: u64, id: u64, cfg: &Config, out: &mut Outbox) -> Option<u64> {
        let t = self.open.get_mut(&id)?;
        if cfg.max_trans_time.is_some_and(|m| now >= t.started.saturating_add(m)) {
            let (st, local) = match &t.state {
                TState::Locating => (Status::RpcNotFound, None),
                TState::Sent(_) => (Status::RpcFailure, None),
                TState::Local { req } => (Status::RpcFailure, Some(*req)),
            };
            self.finish(id, Err(st), out);
            return local;
        }
        let port = t.port;
        let TState::Sent(s) = &mut t.state else {
            return None;
        };
        if s.deadline > now {
            return None;
        }
        // Silence for a whole timeout.
        s.retries += 1;
        if s.retries > cfg.max_retries {
            let addr = s.server.addr;
            self.locator.remove_server(port, addr);
            self.finish(id, Err(Status::RpcFailure), out);
            return None;
        }
        s.rto = (s.rto * 2).min(cfg.rto_max);
        s.deadline = now + s.rto;
        self.retransmits += 1;
        let to = s.server.dest(port);
        for _ in 0..cfg.probes_per_timeout.max(1) {
            if let Some(r) = &s.reply {
                let (ranges, more) = r.missing(MAX_RANGES);
                let flags = if more { F_MORE } else { 0 };
                out.control(to, PacketType::Enquiry, flags, id, &encode_ranges(&ranges));
            } else if t.msg.len() <= MAX_FRAGMENT && !s.working {
                out.message(to, 0, id, &t.msg, None);
            } else {
                out.control(to, PacketType::Enquiry, 0, id, &[]);
            }
        }
        None
    }
}
