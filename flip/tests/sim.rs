//! Deterministic simulation of many FLIP endpoints over a seeded, faulty network.
//!
//! Faults: loss, duplication, delay with jitter (reordering), partitions, crash and
//! reboot of nodes (a reboot is a new `Endpoint` with a higher incarnation), and
//! servers moving between nodes. Invariants checked on every run:
//!
//! * a request never runs twice (across retransmissions, duplicates and reboots);
//! * every successful transaction ran exactly once and got its own reply intact;
//! * `RpcNotFound` means the request never ran;
//! * every transaction ends (reply or error) within a time bound;
//! * after the faults stop, locate converges: every client reaches the service
//!   wherever it now runs.
//!
//! In the hostile runs an adversary station joins (issue 21): it taps the wire and
//! records request frames, replays them (verbatim, or from its own MAC) during the
//! run, after the servers forgot the clients by their time-to-live, and after it
//! pushed them out of the servers' memory by flooding them with fake clients; its
//! floods also send large partial requests and requests whose replies it never
//! acknowledges. The servers' budgets are small. On top of the invariants above:
//!
//! The adversary is also an impostor: it answers every LOCATE it sees with a HERE_IS
//! for itself, one of: signed with its own key; the proof of a real server's earlier
//! HERE_IS replayed, under its own address or the server's; or the real server's
//! answer to the locating client's own nonce (it sends the server a LOCATE with that
//! nonce and relays the answer), under either address. On top of that:
//!
//! * no request (nor enquiry) is ever sent to the adversary, and no client caches it;
//! * no request, honest or forged, runs twice;
//! * every server's memory stays within its budgets, after every event;
//! * honest transactions still end, with a reply or a clear status, and after the
//!   adversary stops every client reaches every service.
//!
//! `FLIP_SEEDS=n` runs n seeds of each (default 20,000), `FLIP_SEED=s` replays one
//! seed (in both).

use std::collections::{BTreeMap, HashMap};

use amoeba_abi::{GetPort, Header, LocateKey, Port, Status};
use flip::wire::{
    F_REPLY, FlipHeader, Frame, HereIsProof, LOCATE_NONCE_LEN, MAX_FRAGMENT, Packet, PacketType,
    RequestPrefix, here_is_message,
};
use flip::{Addr, Config, Endpoint, Event, Mac, ReqId, TransId};

use sim_support::EventQueue;
use sim_support::SplitMix64 as Prng;

const MS: u64 = 1000;
const SEC: u64 = 1_000_000;
const CMD: u32 = 4242;

fn mac(i: usize) -> Mac {
    Mac([2, 0, 0, 0, 0, i as u8 + 1])
}

/// The adversary station's own MAC (no node has it: answers to it are lost).
const ADVERSARY_MAC: Mac = Mac([6, 0, 0, 0, 0, 1]);

/// Tags of the adversary's own requests start here (honest tags count from 1).
const FORGED_TAGS: u64 = 1 << 40;

/// With or without the adversary.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Faulty network, honest stations.
    Honest,
    /// The same plus the adversary, and small server budgets.
    Hostile,
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        frame: Vec<u8>,
    },
    Timer {
        node: usize,
    },
    Reply {
        node: usize,
        inc: u32,
        req: ReqId,
        tag: u64,
        sum: u64,
        size: usize,
        abort: bool,
    },
    Start {
        node: usize,
    },
    Crash {
        node: usize,
        down_for: u64,
    },
    Reboot {
        node: usize,
    },
    Move {
        svc: usize,
    },
    Partition {
        until: u64,
    },
    /// The adversary replays one recorded request (from its own MAC if `spoof`).
    Replay {
        spoof: bool,
    },
    /// The adversary floods a server with `clients` fake clients.
    Flood {
        clients: usize,
        big: bool,
    },
}

/// A request message the adversary saw on the wire.
struct Recorded {
    /// The node it went to.
    to: usize,
    /// Who sent it, in which incarnation, as which transaction, how long.
    key: (u64, u32, u64, u32),
    /// Its fragments by offset.
    frames: BTreeMap<u32, Vec<u8>>,
}

/// A hostile station on the wire.
struct Adversary {
    /// Its own random stream (the honest parts of a seed stay as they were).
    rng: Prng,
    /// Recorded request messages.
    recorded: Vec<Recorded>,
    /// Bytes recorded (bounded, so the simulation stays small).
    bytes: usize,
    /// Fake clients made so far.
    fakes: u32,
    /// Forged requests made so far (their tags are `FORGED_TAGS + n`).
    forged: u64,
    /// Its own locate key (of a get-port no service has).
    key: LocateKey,
    /// The last genuine HERE_IS seen for each port: (server address, proof).
    proofs: BTreeMap<Port, (Addr, Vec<u8>)>,
    /// Locating clients whose nonce it sent to a real server: (node, incarnation).
    relay_to: BTreeMap<Port, (usize, u32)>,
    /// HERE_IS answers it sent.
    impostures: u64,
}

impl Adversary {
    const MAX_MESSAGES: usize = 48;
    const MAX_BYTES: usize = 4 << 20;

    /// A frame crossed the wire to node `to`: record it if it is part of a request
    /// or a HERE_IS.
    fn tap(&mut self, to: usize, frame: &[u8]) {
        let Ok(f) = Frame::parse(frame) else { return };
        let h = f.packet.header;
        if h.ptype == PacketType::HereIs
            && f.src != ADVERSARY_MAC
            && let Some(port) = h.dst.as_port()
        {
            self.proofs.insert(port, (h.src, f.packet.payload.to_vec()));
            return;
        }
        if h.ptype != PacketType::Unidata || h.flags & F_REPLY != 0 || f.src == ADVERSARY_MAC {
            return;
        }
        let key = (h.src.0, h.src_inc, h.msg_id, h.total_len);
        let i = match self.recorded.iter().position(|r| r.to == to && r.key == key) {
            Some(i) => i,
            None => {
                if self.bytes + h.total_len as usize > Self::MAX_BYTES {
                    return;
                }
                let fresh = Recorded { to, key, frames: BTreeMap::new() };
                if self.recorded.len() < Self::MAX_MESSAGES {
                    self.recorded.push(fresh);
                    self.recorded.len() - 1
                } else if self.rng.chance(0.2) {
                    // Keep recording later traffic too: replace a random message.
                    let i = self.rng.below(Self::MAX_MESSAGES as u64) as usize;
                    let old = std::mem::replace(&mut self.recorded[i], fresh);
                    self.bytes -= old.frames.values().map(Vec::len).sum::<usize>();
                    i
                } else {
                    return;
                }
            }
        };
        let r = &mut self.recorded[i];
        if let std::collections::btree_map::Entry::Vacant(e) = r.frames.entry(h.frag_off) {
            self.bytes += frame.len();
            e.insert(frame.to_vec());
        }
    }
}

struct Node {
    ep: Endpoint,
    up: bool,
    inc: u32,
    timer: Option<u64>,
    /// Services this node serves (index into `Sim::services`).
    serving: Vec<usize>,
}

struct Pending {
    tag: u64,
    svc: usize,
    start: u64,
    sum: u64,
    reply_size: usize,
}

struct Params {
    /// Stations.
    nodes: usize,
    /// Chance that a frame is lost.
    loss: f64,
    /// Chance that a frame is duplicated.
    dup: f64,
    /// Shortest frame delay (µs).
    delay_lo: u64,
    /// Longest frame delay (µs).
    delay_hi: u64,
    /// Chance per step that a station crashes.
    crash_rate: f64,
    /// Chance per step that a service moves.
    move_rate: f64,
    /// Are partitions made?
    partitions: bool,
    /// Do calls carry large (fragmented) messages?
    big: bool,
    /// Does a service run on several stations at once?
    multi_server: bool,
}

struct Sim {
    /// Honest stations only, or the adversary too.
    mode: Mode,
    /// The hostile station (in [`Mode::Hostile`]).
    adversary: Option<Adversary>,
    /// All randomness of the run: the seed replays it.
    rng: Prng,
    /// Simulated time (µs).
    now: u64,
    /// Event ids by due time (ties in the order put in).
    queue: EventQueue<usize>,
    /// The events themselves, by id.
    evs: HashMap<usize, Ev>,
    /// The next event id.
    next_ev: usize,
    /// The stations.
    nodes: Vec<Node>,
    /// Every endpoint's configuration.
    cfg: Config,
    /// The run's fault and size parameters.
    p: Params,
    /// The services' get-ports.
    services: Vec<GetPort>,
    /// Their put-ports (each costs a key derivation: computed once).
    ports: Vec<Port>,
    /// tag → executions (node, incarnation).
    executions: HashMap<u64, Vec<(usize, u32)>>,
    /// Calls in flight: (node, incarnation, transaction) → what was asked.
    pending: HashMap<(usize, u32, TransId), Pending>,
    /// Tags of calls that ended "not found".
    not_found: Vec<u64>,
    /// The next call's tag (what its request carries).
    next_tag: u64,
    /// Are faults on (loss, duplicates, crashes)? Off in the calm end phase.
    faults: bool,
    /// A partition until `.0`: which nodes are on side A.
    partition: Option<(u64, Vec<bool>)>,
    /// The longest call seen (µs).
    max_duration: u64,
    /// Calls that succeeded.
    ok: u64,
    /// Calls that failed.
    failed: u64,
    /// Results of calls made in the calm phase: (node, service, result).
    calm_results: Vec<(usize, usize, Result<(), Status>)>,
    /// In the calm phase (no faults: every call must succeed).
    calm: bool,
    /// Invariant violations found.
    errors: Vec<String>,
    /// Failed calls, by kind.
    fail_kinds: BTreeMap<&'static str, u64>,
}

impl Sim {
    fn new(seed: u64, mode: Mode) -> Sim {
        let mut rng = Prng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678);
        let nodes = rng.range(3, 7) as usize;
        let p = Params {
            nodes,
            loss: [0.0, 0.01, 0.05, 0.15][rng.below(4) as usize],
            dup: [0.0, 0.02, 0.1][rng.below(3) as usize],
            delay_lo: rng.range(20, 200),
            delay_hi: [300, 2 * MS, 15 * MS][rng.below(3) as usize],
            crash_rate: [0.0, 0.3, 1.0][rng.below(3) as usize],
            move_rate: [0.0, 0.5, 1.0][rng.below(3) as usize],
            partitions: rng.chance(0.3),
            big: rng.chance(0.15),
            multi_server: rng.chance(0.3),
        };
        let cfg = Config {
            rto_initial: 20 * MS,
            rto_max: 200 * MS,
            max_retries: 6,
            locate_interval: 20 * MS,
            locate_attempts: 5,
            probes_per_timeout: 1 + rng.below(2) as u32,
            max_trans_time: None,
            max_buf: 1 << 20,
            max_reassembly_bytes: 4 << 20,
            max_reply_bytes: 8 << 20,
            reassembly_timeout: 2 * SEC,
            client_ttl: 60 * SEC,
            max_clients: 64,
            max_records_per_client: 256,
            max_records: 8192,
            cache_ttl: 60 * SEC,
            max_redirects: 8,
            here_is_per_port: 128,
            here_is_per_station: 8,
            here_is_window: SEC,
        };
        let mut adversary = None;
        let mut cfg = cfg;
        if mode == Mode::Hostile {
            // Drawn from a stream of its own, after the honest draws.
            let mut a = Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xAD5E_0A11);
            cfg.max_clients = a.range(6, 24) as usize;
            cfg.max_records_per_client = a.range(8, 64) as usize;
            cfg.max_records = a.range(32, 256) as usize;
            cfg.max_reassembly_bytes = (1 << 20) + 4096 + a.below(2 << 20) as usize;
            cfg.max_reply_bytes = [32 << 10, 256 << 10, 2 << 20][a.below(3) as usize];
            cfg.client_ttl = a.range(SEC, 3 * SEC);
            adversary = Some(Adversary {
                rng: a,
                recorded: Vec::new(),
                bytes: 0,
                fakes: 0,
                forged: 0,
                key: GetPort(Port([0xad; 6])).locate_key(),
                proofs: BTreeMap::new(),
                relay_to: BTreeMap::new(),
                impostures: 0,
            });
        }
        let mut sim = Sim {
            mode,
            adversary,
            rng,
            now: 0,
            queue: EventQueue::new(),
            evs: HashMap::new(),
            next_ev: 0,
            nodes: Vec::new(),
            cfg,
            p,
            services: Vec::new(),
            ports: Vec::new(),
            executions: HashMap::new(),
            pending: HashMap::new(),
            not_found: Vec::new(),
            next_tag: 1,
            faults: true,
            partition: None,
            max_duration: 0,
            ok: 0,
            failed: 0,
            calm_results: Vec::new(),
            calm: false,
            errors: Vec::new(),
            fail_kinds: BTreeMap::new(),
        };
        for i in 0..sim.p.nodes {
            let inc = 1 + sim.rng.below(3) as u32;
            sim.nodes.push(Node {
                ep: Endpoint::new(mac(i), inc, sim.cfg.clone()),
                up: true,
                inc,
                timer: None,
                serving: Vec::new(),
            });
        }
        // One or two services, each on one node (or two/three with multi_server).
        let nsvc = 1 + sim.rng.below(2) as usize;
        for s in 0..nsvc {
            let mut b = [0u8; 6];
            b[0] = s as u8 + 1;
            b[1..].copy_from_slice(&sim.rng.next_u64().to_be_bytes()[..5]);
            sim.services.push(GetPort(Port(b)));
            sim.ports.push(GetPort(Port(b)).put_port());
            let copies = if sim.p.multi_server { 1 + sim.rng.below(3) as usize } else { 1 };
            for _ in 0..copies {
                let n = sim.rng.below(sim.p.nodes as u64) as usize;
                sim.serve(n, s);
            }
        }
        sim
    }

    fn serve(&mut self, n: usize, s: usize) {
        if !self.nodes[n].serving.contains(&s) {
            self.nodes[n].serving.push(s);
            let g = self.services[s];
            self.nodes[n].ep.register_server(&g);
        }
    }

    fn unserve(&mut self, n: usize, s: usize) {
        if let Some(i) = self.nodes[n].serving.iter().position(|&x| x == s) {
            self.nodes[n].serving.remove(i);
            let g = self.services[s];
            self.nodes[n].ep.unregister_server(&g);
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        let id = self.next_ev;
        self.next_ev += 1;
        self.evs.insert(id, ev);
        self.queue.push(t, id);
    }

    fn err(&mut self, m: String) {
        if self.errors.len() < 10 {
            self.errors.push(format!("t={}us: {m}", self.now));
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some((until, side)) if self.now < *until => side[a] == side[b],
            _ => true,
        }
    }

    /// Move a node's output to the network and its events to the applications.
    fn pump(&mut self, n: usize) {
        while let Some(t) = self.nodes[n].ep.poll_transmit() {
            if !self.nodes[n].up {
                continue;
            }
            if self.adversary.is_some() {
                if t.dst == ADVERSARY_MAC {
                    self.frame_for_adversary(n, &t.frame);
                    continue;
                }
                if t.dst.is_broadcast() {
                    self.impersonate(n, &t.frame);
                }
            }
            let targets: Vec<usize> = if t.dst.is_broadcast() {
                (0..self.p.nodes).filter(|&i| i != n).collect()
            } else {
                (0..self.p.nodes).filter(|&i| mac(i) == t.dst).collect()
            };
            for to in targets {
                if let Some(a) = &mut self.adversary {
                    a.tap(to, &t.frame);
                }
                let copies = if self.faults && self.rng.chance(self.p.dup) { 2 } else { 1 };
                for copy in 0..copies {
                    if self.faults && self.rng.chance(self.p.loss) {
                        continue;
                    }
                    if !self.connected(n, to) {
                        continue;
                    }
                    let mut d = self.rng.range(self.p.delay_lo, self.p.delay_lo.max(self.p.delay_hi));
                    if copy == 1 {
                        // Duplicates may come much later.
                        d += self.rng.below(200 * MS);
                    }
                    let at = self.now + d;
                    self.at(at, Ev::Deliver { to, frame: t.frame.clone() });
                }
            }
        }
        while let Some(ev) = self.nodes[n].ep.poll_event() {
            self.app_event(n, ev);
        }
        if self.mode == Mode::Hostile {
            self.check_memory(n);
        }
        if self.nodes[n].up
            && let Some(d) = self.nodes[n].ep.next_deadline()
        {
            let d = d.max(self.now);
            if self.nodes[n].timer.is_none_or(|t| d < t) {
                self.nodes[n].timer = Some(d);
                self.at(d, Ev::Timer { node: n });
            }
        }
    }

    /// A server's memory stays within its budgets.
    fn check_memory(&mut self, n: usize) {
        let m = self.nodes[n].ep.server_memory();
        let c = &self.cfg;
        if m.clients > c.max_clients
            || m.records > c.max_records
            || m.most_records_per_client > c.max_records_per_client
            || m.reassembly_bytes > c.max_reassembly_bytes
            || m.reply_bytes > c.max_reply_bytes
            || m.forgotten_epoch >= m.epoch
        {
            self.err(format!("node {n} over its budgets: {m:?}"));
        }
    }

    /// Nodes serving `svc`.
    fn servers_of(&self, svc: usize) -> Vec<usize> {
        (0..self.p.nodes).filter(|&i| self.nodes[i].up && self.nodes[i].serving.contains(&svc)).collect()
    }

    /// The adversary puts `frame` on the wire to node `to` (the network delays it but
    /// does not lose it).
    fn inject(&mut self, to: usize, frame: Vec<u8>, after: u64) {
        let d = self.rng.range(self.p.delay_lo, self.p.delay_lo.max(self.p.delay_hi));
        let at = self.now + after + d;
        self.at(at, Ev::Deliver { to, frame });
    }

    /// Node `from` sent the adversary a frame. A request or an enquiry means a client
    /// took it for a server: the locate proof failed. A HERE_IS answers a LOCATE the
    /// adversary sent with a client's nonce: relay it to that client.
    fn frame_for_adversary(&mut self, from: usize, frame: &[u8]) {
        let Ok(f) = Frame::parse(frame) else { return };
        let h = f.packet.header;
        let request =
            (h.ptype == PacketType::Unidata && h.flags & F_REPLY == 0) || h.ptype == PacketType::Enquiry;
        if request {
            self.err(format!("node {from} sent a request to the adversary: {h:?}"));
        }
        let Some(a) = &mut self.adversary else { return };
        let Some(port) = h.dst.as_port().filter(|_| h.ptype == PacketType::HereIs) else { return };
        let Some(&(victim, inc)) = a.relay_to.get(&port) else { return };
        let mut header = h;
        header.dst_inc = inc;
        if a.rng.chance(0.5) {
            header.src = Addr::node(ADVERSARY_MAC);
        }
        let relayed = Frame {
            dst: mac(victim),
            src: ADVERSARY_MAC,
            packet: Packet { header, payload: f.packet.payload },
        };
        self.inject_as_impostor(victim, relayed.encode());
    }

    /// Node `n` broadcast `frame`: if it is a LOCATE, answer it as an impostor.
    fn impersonate(&mut self, n: usize, frame: &[u8]) {
        let Ok(f) = Frame::parse(frame) else { return };
        let h = f.packet.header;
        let (Some(port), Ok(nonce)) = (h.dst.as_port(), <[u8; LOCATE_NONCE_LEN]>::try_from(f.packet.payload))
        else {
            return;
        };
        if h.ptype != PacketType::Locate {
            return;
        }
        let servers: Vec<usize> =
            (0..self.p.nodes).filter(|&i| self.nodes[i].ep.is_registered(&port) && i != n).collect();
        let Some(a) = &mut self.adversary else { return };
        a.impostures += 1;
        let me = Addr::node(ADVERSARY_MAC);
        let epoch = 1 + a.rng.below(4);
        let here_is = |src: Addr, payload: &[u8]| {
            let header = FlipHeader {
                ptype: PacketType::HereIs,
                flags: 0,
                hops: 1,
                dst: Addr::port(port),
                src,
                dst_inc: h.src_inc,
                src_inc: 1,
                msg_id: epoch,
                total_len: payload.len() as u32,
                frag_off: 0,
            };
            Frame { dst: mac(n), src: ADVERSARY_MAC, packet: Packet { header, payload } }.encode()
        };
        let answer = match a.rng.below(4) {
            // Its own key, properly signed for this nonce: the key is not the port's.
            0 => {
                let sig = a.key.sign(&here_is_message(&nonce, port, me, 1, epoch));
                Some(here_is(me, &HereIsProof { public_key: a.key.public_key(), signature: sig }.encode()))
            }
            // A real server's proof from an earlier locate, as itself or as that server.
            1 | 2 => a.proofs.get(&port).map(|(server, proof)| {
                let src = if a.rng.chance(0.5) { me } else { *server };
                here_is(src, proof)
            }),
            // The real server's answer to this very nonce, relayed when it comes.
            _ => {
                a.relay_to.insert(port, (n, h.src_inc));
                let mut ask = h;
                ask.src = me;
                for &s in &servers {
                    let f = Frame {
                        dst: mac(s),
                        src: ADVERSARY_MAC,
                        packet: Packet { header: ask, payload: &nonce },
                    };
                    self.inject_as_impostor(s, f.encode());
                }
                None
            }
        };
        if let Some(frame) = answer {
            self.inject_as_impostor(n, frame);
        }
    }

    /// The impostor puts `frame` on the wire to node `to`, its delay drawn from the
    /// adversary's own stream, so the honest parts of a seed stay as they were.
    fn inject_as_impostor(&mut self, to: usize, frame: Vec<u8>) {
        let Some(a) = &mut self.adversary else { return };
        let d = a.rng.range(self.p.delay_lo, self.p.delay_lo.max(self.p.delay_hi));
        let at = self.now + d;
        self.at(at, Ev::Deliver { to, frame });
    }

    /// Replay one recorded request message.
    fn replay(&mut self, spoof: bool) {
        let Some(a) = &mut self.adversary else { return };
        if a.recorded.is_empty() {
            return;
        }
        let i = a.rng.below(a.recorded.len() as u64) as usize;
        let to = a.recorded[i].to;
        let frames: Vec<Vec<u8>> = a.recorded[i].frames.values().cloned().collect();
        for mut f in frames {
            if spoof {
                f[6..12].copy_from_slice(&ADVERSARY_MAC.0);
            }
            self.inject(to, f, 0);
        }
    }

    /// Replay every recorded request, verbatim and from the adversary's MAC.
    fn replay_all(&mut self) {
        let Some(a) = &self.adversary else { return };
        let all: Vec<(usize, Vec<u8>)> =
            a.recorded.iter().flat_map(|r| r.frames.values().map(move |f| (r.to, f.clone()))).collect();
        for (to, f) in all {
            let mut spoofed = f.clone();
            spoofed[6..12].copy_from_slice(&ADVERSARY_MAC.0);
            self.inject(to, f, 0);
            self.inject(to, spoofed, 100 * MS);
        }
    }

    /// `clients` fake clients each send a server one request: small ones that run
    /// (and whose replies nobody acknowledges), or large ones, often left partial.
    fn flood(&mut self, clients: usize, big: bool) {
        for _ in 0..clients {
            let svc = self.rng.below(self.services.len() as u64) as usize;
            let servers = self.servers_of(svc);
            let Some(a) = &mut self.adversary else { return };
            if servers.is_empty() {
                return;
            }
            let to = servers[a.rng.below(servers.len() as u64) as usize];
            a.fakes += 1;
            a.forged += 1;
            let fake = a.fakes.to_be_bytes();
            let fake_mac = Mac([6, 1, fake[0], fake[1], fake[2], fake[3]]);
            let src_mac = if a.rng.chance(0.5) { ADVERSARY_MAC } else { fake_mac };
            let tag = FORGED_TAGS + a.forged;
            let size = if big { a.rng.range(20_000, 200_000) } else { a.rng.range(16, 2_000) } as usize;
            let reply_size = a.rng.range(0, 40_000);
            // An omniscient adversary: the server's current incarnation and epoch.
            let server = &self.nodes[to];
            let (inc, epoch) = (server.inc, server.ep.server_memory().epoch);
            let mut buf = vec![0u8; size];
            buf[0..8].copy_from_slice(&tag.to_be_bytes());
            buf[8..16].copy_from_slice(&reply_size.to_be_bytes());
            let port = self.ports[svc];
            let header = Header { port, command: CMD, ..Header::default() };
            let mut msg = RequestPrefix { low_water: 1, epoch }.encode().to_vec();
            msg.extend_from_slice(&header.encode());
            msg.extend_from_slice(&buf);
            let partial = big && a.rng.chance(0.7);
            let chunks: Vec<&[u8]> = msg.chunks(MAX_FRAGMENT).collect();
            let keep = if partial { chunks.len() - 1 } else { chunks.len() };
            let mut frames = Vec::new();
            for (k, chunk) in chunks.iter().enumerate().take(keep) {
                let header = FlipHeader {
                    ptype: PacketType::Unidata,
                    flags: 0,
                    hops: 1,
                    dst: Addr::port(port),
                    src: Addr::node(fake_mac),
                    dst_inc: inc,
                    src_inc: 1 + a.rng.below(3) as u32,
                    msg_id: 1,
                    total_len: msg.len() as u32,
                    frag_off: (k * MAX_FRAGMENT) as u32,
                };
                let packet = Packet { header, payload: chunk };
                frames.push(Frame { dst: mac(to), src: src_mac, packet }.encode());
            }
            let after = a.rng.below(50 * MS);
            for f in frames {
                self.inject(to, f, after);
            }
        }
    }

    fn app_event(&mut self, n: usize, ev: Event) {
        match ev {
            Event::RequestArrived { req, port, header, buf, .. } => {
                let Some(s) = self.ports.iter().position(|p| *p == port) else {
                    self.err(format!("request for unknown port {port}"));
                    return;
                };
                if header.command != CMD || buf.len() < 16 {
                    self.err("garbled request".into());
                    return;
                }
                let tag = u64::from_be_bytes(buf[0..8].try_into().unwrap());
                let reply_size = u64::from_be_bytes(buf[8..16].try_into().unwrap()) as usize;
                let inc = self.nodes[n].inc;
                let ex = self.executions.entry(tag).or_default();
                ex.push((n, inc));
                if ex.len() > 1 {
                    let e = format!("request tag {tag} executed twice: {ex:?}");
                    self.err(e);
                }
                let _ = s;
                let sum = checksum(&buf);
                let delay = self.rng.range(0, 30 * MS);
                let abort = !self.calm && self.faults && self.rng.chance(0.02);
                let t = self.now + delay;
                self.at(t, Ev::Reply { node: n, inc, req, tag, sum, size: reply_size, abort });
            }
            Event::TransDone { id, result } => {
                let inc = self.nodes[n].inc;
                let Some(p) = self.pending.remove(&(n, inc, id)) else {
                    self.err(format!("TransDone for unknown trans {id:?} on node {n}"));
                    return;
                };
                let dur = self.now - p.start;
                self.max_duration = self.max_duration.max(dur);
                if dur > 20 * SEC {
                    self.err(format!("trans tag {} took {dur}us", p.tag));
                }
                let execs = self.executions.get(&p.tag).map_or(0, |v| v.len());
                if self.calm {
                    self.calm_results.push((n, p.svc, result.as_ref().map(|_| ()).map_err(|s| *s)));
                }
                match result {
                    Ok((h, buf)) => {
                        self.ok += 1;
                        if execs != 1 {
                            self.err(format!("tag {} succeeded with {execs} executions", p.tag));
                        }
                        if h.status() != Status::Ok || h.command != CMD {
                            self.err(format!("bad reply header {h:?}"));
                        }
                        if buf.len() != p.reply_size.max(16)
                            || buf[0..8] != p.tag.to_be_bytes()
                            || buf[8..16] != p.sum.to_be_bytes()
                            || buf[16..].iter().enumerate().any(|(i, &b)| b != (i as u64 ^ p.tag) as u8)
                        {
                            self.err(format!("tag {} got a wrong reply (len {})", p.tag, buf.len()));
                        }
                        let _ = p.svc;
                    }
                    Err(Status::RpcNotFound) => {
                        self.failed += 1;
                        *self.fail_kinds.entry("not found").or_default() += 1;
                        self.not_found.push(p.tag);
                    }
                    Err(Status::RpcFailure) => {
                        self.failed += 1;
                        *self.fail_kinds.entry("failure").or_default() += 1;
                    }
                    Err(Status::ServerRestarted) => {
                        self.failed += 1;
                        *self.fail_kinds.entry("restarted").or_default() += 1;
                    }
                    // The server had no room to receive it: refused before it ran.
                    Err(Status::NoSpace) => {
                        self.failed += 1;
                        *self.fail_kinds.entry("no room").or_default() += 1;
                        if execs != 0 {
                            self.err(format!("tag {} refused for room with {execs} executions", p.tag));
                        }
                    }
                    Err(s) => {
                        self.failed += 1;
                        *self.fail_kinds.entry("aborted").or_default() += 1;
                        if execs != 1 {
                            self.err(format!("tag {} aborted ({s}) with {execs} executions", p.tag));
                        }
                    }
                }
            }
        }
    }

    /// The replays that matter most: after every server has forgotten its clients'
    /// records by their time-to-live, and again after a flood of fake clients pushed
    /// the clients themselves out of the servers' memory.
    fn replay_after_forgetting(&mut self) {
        let forget = self.cfg.client_ttl + self.cfg.client_ttl.min(self.cfg.reassembly_timeout);
        let until = self.now + forget;
        while self.queue.next_at().is_some_and(|t| t <= until) && self.step() {}
        self.now = self.now.max(until);
        self.replay_all();
        let until = self.now + SEC;
        while self.queue.next_at().is_some_and(|t| t <= until) && self.step() {}
        let clients = 2 * self.cfg.max_clients;
        self.flood(clients, false);
        let until = self.now + SEC;
        while self.queue.next_at().is_some_and(|t| t <= until) && self.step() {}
        self.replay_all();
        let until = self.now + SEC;
        while self.queue.next_at().is_some_and(|t| t <= until) && self.step() {}
    }

    fn start_trans(&mut self, n: usize, svc: usize) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let size = |rng: &mut Prng, big: bool| -> usize {
            match rng.below(100) {
                0..=79 => rng.range(0, 200) as usize,
                80..=96 => rng.range(1000, 20_000) as usize,
                _ if big => rng.range(100_000, 1 << 20) as usize,
                _ => rng.range(20_000, 60_000) as usize,
            }
        };
        let req_size = size(&mut self.rng, self.p.big).max(16);
        let reply_size = size(&mut self.rng, self.p.big);
        let mut buf = vec![0u8; req_size];
        buf[0..8].copy_from_slice(&tag.to_be_bytes());
        buf[8..16].copy_from_slice(&(reply_size as u64).to_be_bytes());
        for (i, b) in buf[16..].iter_mut().enumerate() {
            *b = (i as u64).wrapping_mul(tag) as u8;
        }
        let h = Header { port: self.ports[svc], command: CMD, ..Header::default() };
        let sum = checksum(&buf);
        let id = self.nodes[n].ep.start_trans(self.now, &h, &buf);
        let inc = self.nodes[n].inc;
        self.pending.insert((n, inc, id), Pending { tag, svc, start: self.now, sum, reply_size });
        self.pump(n);
    }

    fn step(&mut self) -> bool {
        let Some((t, id)) = self.queue.pop() else {
            return false;
        };
        self.now = t;
        let ev = self.evs.remove(&id).unwrap();
        match ev {
            Ev::Deliver { to, frame } => {
                if self.nodes[to].up {
                    self.nodes[to].ep.handle_frame(self.now, &frame);
                    self.pump(to);
                }
            }
            Ev::Timer { node } => {
                if self.nodes[node].timer == Some(t) {
                    self.nodes[node].timer = None;
                }
                if self.nodes[node].up {
                    self.nodes[node].ep.handle_timeout(self.now);
                    self.pump(node);
                }
            }
            Ev::Reply { node, inc, req, tag, sum, size, abort } => {
                if self.nodes[node].up && self.nodes[node].inc == inc {
                    let mut buf = vec![0u8; size.max(16)];
                    buf[0..8].copy_from_slice(&tag.to_be_bytes());
                    buf[8..16].copy_from_slice(&sum.to_be_bytes());
                    for (i, b) in buf[16..].iter_mut().enumerate() {
                        *b = (i as u64 ^ tag) as u8;
                    }
                    let h = Header { command: CMD, ..Header::reply(Status::Ok) };
                    let ep = &mut self.nodes[node].ep;
                    let _ = if abort {
                        ep.abort_request(self.now, req, Status::RpcAborted)
                    } else {
                        ep.put_reply(self.now, req, &h, &buf)
                    };
                    self.pump(node);
                }
            }
            Ev::Start { node } => {
                if self.nodes[node].up {
                    let svc = self.rng.below(self.services.len() as u64) as usize;
                    self.start_trans(node, svc);
                }
            }
            Ev::Crash { node, down_for } => {
                if self.nodes[node].up {
                    self.nodes[node].up = false;
                    self.nodes[node].timer = None;
                    // The node's clients are gone with it.
                    let inc = self.nodes[node].inc;
                    self.pending.retain(|k, _| !(k.0 == node && k.1 == inc));
                    let at = self.now + down_for;
                    self.at(at, Ev::Reboot { node });
                }
            }
            Ev::Reboot { node } => {
                let inc = self.nodes[node].inc + 1 + self.rng.below(2) as u32;
                let nd = &mut self.nodes[node];
                nd.inc = inc;
                nd.up = true;
                nd.ep = Endpoint::new(mac(node), inc, self.cfg.clone());
                for s in nd.serving.clone() {
                    nd.ep.register_server(&self.services[s]);
                }
                self.pump(node);
            }
            Ev::Move { svc } => {
                let from: Vec<usize> =
                    (0..self.p.nodes).filter(|&i| self.nodes[i].serving.contains(&svc)).collect();
                let to = self.rng.below(self.p.nodes as u64) as usize;
                if let Some(&f) = from.get(self.rng.below(from.len().max(1) as u64) as usize)
                    && f != to
                {
                    self.unserve(f, svc);
                }
                self.serve(to, svc);
            }
            Ev::Partition { until } => {
                let side = (0..self.p.nodes).map(|_| self.rng.chance(0.5)).collect();
                self.partition = Some((until, side));
            }
            Ev::Replay { spoof } => self.replay(spoof),
            Ev::Flood { clients, big } => self.flood(clients, big),
        }
        true
    }

    fn run(mut self) -> Result<String, Vec<String>> {
        let horizon = 4 * SEC;
        // Client load.
        let ntrans = self.rng.range(20, 60);
        for _ in 0..ntrans {
            let t = self.rng.below(horizon);
            let n = self.rng.below(self.p.nodes as u64) as usize;
            self.at(t, Ev::Start { node: n });
        }
        // Faults.
        for n in 0..self.p.nodes {
            if self.rng.chance(self.p.crash_rate / 2.0) {
                let t = self.rng.below(horizon);
                let down = [0, 5 * MS, 300 * MS, 2 * SEC][self.rng.below(4) as usize];
                self.at(t, Ev::Crash { node: n, down_for: down });
            }
        }
        for s in 0..self.services.len() {
            if self.rng.chance(self.p.move_rate) {
                for _ in 0..self.rng.range(1, 6) {
                    let t = self.rng.below(horizon);
                    self.at(t, Ev::Move { svc: s });
                }
            }
        }
        if self.p.partitions {
            let t = self.rng.below(horizon);
            let len = self.rng.range(10 * MS, SEC);
            self.at(t, Ev::Partition { until: t + len });
        }
        if let Some(a) = &mut self.adversary {
            // During the run: replays of whatever it has recorded so far, and floods.
            let mut plan = Vec::new();
            for _ in 0..a.rng.range(5, 30) {
                plan.push((a.rng.below(horizon), Ev::Replay { spoof: a.rng.chance(0.5) }));
            }
            let most = 2 * self.cfg.max_clients as u64;
            for _ in 0..a.rng.range(1, 4) {
                let clients = a.rng.range(1, most) as usize;
                plan.push((a.rng.below(horizon), Ev::Flood { clients, big: a.rng.chance(0.4) }));
            }
            for (t, ev) in plan {
                self.at(t, ev);
            }
        }
        while self.queue.next_at().is_some_and(|t| t <= horizon) {
            self.step();
        }
        // Let everything in flight finish: no new faults are scheduled after the
        // horizon (reboots still happen).
        let drain_end = horizon + 30 * SEC;
        while !self.pending.is_empty() && self.now < drain_end && self.step() {}
        if !self.pending.is_empty() {
            let tags: Vec<u64> = self.pending.values().map(|p| p.tag).collect();
            self.err(format!("transactions never ended: tags {tags:?}"));
        }
        if self.adversary.is_some() {
            self.replay_after_forgetting();
        }
        // Calm phase: heal everything; every client must reach every service.
        while self.queue.next_at().is_some_and(|t| t <= self.now + 3 * SEC) && self.step() {}
        self.faults = false;
        self.partition = None;
        for n in 0..self.p.nodes {
            if !self.nodes[n].up {
                // Still down (long reboot): bring it up now.
                let inc = self.nodes[n].inc + 1;
                let nd = &mut self.nodes[n];
                nd.inc = inc;
                nd.up = true;
                nd.ep = Endpoint::new(mac(n), inc, self.cfg.clone());
                for s in nd.serving.clone() {
                    nd.ep.register_server(&self.services[s]);
                }
            }
        }
        for s in 0..self.services.len() {
            if !self.nodes.iter().any(|nd| nd.serving.contains(&s)) {
                self.serve(0, s);
            }
        }
        // Each (client, service) pair tries until it succeeds, at most 4 rounds. Only
        // `ServerRestarted` is an allowed failure here: it is the conservative
        // at-most-once answer the first time a client uses a cache entry for a server
        // that rebooted since (one per stale entry).
        self.calm = true;
        let mut todo: Vec<(usize, usize)> =
            (0..self.p.nodes).flat_map(|n| (0..self.services.len()).map(move |s| (n, s))).collect();
        // With the adversary, a client may also meet one refusal per server of a
        // service whose memory of it was pushed out (a stale epoch).
        let rounds = if self.mode == Mode::Hostile { 7 } else { 4 };
        for _round in 0..rounds {
            self.calm_results.clear();
            for &(n, s) in &todo {
                self.start_trans(n, s);
            }
            let end = self.now + 30 * SEC;
            while !self.pending.is_empty() && self.now < end && self.step() {}
            let results = std::mem::take(&mut self.calm_results);
            let mut next = Vec::new();
            for &(n, svc, r) in &results {
                match r {
                    Ok(()) => {}
                    // Also allowed once per round: `NoSpace`, a server whose
                    // budget for partly received requests was still full of the
                    // adversary's fragments (they expire after the reassembly
                    // timeout). Like `ServerRestarted`, it never ran; the pair
                    // must still get through within the rounds.
                    Err(Status::ServerRestarted | Status::NoSpace) => next.push((n, svc)),
                    Err(e) => {
                        let e = format!("calm phase: node {n} got {e} for service {svc}");
                        self.err(e);
                    }
                }
            }
            todo = next;
            if todo.is_empty() {
                break;
            }
        }
        if !todo.is_empty() || !self.pending.is_empty() {
            let e = format!(
                "calm phase: locate did not converge for {todo:?}, {} unfinished",
                self.pending.len()
            );
            self.err(e);
        }
        // Drain and check: requests that "were not found" never ran.
        while self.step() && self.queue.len() < 100_000 {
            if self.now > self.now.saturating_add(0) + 120 * SEC {
                break;
            }
            if self.queue.iter().all(|id| matches!(self.evs[id], Ev::Timer { .. })) {
                break;
            }
        }
        for n in 0..self.p.nodes {
            self.check_memory(n);
        }
        for tag in self.not_found.clone() {
            if self.executions.get(&tag).is_some_and(|v| !v.is_empty()) {
                self.err(format!("tag {tag} reported RpcNotFound but ran"));
            }
        }
        for (tag, ex) in &self.executions {
            if ex.len() > 1 {
                let e = format!("tag {tag} ran {} times", ex.len());
                self.errors.push(e);
            }
        }
        if let Some(a) = &self.adversary {
            let refused: u64 = self.nodes.iter().map(|n| n.ep.stats().here_is_refused).sum();
            if a.impostures >= 10 && refused == 0 {
                let e =
                    format!("the impostor answered {} locates and no client refused a HERE_IS", a.impostures);
                self.errors.push(e);
            }
        }
        if self.errors.is_empty() {
            let mut st = flip::Stats::default();
            for n in &self.nodes {
                let s = n.ep.stats();
                st.retransmits += s.retransmits;
                st.replays += s.replays;
                st.locates += s.locates;
                st.frames_out += s.frames_out;
                st.refused += s.refused;
                st.replies_lost += s.replies_lost;
                st.records_shed += s.records_shed;
                st.clients_forgotten += s.clients_forgotten;
                st.here_is_refused += s.here_is_refused;
            }
            let mut summary = format!(
                "nodes {} ok {} failed {} {:?} max {}ms retransmits {} replays {} locates {} frames {}",
                self.p.nodes,
                self.ok,
                self.failed,
                self.fail_kinds,
                self.max_duration / MS,
                st.retransmits,
                st.replays,
                st.locates,
                st.frames_out,
            );
            if let Some(a) = &self.adversary {
                let forged_runs = self.executions.keys().filter(|&&t| t > FORGED_TAGS).count();
                summary += &format!(
                    "; adversary answered {} locates (clients refused {} HERE_IS), recorded {} messages, \
                     {} forged requests ran; servers refused {} (shed {} records, {} replies, forgot {} clients)",
                    a.impostures,
                    st.here_is_refused,
                    a.recorded.len(),
                    forged_runs,
                    st.refused,
                    st.records_shed,
                    st.replies_lost,
                    st.clients_forgotten,
                );
            }
            Ok(summary)
        } else {
            Err(self.errors)
        }
    }
}

fn run_seed(seed: u64, mode: Mode) -> Result<String, Vec<String>> {
    Sim::new(seed, mode).run()
}

/// Run `FLIP_SEEDS` seeds (default 20,000) in `mode`, or only `FLIP_SEED`.
fn run_seeds(mode: Mode) {
    if let Ok(s) = std::env::var("FLIP_SEED") {
        let seed: u64 = s.parse().expect("FLIP_SEED must be a number");
        match run_seed(seed, mode) {
            Ok(summary) => println!("seed {seed} ({mode:?}): {summary}"),
            Err(e) => panic!("seed {seed} ({mode:?}) failed:\n{}", e.join("\n")),
        }
        return;
    }
    let n: u64 = std::env::var("FLIP_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let test = if mode == Mode::Honest { "simulation_seeds" } else { "adversary_simulation_seeds" };
    let mut failures = Vec::new();
    let started = std::time::Instant::now();
    for seed in 0..n {
        match run_seed(seed, mode) {
            Ok(summary) => {
                if std::env::var("FLIP_VERBOSE").is_ok() {
                    println!("seed {seed}: {summary}");
                }
            }
            Err(e) => {
                eprintln!(
                    "seed {seed} FAILED (replay: FLIP_SEED={seed} cargo test -p flip --test sim {test}):\n  {}",
                    e.join("\n  ")
                );
                failures.push(seed);
            }
        }
    }
    println!("flip simulation ({mode:?}): {n} seeds in {:.1?}, {} failed", started.elapsed(), failures.len());
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

#[test]
fn simulation_seeds() {
    run_seeds(Mode::Honest);
}

#[test]
fn adversary_simulation_seeds() {
    run_seeds(Mode::Hostile);
}

#[test]
fn simulation_is_deterministic() {
    assert_eq!(run_seed(7, Mode::Honest), run_seed(7, Mode::Honest));
    assert_eq!(run_seed(7, Mode::Hostile), run_seed(7, Mode::Hostile));
}
