//! The FLIP/RPC endpoint: one per board (or per host client), sans-IO.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use amoeba::{GetPort, HEADER_LEN, Header, Port, Status};

use crate::reasm::Reassembly;
use crate::wire::*;

/// Length of the request prefix before the Amoeba header: the client's low-water
/// transaction id (u64).
const REQ_PREFIX: usize = 8;

/// Tunables. Times are in microseconds.
#[derive(Clone, Debug)]
pub struct Config {
    /// First retransmission timeout of a transaction.
    pub rto_initial: u64,
    /// Largest retransmission timeout (back-off doubles up to this).
    pub rto_max: u64,
    /// Consecutive timeouts without any answer from the server before the
    /// transaction fails with `RpcFailure` (the server is considered dead).
    pub max_retries: u32,
    /// First interval between LOCATE broadcasts (doubles up to `rto_max`).
    pub locate_interval: u64,
    /// LOCATE broadcasts before a transaction fails with `RpcNotFound`.
    pub locate_attempts: u32,
    /// Copies of the probe (enquiry or resent request) sent at each timeout.
    /// One probe or its answer lost makes a round silent; on a network that
    /// loses a third of all frames half of all single-probe rounds are, and
    /// `max_retries + 1` silent rounds in a row would declare a live server
    /// dead about once in 10⁴ timeouts. Two copies make a silent round a
    /// quarter as likely, without waiting longer for a dead one.
    pub probes_per_timeout: u32,
    /// Optional bound on the whole transaction (even while the server says it is
    /// working); `None` = unbounded while the server is alive.
    pub max_trans_time: Option<u64>,
    /// Largest request or reply buffer.
    pub max_buf: usize,
    /// Memory budget for reassembling incoming requests (all clients together).
    pub max_reassembly_bytes: usize,
    /// A partly received request is dropped after this long without a new fragment.
    pub reassembly_timeout: u64,
    /// Per-client server state (stored replies, at-most-once records) of a client not
    /// heard from for this long is dropped. Must exceed the longest a client may
    /// keep retransmitting.
    pub client_ttl: u64,
    /// Most clients tracked at once.
    pub max_clients: usize,
    /// Most transaction records kept per client.
    pub max_records_per_client: usize,
    /// A locate-cache entry not confirmed (HERE_IS or successful reply) for this long
    /// is dropped; the next transaction locates again.
    pub cache_ttl: u64,
    /// "Not here" redirections before a transaction fails with `RpcNotFound`.
    pub max_redirects: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rto_initial: 100_000,
            rto_max: 1_000_000,
            max_retries: 6,
            locate_interval: 100_000,
            locate_attempts: 5,
            probes_per_timeout: 1,
            max_trans_time: None,
            max_buf: 1 << 20,
            max_reassembly_bytes: 8 << 20,
            reassembly_timeout: 10_000_000,
            client_ttl: 60_000_000,
            max_clients: 1024,
            max_records_per_client: 256,
            cache_ttl: 60_000_000,
            max_redirects: 8,
        }
    }
}

impl Config {
    /// For a network that may lose a third of all frames (the pool's switch with
    /// fault injection): a transaction, and the search for its server, keep
    /// trying for about ten seconds before they declare the server dead or
    /// missing.
    pub fn for_lossy_network() -> Config {
        Config { max_retries: 12, locate_attempts: 12, probes_per_timeout: 2, ..Config::default() }
    }
}

/// A client transaction (unique within one endpoint incarnation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TransId(pub u64);

/// A request delivered to a server, to be answered with [`Endpoint::put_reply`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReqId(pub u64);

/// A frame to put on the wire.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// Destination MAC (unicast or [`Mac::BROADCAST`]); also in `frame[0..6]`.
    pub dst: Mac,
    /// The complete Ethernet frame (without FCS).
    pub frame: Vec<u8>,
}

/// What the endpoint reports to its driver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A request for a registered port arrived (exactly once per transaction). Answer
    /// it with [`Endpoint::put_reply`] or [`Endpoint::abort_request`].
    RequestArrived {
        /// Handle for the reply.
        req: ReqId,
        /// The put-port it was sent to.
        port: Port,
        /// Request header.
        header: Header,
        /// Request buffer.
        buf: Vec<u8>,
        /// The client endpoint's address.
        client: Addr,
    },
    /// A transaction ended: the server's reply, or why there is none.
    TransDone {
        /// Which transaction.
        id: TransId,
        /// Reply header and buffer, or the RPC error: `RpcNotFound` (nobody serves
        /// the port; the request did not run), `RpcFailure` (server dead or
        /// unreachable; it may have run once), `ServerRestarted` (the server's board
        /// rebooted; it ran at most once, before), `RpcBadPort`, `RpcBadAddress`
        /// (buffer too large), or the status of [`Endpoint::abort_request`].
        result: Result<(Header, Vec<u8>), Status>,
    },
}

/// [`Endpoint::put_reply`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyError {
    /// Unknown or already answered request (or its client went away).
    NoSuchRequest,
    /// Reply buffer larger than `max_buf`; the client got `RpcBadAddress` instead.
    TooLarge,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NoSuchRequest => f.write_str("no such request"),
            ReplyError::TooLarge => f.write_str("reply buffer too large"),
        }
    }
}

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ServerRef {
    addr: Addr,
    mac: Mac,
    inc: u32,
}

struct CacheEntry {
    servers: Vec<ServerRef>,
    next: usize,
    last_ok: u64,
}

const MAX_SERVERS_PER_PORT: usize = 16;

struct Locating {
    attempts: u32,
    next: u64,
    interval: u64,
}

struct Sent {
    server: ServerRef,
    rto: u64,
    deadline: u64,
    retries: u32,
    working: bool,
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

enum TState {
    Locating,
    Sent(Sent),
    Local { req: u64 },
}

struct Trans {
    port: Port,
    msg: Vec<u8>,
    started: u64,
    redirects: u32,
    state: TState,
}

enum Rec {
    Receiving(Reassembly),
    InProgress(u64),
    Replied { msg: Vec<u8>, abort: bool, last_sent: u64 },
    Done,
    Refused,
}

impl Rec {
    fn pinned(&self) -> bool {
        matches!(self, Rec::InProgress(_) | Rec::Replied { .. })
    }
}

struct Client {
    inc: u32,
    mac: Mac,
    last_active: u64,
    low_water: u64,
    recs: BTreeMap<u64, Rec>,
}

impl Client {
    fn pinned(&self) -> bool {
        self.recs.values().any(Rec::pinned)
    }
}

enum Origin {
    Remote { client: Addr, trans: u64 },
    Local { trans: u64 },
}

#[derive(Clone, Copy)]
struct Me {
    mac: Mac,
    addr: Addr,
    inc: u32,
}

/// Output queue plus identity: split from the rest of the endpoint so that stored
/// messages can be sent while borrowed.
struct Out {
    me: Me,
    tx: VecDeque<Transmit>,
    frames_out: u64,
}

impl Out {
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        mac: Mac,
        ptype: PacketType,
        flags: u8,
        dst: Addr,
        dst_inc: u32,
        msg_id: u64,
        total_len: u32,
        frag_off: u32,
        payload: &[u8],
    ) {
        let header = FlipHeader {
            ptype,
            flags,
            hops: 1,
            dst,
            src: self.me.addr,
            dst_inc,
            src_inc: self.me.inc,
            msg_id,
            total_len,
            frag_off,
        };
        let frame = Frame { dst: mac, src: self.me.mac, packet: Packet { header, payload } }.encode();
        self.frames_out += 1;
        self.tx.push_back(Transmit { dst: mac, frame });
    }

    #[allow(clippy::too_many_arguments)]
    fn control(
        &mut self,
        mac: Mac,
        ptype: PacketType,
        flags: u8,
        dst: Addr,
        dst_inc: u32,
        msg_id: u64,
        payload: &[u8],
    ) {
        let n = payload.len() as u32;
        self.send(mac, ptype, flags, dst, dst_inc, msg_id, n, 0, payload);
    }

    /// Send the fragments of `msg` (only those overlapping `ranges`, if given).
    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        mac: Mac,
        flags: u8,
        dst: Addr,
        dst_inc: u32,
        msg_id: u64,
        msg: &[u8],
        ranges: Option<&[(u32, u32)]>,
    ) {
        let total = msg.len() as u32;
        for (i, chunk) in msg.chunks(MAX_FRAGMENT).enumerate() {
            let off = (i * MAX_FRAGMENT) as u64;
            let end = off + chunk.len() as u64;
            if let Some(r) = ranges {
                let hit = r.iter().any(|&(a, l)| off < a as u64 + l as u64 && (a as u64) < end);
                if !hit {
                    continue;
                }
            }
            self.send(mac, PacketType::Unidata, flags, dst, dst_inc, msg_id, total, off as u32, chunk);
        }
    }
}

/// A FLIP endpoint: client side (transactions, locate cache) and server side
/// (registered ports, at-most-once request records) of RPC for one node.
pub struct Endpoint {
    cfg: Config,
    out: Out,
    events: VecDeque<Event>,
    stats: Stats,
    // Server side.
    registered: BTreeMap<Port, u32>,
    clients: BTreeMap<Addr, Client>,
    requests: BTreeMap<u64, Origin>,
    next_req: u64,
    reasm_bytes: usize,
    gc_at: Option<u64>,
    // Client side.
    trans: BTreeMap<u64, Trans>,
    next_trans: u64,
    cache: BTreeMap<Port, CacheEntry>,
    locates: BTreeMap<Port, Locating>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("mac", &self.out.me.mac)
            .field("incarnation", &self.out.me.inc)
            .field("registered", &self.registered.len())
            .field("clients", &self.clients.len())
            .field("transactions", &self.trans.len())
            .finish()
    }
}

impl Endpoint {
    /// A new endpoint for the node with Ethernet address `mac`, in boot incarnation
    /// `incarnation` (must be higher after every reboot of the node; at least 1).
    pub fn new(mac: Mac, incarnation: u32, config: Config) -> Endpoint {
        Endpoint {
            cfg: config,
            out: Out {
                me: Me { mac, addr: Addr::node(mac), inc: incarnation.max(1) },
                tx: VecDeque::new(),
                frames_out: 0,
            },
            events: VecDeque::new(),
            stats: Stats::default(),
            registered: BTreeMap::new(),
            clients: BTreeMap::new(),
            requests: BTreeMap::new(),
            next_req: 1,
            reasm_bytes: 0,
            gc_at: None,
            trans: BTreeMap::new(),
            next_trans: 1,
            cache: BTreeMap::new(),
            locates: BTreeMap::new(),
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
        Stats { frames_out: self.out.frames_out, ..self.stats }
    }

    // ------------------------------------------------------------------ driver API

    /// Next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.tx.pop_front()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should next be called (absolute time, µs).
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d = self.gc_at;
        let mut upd = |t: u64| d = Some(d.map_or(t, |x: u64| x.min(t)));
        for t in self.trans.values() {
            if let TState::Sent(s) = &t.state {
                upd(s.deadline);
            }
            if let Some(max) = self.cfg.max_trans_time {
                upd(t.started.saturating_add(max));
            }
        }
        for l in self.locates.values() {
            upd(l.next);
        }
        d
    }

    /// Handle a received Ethernet frame (complete, without FCS). Frames that are not
    /// FLIP, not for this node, or malformed are dropped.
    pub fn handle_frame(&mut self, now: u64, frame: &[u8]) {
        self.stats.frames_in += 1;
        let f = match Frame::parse(frame) {
            Ok(f) => f,
            Err(_) => {
                self.stats.frames_bad += 1;
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
        self.stats.frames_in += 1;
        match Packet::parse(payload) {
            Ok(p) if src != self.out.me.mac => self.handle(now, src, &p),
            Ok(_) => {}
            Err(_) => self.stats.frames_bad += 1,
        }
    }

    /// Run timers due at `now`: retransmissions, locate retries, failures, cleanup.
    pub fn handle_timeout(&mut self, now: u64) {
        let due: Vec<u64> = self
            .trans
            .iter()
            .filter(|(_, t)| {
                let late = self.cfg.max_trans_time.is_some_and(|m| now >= t.started.saturating_add(m));
                late || matches!(&t.state, TState::Sent(s) if s.deadline <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for id in due {
            self.trans_timeout(now, id);
        }
        let due: Vec<Port> = self.locates.iter().filter(|(_, l)| l.next <= now).map(|(p, _)| *p).collect();
        for port in due {
            self.locate_timeout(now, port);
        }
        if self.gc_at.is_some_and(|g| g <= now) {
            self.gc(now);
        }
    }

    // ------------------------------------------------------------------ server API

    /// Serve the port whose get-port is `get` (as a thread calling `get_request(G)`
    /// does): LOCATEs for `F(G)` are answered and requests delivered as
    /// [`Event::RequestArrived`]. Registrations are counted. Returns the put-port.
    pub fn register_server(&mut self, get: &GetPort) -> Port {
        let p = get.put_port();
        *self.registered.entry(p).or_insert(0) += 1;
        p
    }

    /// Drop one registration of `get`; returns whether it was registered. Requests
    /// already delivered must still be answered (or aborted).
    pub fn unregister_server(&mut self, get: &GetPort) -> bool {
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

    /// Is a server registered here for put-port `p`?
    pub fn is_registered(&self, p: &Port) -> bool {
        self.registered.contains_key(p)
    }

    /// Answer a request. The reply is kept until the client acknowledges it, so a
    /// retransmitted request gets it again without being re-executed.
    pub fn put_reply(&mut self, now: u64, req: ReqId, header: &Header, buf: &[u8]) -> Result<(), ReplyError> {
        if buf.len() > self.cfg.max_buf {
            let h = Header::reply(Status::RpcBadAddress);
            self.finish_request(now, req, &h, &[], true)?;
            return Err(ReplyError::TooLarge);
        }
        self.finish_request(now, req, header, buf, false)
    }

    /// Give up on a request (e.g. its server process died): the client's transaction
    /// ends with `Err(status)`.
    pub fn abort_request(&mut self, now: u64, req: ReqId, status: Status) -> Result<(), ReplyError> {
        self.finish_request(now, req, &Header::reply(status), &[], true)
    }

    // ------------------------------------------------------------------ client API

    /// Start a transaction to the server named by `header.port`. The result comes as
    /// [`Event::TransDone`] with the returned id.
    pub fn start_trans(&mut self, now: u64, header: &Header, buf: &[u8]) -> TransId {
        let id = self.next_trans;
        self.next_trans += 1;
        let port = header.port;
        if port.is_null() {
            self.done(id, Err(Status::RpcBadPort));
            return TransId(id);
        }
        if buf.len() > self.cfg.max_buf {
            self.done(id, Err(Status::RpcBadAddress));
            return TransId(id);
        }
        if self.registered.contains_key(&port) {
            // Local short path: no network.
            let req = self.next_req;
            self.next_req += 1;
            self.requests.insert(req, Origin::Local { trans: id });
            self.trans.insert(
                id,
                Trans { port, msg: Vec::new(), started: now, redirects: 0, state: TState::Local { req } },
            );
            self.stats.requests += 1;
            self.events.push_back(Event::RequestArrived {
                req: ReqId(req),
                port,
                header: *header,
                buf: buf.to_vec(),
                client: self.out.me.addr,
            });
            return TransId(id);
        }
        let low_water = self
            .trans
            .iter()
            .filter(|(_, t)| !matches!(t.state, TState::Local { .. }))
            .map(|(k, _)| *k)
            .next()
            .unwrap_or(id)
            .min(id);
        let mut msg = Vec::with_capacity(REQ_PREFIX + HEADER_LEN + buf.len());
        msg.extend_from_slice(&low_water.to_be_bytes());
        msg.extend_from_slice(&header.encode());
        msg.extend_from_slice(buf);
        self.trans.insert(id, Trans { port, msg, started: now, redirects: 0, state: TState::Locating });
        self.dispatch_trans(now, id);
        TransId(id)
    }

    /// Abandon a transaction: no [`Event::TransDone`] will come for it. Returns
    /// whether it was open. (If the request already reached a server it may still
    /// run there, once.)
    pub fn abort_trans(&mut self, id: TransId) -> bool {
        match self.trans.remove(&id.0) {
            Some(t) => {
                if let TState::Local { req } = t.state {
                    self.requests.remove(&req);
                }
                true
            }
            None => false,
        }
    }

    /// Number of open transactions.
    pub fn open_transactions(&self) -> usize {
        self.trans.len()
    }

    /// The endpoints the locate cache knows for `port`: (MAC, address, incarnation).
    pub fn cached_servers(&self, port: &Port) -> Vec<(Mac, Addr, u32)> {
        self.cache
            .get(port)
            .map(|e| e.servers.iter().map(|s| (s.mac, s.addr, s.inc)).collect())
            .unwrap_or_default()
    }

    /// Forget what the locate cache knows about `port`.
    pub fn forget_port(&mut self, port: &Port) {
        self.cache.remove(port);
    }

    // ------------------------------------------------------------------ internals

    fn done(&mut self, id: u64, result: Result<(Header, Vec<u8>), Status>) {
        self.trans.remove(&id);
        self.events.push_back(Event::TransDone { id: TransId(id), result });
    }

    fn handle(&mut self, now: u64, src: Mac, p: &Packet<'_>) {
        let h = &p.header;
        match h.ptype {
            PacketType::Locate => self.on_locate(src, h),
            PacketType::HereIs => self.on_here_is(now, src, h),
            PacketType::Unidata if h.flags & F_REPLY != 0 => self.on_reply_frag(now, src, p),
            PacketType::Unidata => self.on_request(now, src, p),
            PacketType::NotHere => self.on_not_here(now, src, h),
            PacketType::Ack if h.flags & F_REPLY != 0 => self.on_reply_ack(now, h),
            PacketType::Ack => self.on_request_ack(now, src, p),
            PacketType::Enquiry => self.on_request(now, src, p),
        }
    }

    // ---------------------------------------------------------------- server side

    fn on_locate(&mut self, src: Mac, h: &FlipHeader) {
        let Some(port) = h.dst.as_port() else { return };
        if !h.src.is_node() || !self.registered.contains_key(&port) {
            return;
        }
        self.out.control(src, PacketType::HereIs, 0, Addr::port(port), h.src_inc, h.msg_id, &[]);
    }

    /// Find (or make) the state of client `addr`; `None` = ignore the packet.
    fn client_state(&mut self, now: u64, addr: Addr, inc: u32, mac: Mac) -> bool {
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
            if self.clients.len() >= self.cfg.max_clients {
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
            self.clients
                .insert(addr, Client { inc, mac, last_active: now, low_water: 0, recs: BTreeMap::new() });
            if self.gc_at.is_none() {
                self.gc_at = Some(now + self.gc_interval());
            }
        }
        let c = self.clients.get_mut(&addr).expect("just inserted");
        c.mac = mac;
        c.last_active = now;
        true
    }

    fn gc_interval(&self) -> u64 {
        (self.cfg.reassembly_timeout.min(self.cfg.client_ttl) / 4).max(1)
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
    fn make_room(c: &mut Client, max: usize, reasm_bytes: &mut usize) -> bool {
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
    fn on_request(&mut self, now: u64, src: Mac, p: &Packet<'_>) {
        let h = &p.header;
        let enquiry = h.ptype == PacketType::Enquiry;
        let Some(port) = h.dst.as_port() else { return };
        if !h.src.is_node() {
            return;
        }
        let first = enquiry || h.frag_off == 0;
        let (client_addr, client_inc, id) = (h.src, h.src_inc, h.msg_id);
        if h.dst_inc != self.out.me.inc {
            if first {
                self.out.control(src, PacketType::NotHere, F_STALE, client_addr, client_inc, id, &[]);
            }
            return;
        }
        if !self.client_state(now, client_addr, client_inc, src) {
            return;
        }
        let registered = self.registered.contains_key(&port);
        let max_recs = self.cfg.max_records_per_client;
        let max_total = REQ_PREFIX + HEADER_LEN + self.cfg.max_buf;
        let rto_initial = self.cfg.rto_initial;
        let c = self.clients.get_mut(&client_addr).expect("client state");
        if id < c.low_water {
            return;
        }
        let out = &mut self.out;
        let not_here = |out: &mut Out| {
            out.control(src, PacketType::NotHere, 0, client_addr, client_inc, id, &[]);
        };
        match c.recs.get_mut(&id) {
            None => {
                if !registered {
                    if Self::make_room(c, max_recs, &mut self.reasm_bytes) {
                        c.recs.insert(id, Rec::Refused);
                    }
                    if first {
                        not_here(out);
                    }
                    return;
                }
                if enquiry {
                    out.control(src, PacketType::Ack, F_NEED_ALL, client_addr, client_inc, id, &[]);
                    return;
                }
                let total = h.total_len as usize;
                if total > max_total
                    || total < REQ_PREFIX + HEADER_LEN
                    || self.reasm_bytes + total > self.cfg.max_reassembly_bytes
                    || !Self::make_room(c, max_recs, &mut self.reasm_bytes)
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
                    out.control(
                        src,
                        PacketType::Ack,
                        flags,
                        client_addr,
                        client_inc,
                        id,
                        &encode_ranges(&ranges),
                    );
                    return;
                }
                if r.total() != h.total_len {
                    return;
                }
                r.insert(h.frag_off, p.payload, now);
            }
            Some(Rec::InProgress(_)) => {
                if first {
                    out.control(src, PacketType::Ack, F_WORKING, client_addr, client_inc, id, &[]);
                }
                return;
            }
            Some(Rec::Replied { msg, abort, last_sent }) => {
                // Resend on an enquiry, or on a retransmitted request (not more often
                // than every half initial timeout: duplicates must not cause storms).
                if enquiry || (first && now >= last_sent.saturating_add(rto_initial / 2)) {
                    *last_sent = now;
                    let ranges =
                        if enquiry { parse_ranges(p.payload).unwrap_or_default() } else { Vec::new() };
                    let flags = F_REPLY | if *abort { F_ABORT } else { 0 };
                    let sel = if ranges.is_empty() { None } else { Some(&ranges[..]) };
                    out.message(src, flags, client_addr, client_inc, id, msg, sel);
                    self.stats.replays += 1;
                }
                return;
            }
            Some(Rec::Done) => return,
            Some(Rec::Refused) => {
                if first {
                    not_here(out);
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
        let lw_bytes: [u8; 8] = msg[..REQ_PREFIX].try_into().expect("length checked");
        let low_water = u64::from_be_bytes(lw_bytes).min(id);
        let Ok((header, buf)) = Header::decode_prefix(&msg[REQ_PREFIX..]) else {
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
        self.stats.requests += 1;
        self.events.push_back(Event::RequestArrived {
            req: ReqId(req),
            port,
            header,
            buf: buf.to_vec(),
            client: client_addr,
        });
    }

    fn finish_request(
        &mut self,
        now: u64,
        req: ReqId,
        header: &Header,
        buf: &[u8],
        abort: bool,
    ) -> Result<(), ReplyError> {
        let origin = self.requests.remove(&req.0).ok_or(ReplyError::NoSuchRequest)?;
        match origin {
            Origin::Local { trans } => {
                let ok = matches!(self.trans.get(&trans), Some(t) if matches!(t.state, TState::Local { req: r } if r == req.0));
                if !ok {
                    return Err(ReplyError::NoSuchRequest);
                }
                let result = if abort {
                    Err(Status::from_i32_lossy(header.status))
                } else {
                    Ok((*header, buf.to_vec()))
                };
                self.done(trans, result);
                Ok(())
            }
            Origin::Remote { client, trans } => {
                let Some(c) = self.clients.get_mut(&client) else {
                    return Err(ReplyError::NoSuchRequest);
                };
                let Some(rec) = c.recs.get_mut(&trans) else {
                    return Err(ReplyError::NoSuchRequest);
                };
                if !matches!(rec, Rec::InProgress(r) if *r == req.0) {
                    return Err(ReplyError::NoSuchRequest);
                }
                let mut msg = Vec::with_capacity(HEADER_LEN + buf.len());
                msg.extend_from_slice(&header.encode());
                msg.extend_from_slice(buf);
                let flags = F_REPLY | if abort { F_ABORT } else { 0 };
                self.out.message(c.mac, flags, client, c.inc, trans, &msg, None);
                *rec = Rec::Replied { msg, abort, last_sent: now };
                c.last_active = now;
                Ok(())
            }
        }
    }

    fn on_reply_ack(&mut self, now: u64, h: &FlipHeader) {
        if h.dst != self.out.me.addr || h.dst_inc != self.out.me.inc {
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

    fn gc(&mut self, now: u64) {
        let rt = self.cfg.reassembly_timeout;
        let ttl = self.cfg.client_ttl;
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
        self.gc_at = if self.clients.is_empty() { None } else { Some(now + self.gc_interval()) };
    }

    // ---------------------------------------------------------------- client side

    fn pick_server(&mut self, now: u64, port: Port) -> Option<ServerRef> {
        let ttl = self.cfg.cache_ttl;
        let e = self.cache.get_mut(&port)?;
        if e.servers.is_empty() || now >= e.last_ok.saturating_add(ttl) {
            self.cache.remove(&port);
            return None;
        }
        let i = e.next % e.servers.len();
        e.next = e.next.wrapping_add(1);
        Some(e.servers[i])
    }

    fn send_locate(&mut self, port: Port) {
        self.stats.locates += 1;
        self.out.control(Mac::BROADCAST, PacketType::Locate, 0, Addr::port(port), 0, 0, &[]);
    }

    fn dispatch_trans(&mut self, now: u64, id: u64) {
        let Some(port) = self.trans.get(&id).map(|t| t.port) else {
            return;
        };
        match self.pick_server(now, port) {
            Some(server) => {
                let t = self.trans.get_mut(&id).expect("open");
                t.state = TState::Sent(Sent {
                    server,
                    rto: self.cfg.rto_initial,
                    deadline: now + self.cfg.rto_initial,
                    retries: 0,
                    working: false,
                    reply: None,
                });
                self.out.message(server.mac, 0, Addr::port(port), server.inc, id, &t.msg, None);
            }
            None => {
                self.trans.get_mut(&id).expect("open").state = TState::Locating;
                if !self.locates.contains_key(&port) {
                    self.locates.insert(
                        port,
                        Locating {
                            attempts: 1,
                            next: now + self.cfg.locate_interval,
                            interval: self.cfg.locate_interval,
                        },
                    );
                    self.send_locate(port);
                }
            }
        }
    }

    fn locate_timeout(&mut self, now: u64, port: Port) {
        let Some(l) = self.locates.get_mut(&port) else {
            return;
        };
        if l.attempts >= self.cfg.locate_attempts {
            self.locates.remove(&port);
            let waiting: Vec<u64> = self
                .trans
                .iter()
                .filter(|(_, t)| t.port == port && matches!(t.state, TState::Locating))
                .map(|(k, _)| *k)
                .collect();
            for id in waiting {
                self.done(id, Err(Status::RpcNotFound));
            }
            return;
        }
        l.attempts += 1;
        l.interval = (l.interval * 2).min(self.cfg.rto_max.max(self.cfg.locate_interval));
        l.next = now + l.interval;
        self.send_locate(port);
    }

    fn on_here_is(&mut self, now: u64, src: Mac, h: &FlipHeader) {
        let Some(port) = h.dst.as_port() else { return };
        if h.dst_inc != self.out.me.inc || !h.src.is_node() {
            return;
        }
        let locating = self.locates.contains_key(&port);
        if !locating && !self.cache.contains_key(&port) {
            return;
        }
        let e = self.cache.entry(port).or_insert(CacheEntry { servers: Vec::new(), next: 0, last_ok: now });
        let s = ServerRef { addr: h.src, mac: src, inc: h.src_inc };
        match e.servers.iter_mut().find(|x| x.addr == h.src) {
            Some(x) => {
                if h.src_inc >= x.inc {
                    *x = s;
                }
            }
            None => {
                if e.servers.len() < MAX_SERVERS_PER_PORT {
                    e.servers.push(s);
                }
            }
        }
        e.last_ok = now;
        if self.locates.remove(&port).is_some() {
            let waiting: Vec<u64> = self
                .trans
                .iter()
                .filter(|(_, t)| t.port == port && matches!(t.state, TState::Locating))
                .map(|(k, _)| *k)
                .collect();
            for id in waiting {
                self.dispatch_trans(now, id);
            }
        }
    }

    /// The open transaction `id` if it was sent to `server_addr`.
    fn sent_to(&mut self, id: u64, server_addr: Addr) -> Option<&mut Trans> {
        self.trans
            .get_mut(&id)
            .filter(|t| matches!(&t.state, TState::Sent(s) if s.server.addr == server_addr))
    }

    fn remove_server(&mut self, port: Port, addr: Addr) {
        if let Some(e) = self.cache.get_mut(&port) {
            e.servers.retain(|s| s.addr != addr);
            if e.servers.is_empty() {
                self.cache.remove(&port);
            }
        }
    }

    fn on_not_here(&mut self, now: u64, src: Mac, h: &FlipHeader) {
        if h.dst != self.out.me.addr || h.dst_inc != self.out.me.inc {
            return;
        }
        let max_redirects = self.cfg.max_redirects;
        let Some(t) = self.sent_to(h.msg_id, h.src) else {
            return;
        };
        let TState::Sent(s) = &t.state else { return };
        let server = s.server;
        let port = t.port;
        if h.flags & F_STALE != 0 {
            if h.src_inc == server.inc {
                return;
            }
            if h.src_inc > server.inc
                && let Some(e) = self.cache.get_mut(&port)
            {
                for x in e.servers.iter_mut().filter(|x| x.addr == h.src) {
                    x.inc = x.inc.max(h.src_inc);
                    x.mac = src;
                }
            }
            self.done(h.msg_id, Err(Status::ServerRestarted));
            return;
        }
        if h.src_inc != server.inc {
            return;
        }
        // That server does not serve the port (any more) and did not run the request.
        self.remove_server(port, h.src);
        t_redirect(self, now, h.msg_id, max_redirects);

        fn t_redirect(ep: &mut Endpoint, now: u64, id: u64, max: u32) {
            let t = ep.trans.get_mut(&id).expect("open");
            t.redirects += 1;
            if t.redirects > max {
                ep.done(id, Err(Status::RpcNotFound));
            } else {
                ep.dispatch_trans(now, id);
            }
        }
    }

    fn on_request_ack(&mut self, now: u64, src: Mac, p: &Packet<'_>) {
        let h = &p.header;
        let rto_initial = self.cfg.rto_initial;
        if h.dst != self.out.me.addr || h.dst_inc != self.out.me.inc {
            return;
        }
        let Some(t) = self
            .trans
            .get_mut(&h.msg_id)
            .filter(|t| matches!(&t.state, TState::Sent(s) if s.server.addr == h.src))
        else {
            return;
        };
        let port = t.port;
        let TState::Sent(s) = &mut t.state else {
            return;
        };
        if s.server.inc != h.src_inc || s.reply.is_some() {
            return;
        }
        let server = s.server;
        if h.flags & F_NEED_ALL != 0 {
            s.working = false;
            self.out.message(src, 0, Addr::port(port), server.inc, h.msg_id, &t.msg, None);
        } else if h.flags & F_WORKING != 0 {
            s.heard(now, false, rto_initial);
            s.working = true;
        } else {
            let ranges = parse_ranges(p.payload).unwrap_or_default();
            if ranges.is_empty() {
                return;
            }
            s.heard(now, true, rto_initial);
            self.out.message(src, 0, Addr::port(port), server.inc, h.msg_id, &t.msg, Some(&ranges));
        }
    }

    fn on_reply_frag(&mut self, now: u64, src: Mac, p: &Packet<'_>) {
        let h = &p.header;
        if h.dst != self.out.me.addr || h.dst_inc != self.out.me.inc || !h.src.is_node() {
            return;
        }
        let max_total = HEADER_LEN + self.cfg.max_buf;
        let rto_initial = self.cfg.rto_initial;
        let Some(t) = self.sent_to(h.msg_id, h.src) else {
            // A duplicate of a reply we already have: acknowledge it again.
            if h.msg_id < self.next_trans && h.frag_off == 0 {
                self.out.control(src, PacketType::Ack, F_REPLY, h.src, h.src_inc, h.msg_id, &[]);
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
        let r = s.reply.get_or_insert_with(|| Reassembly::new(h.total_len, now));
        if r.total() != h.total_len {
            return;
        }
        let new_data = r.insert(h.frag_off, p.payload, now);
        let complete = r.is_complete();
        if new_data {
            s.heard(now, true, rto_initial);
        }
        if !complete {
            return;
        }
        let server = s.server;
        let msg = s.reply.take().expect("reply").into_vec();
        self.out.control(server.mac, PacketType::Ack, F_REPLY, server.addr, server.inc, h.msg_id, &[]);
        if let Some(e) = self.cache.get_mut(&port) {
            e.last_ok = now;
        }
        let result = match Header::decode_prefix(&msg) {
            Ok((hdr, _)) if h.flags & F_ABORT != 0 => {
                let st = Status::from_i32_lossy(hdr.status);
                Err(if st.is_ok() { Status::RpcAborted } else { st })
            }
            Ok((hdr, buf)) => Ok((hdr, buf.to_vec())),
            Err(_) => Err(Status::RpcFailure),
        };
        self.done(h.msg_id, result);
    }

    fn trans_timeout(&mut self, now: u64, id: u64) {
        let cfg = &self.cfg;
        let Some(t) = self.trans.get_mut(&id) else {
            return;
        };
        if cfg.max_trans_time.is_some_and(|m| now >= t.started.saturating_add(m)) {
            let st = match &t.state {
                TState::Locating => Status::RpcNotFound,
                TState::Sent(_) => Status::RpcFailure,
                TState::Local { req } => {
                    let req = *req;
                    self.requests.remove(&req);
                    Status::RpcFailure
                }
            };
            self.done(id, Err(st));
            return;
        }
        let port = t.port;
        let TState::Sent(s) = &mut t.state else {
            return;
        };
        if s.deadline > now {
            return;
        }
        // Silence for a whole timeout.
        s.retries += 1;
        if s.retries > cfg.max_retries {
            let addr = s.server.addr;
            self.remove_server(port, addr);
            self.done(id, Err(Status::RpcFailure));
            return;
        }
        s.rto = (s.rto * 2).min(cfg.rto_max);
        s.deadline = now + s.rto;
        self.stats.retransmits += 1;
        let server = s.server;
        let dst = Addr::port(port);
        for _ in 0..cfg.probes_per_timeout.max(1) {
            if let Some(r) = &s.reply {
                let (ranges, more) = r.missing(MAX_RANGES);
                let flags = if more { F_MORE } else { 0 };
                self.out.control(
                    server.mac,
                    PacketType::Enquiry,
                    flags,
                    dst,
                    server.inc,
                    id,
                    &encode_ranges(&ranges),
                );
            } else if t.msg.len() <= MAX_FRAGMENT && !s.working {
                self.out.message(server.mac, 0, dst, server.inc, id, &t.msg, None);
            } else {
                self.out.control(server.mac, PacketType::Enquiry, 0, dst, server.inc, id, &[]);
            }
        }
    }
}
