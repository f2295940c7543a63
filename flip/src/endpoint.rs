//! The FLIP/RPC endpoint: one per board (or per host client), sans-IO. It parses
//! frames, hands each packet to the client side ([`crate::client`], with its locate
//! cache) or the server side ([`crate::server`]), and takes the local short path
//! when both ends of a transaction are on this endpoint.

use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::{GetPort, Header, Port, Status};

use crate::client::ClientSide;
use crate::config::Config;
use crate::events::{Event, ReplyError, ReqId, TransId};
use crate::outbox::{Identity, Outbox, Transmit};
use crate::server::{Answered, Reply, ServerMemory, ServerSide};
use crate::wire::{Addr, F_REPLY, Frame, Mac, Packet, PacketType};

/// Counters for diagnostics and benchmarks.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed in.
    pub frames_in: u64,
    /// Frames rejected by the parser.
    pub frames_bad: u64,
    /// Frames queued for transmission.
    pub frames_out: u64,
    /// LOCATE broadcasts sent.
    pub locates: u64,
    /// Client timeouts that led to a retransmission or enquiry.
    pub retransmits: u64,
    /// Requests delivered to servers.
    pub requests: u64,
    /// Duplicate requests answered from the stored reply (not re-executed).
    pub replays: u64,
    /// Requests refused, not run, because the server could no longer judge them
    /// (it forgot their client or record, or they are addressed to an older memory
    /// epoch).
    pub refused: u64,
    /// Stored replies shed under the reply budget (or because no memory was left).
    pub replies_lost: u64,
    /// Transaction records shed (budgets, silent clients, stale partial requests).
    pub records_shed: u64,
    /// Clients forgotten (evicted, or replaced by an older incarnation after silence).
    pub clients_forgotten: u64,
    /// HERE_IS answers dropped because they did not prove that their sender holds the
    /// port's get-port (an impostor, a replay, or a forgery), or because the
    /// locate's budget of checks was used up.
    pub here_is_refused: u64,
    /// HERE_IS proofs checked (signature verifications), at most
    /// [`HERE_IS_CHECKS_PER_BROADCAST`](crate::HERE_IS_CHECKS_PER_BROADCAST) per
    /// LOCATE broadcast.
    pub here_is_checked: u64,
    /// HERE_IS proofs this endpoint's servers signed.
    pub here_is_signed: u64,
    /// LOCATEs this endpoint's servers left unanswered for want of proof budget.
    pub locates_unanswered: u64,
}

/// A FLIP endpoint: client side (transactions, locate cache) and server side
/// (registered ports, at-most-once request records) of RPC for one node.
pub struct Endpoint {
    /// Tunables.
    cfg: Config,
    /// Frames and events for the driver, and who we are.
    out: Outbox,
    /// Frames handed in (a statistic).
    frames_in: u64,
    /// Frames the parser rejected (a statistic).
    frames_bad: u64,
    /// Registered ports and the at-most-once memory.
    server: ServerSide,
    /// Open transactions and the locate cache.
    client: ClientSide,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("mac", &self.out.me.mac)
            .field("incarnation", &self.out.me.inc)
            .field("registered", &self.server.port_count())
            .field("clients", &self.server.client_count())
            .field("transactions", &self.client.len())
            .finish()
    }
}

impl Endpoint {
    /// A new endpoint for the node with Ethernet address `mac`, in boot incarnation
    /// `incarnation` (must be higher after every reboot of the node; at least 1).
    pub fn new(mac: Mac, incarnation: u32, config: Config) -> Endpoint {
        Endpoint {
            cfg: config,
            out: Outbox::new(Identity { mac, addr: Addr::node(mac), inc: incarnation.max(1) }),
            frames_in: 0,
            frames_bad: 0,
            server: ServerSide::new(),
            client: ClientSide::new(),
        }
    }

    /// This node's MAC.
    pub fn mac(&self) -> Mac {
        self.out.me.mac
    }

    /// This node's FLIP address.
    pub fn address(&self) -> Addr {
        self.out.me.addr
    }

    /// Boot incarnation.
    pub fn incarnation(&self) -> u32 {
        self.out.me.inc
    }

    /// Configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            frames_in: self.frames_in,
            frames_bad: self.frames_bad,
            frames_out: self.out.frames_out,
            locates: self.client.locator.locates,
            retransmits: self.client.retransmits,
            requests: self.server.stats.delivered,
            replays: self.server.stats.replays,
            refused: self.server.stats.refused,
            replies_lost: self.server.stats.replies_lost,
            records_shed: self.server.stats.records_shed,
            clients_forgotten: self.server.stats.clients_forgotten,
            here_is_refused: self.client.locator.here_is_refused,
            here_is_checked: self.client.locator.here_is_checked,
            here_is_signed: self.server.stats.here_is_signed,
            locates_unanswered: self.server.stats.locates_unanswered,
        }
    }

    /// What the server side holds for its clients, to compare with the budgets of
    /// [`Config`] (counted afresh: meant for diagnostics and tests, not every frame).
    pub fn server_memory(&self) -> ServerMemory {
        self.server.memory()
    }

    // ------------------------------------------------------------------ driver API

    /// Next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_transmit()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should next be called (absolute time, µs).
    pub fn next_deadline(&self) -> Option<u64> {
        match (self.server.next_deadline(), self.client.next_deadline(&self.cfg)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handle a received Ethernet frame (complete, without FCS). Frames that are not
    /// FLIP, not for this node, or malformed are dropped.
    pub fn handle_frame(&mut self, now: u64, frame: &[u8]) {
        self.frames_in += 1;
        let f = match Frame::parse(frame) {
            Ok(f) => f,
            Err(_) => {
                self.frames_bad += 1;
                return;
            }
        };
        if f.src == self.out.me.mac || !(f.dst == self.out.me.mac || f.dst.is_broadcast()) {
            return;
        }
        self.handle(now, f.src, &f.packet);
    }

    /// Handle a received FLIP packet (the Ethernet payload) from `src`.
    pub fn handle_packet(&mut self, now: u64, src: Mac, payload: &[u8]) {
        self.frames_in += 1;
        match Packet::parse(payload) {
            Ok(p) if src != self.out.me.mac => self.handle(now, src, &p),
            Ok(_) => {}
            Err(_) => self.frames_bad += 1,
        }
    }

    /// Run timers due at `now`: retransmissions, locate retries, failures, cleanup.
    pub fn handle_timeout(&mut self, now: u64) {
        for id in self.client.due(now, &self.cfg) {
            if let Some(req) = self.client.timeout(now, id, &self.cfg, &mut self.out) {
                self.server.cancel_local(req);
            }
        }
        self.client.locate_timeouts(now, &self.cfg, &mut self.out);
        self.server.timeout(now, &self.cfg);
    }

    // ------------------------------------------------------------------ server API

    /// Serve the port whose get-port is `get` (as a thread calling `get_request(G)`
    /// does): LOCATEs for `F(G)` are answered, with a proof signed by G's locate key,
    /// and requests delivered as [`Event::RequestArrived`]. Registrations are
    /// counted. Returns the put-port. The first registration of a port derives its
    /// key (an elliptic-curve multiplication); further ones, and
    /// [`Endpoint::registered_port`], find it again without that cost.
    pub fn register_server(&mut self, get: &GetPort) -> Port {
        self.server.register(get)
    }

    /// The put-port of `get` if it is registered here, without deriving it again.
    pub fn registered_port(&self, get: &GetPort) -> Option<Port> {
        self.server.registered_port(get)
    }

    /// Drop one registration of `get`; returns whether it was registered. Requests
    /// already delivered must still be answered (or aborted).
    pub fn unregister_server(&mut self, get: &GetPort) -> bool {
        self.server.unregister(get)
    }

    /// Is a server registered here for put-port `p`?
    pub fn is_registered(&self, p: &Port) -> bool {
        self.server.is_registered(p)
    }

    /// Answer a request. The reply is kept until the client acknowledges it, so a
    /// retransmitted request gets it again without being re-executed.
    pub fn put_reply(&mut self, now: u64, req: ReqId, header: &Header, buf: &[u8]) -> Result<(), ReplyError> {
        if buf.len() > self.cfg.max_buf {
            let h = Header::reply(Status::RpcBadAddress);
            self.finish_request(now, req, Reply { header: &h, buf: &[], abort: true })?;
            return Err(ReplyError::TooLarge);
        }
        self.finish_request(now, req, Reply { header, buf, abort: false })
    }

    /// Give up on a request (e.g. its server process died): the client's transaction
    /// ends with `Err(status)`.
    pub fn abort_request(&mut self, now: u64, req: ReqId, status: Status) -> Result<(), ReplyError> {
        self.finish_request(now, req, Reply { header: &Header::reply(status), buf: &[], abort: true })
    }

    fn finish_request(&mut self, now: u64, req: ReqId, reply: Reply<'_>) -> Result<(), ReplyError> {
        let (header, buf, abort) = (*reply.header, reply.buf, reply.abort);
        match self.server.answer(now, req.0, reply, &self.cfg, &mut self.out)? {
            Answered::Remote => Ok(()),
            Answered::Local { trans } => {
                let result = if abort {
                    Err(Status::from_i32_lossy(header.status))
                } else {
                    Ok((header, buf.to_vec()))
                };
                if self.client.finish_local(trans, req.0, result, &mut self.out) {
                    Ok(())
                } else {
                    Err(ReplyError::NoSuchRequest)
                }
            }
        }
    }

    // ------------------------------------------------------------------ client API

    /// Start a transaction to the server named by `header.port`. The result comes as
    /// [`Event::TransDone`] with the returned id.
    pub fn start_trans(&mut self, now: u64, header: &Header, buf: &[u8]) -> TransId {
        let id = self.client.new_id();
        let port = header.port;
        if port.is_null() {
            self.client.finish(id, Err(Status::RpcBadPort), &mut self.out);
        } else if buf.len() > self.cfg.max_buf {
            self.client.finish(id, Err(Status::RpcBadAddress), &mut self.out);
        } else if self.server.is_registered(&port) {
            // Local short path: no network.
            match copy(buf) {
                Some(buf) => {
                    let req = self.server.deliver_local(header, buf, id, &mut self.out);
                    self.client.open_local(now, id, port, req);
                }
                None => self.client.finish(id, Err(Status::NoMem), &mut self.out),
            }
        } else {
            self.client.open_remote(now, id, header, buf, &self.cfg, &mut self.out);
        }
        TransId(id)
    }

    /// Abandon a transaction: no [`Event::TransDone`] will come for it. Returns
    /// whether it was open. (If the request already reached a server it may still
    /// run there, once.)
    pub fn abort_trans(&mut self, id: TransId) -> bool {
        match self.client.abandon(id.0) {
            Some(local) => {
                if let Some(req) = local {
                    self.server.cancel_local(req);
                }
                true
            }
            None => false,
        }
    }

    /// Number of open transactions.
    pub fn open_transactions(&self) -> usize {
        self.client.len()
    }

    /// The endpoints the locate cache knows for `port`: (MAC, address, incarnation).
    pub fn cached_servers(&self, port: &Port) -> Vec<(Mac, Addr, u32)> {
        self.client.locator.cached(port)
    }

    /// Forget what the locate cache knows about `port`.
    pub fn forget_port(&mut self, port: &Port) {
        self.client.locator.forget(port);
    }

    // ------------------------------------------------------------------ internals

    fn handle(&mut self, now: u64, src: Mac, p: &Packet<'_>) {
        let h = &p.header;
        let (cfg, out) = (&self.cfg, &mut self.out);
        match h.ptype {
            PacketType::Locate => self.server.on_locate(now, src, p, cfg, out),
            PacketType::HereIs => self.client.on_here_is(now, src, p, cfg, out),
            PacketType::Unidata if h.flags & F_REPLY != 0 => self.client.on_reply_frag(now, src, p, cfg, out),
            PacketType::Unidata | PacketType::Enquiry => self.server.on_request(now, src, p, cfg, out),
            PacketType::NotHere => self.client.on_not_here(now, h, cfg, out),
            PacketType::Ack if h.flags & F_REPLY != 0 => self.server.on_reply_ack(now, h, out),
            PacketType::Ack => self.client.on_request_ack(now, src, p, cfg, out),
        }
    }
}

/// A copy of `buf`, or `None` if there is no memory for it.
fn copy(buf: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(buf.len()).ok()?;
    v.extend_from_slice(buf);
    Some(v)
}
