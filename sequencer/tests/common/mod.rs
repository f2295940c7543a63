//! Deterministic network simulator for `sequencer` group members.
//!
//! One seeded PRNG drives everything: scenario, loss, duplication, delay
//! (hence reordering), partitions, crashes. A run is a pure function of its
//! seed, so a failing seed replays exactly.

#![allow(dead_code)]

use sequencer::auth::{self, Key};
use sequencer::wire::{Ballot, Body, Entry, EntryBody, Header, Item, Packet, View, ViewMember};
use sequencer::{Config, Dest, Event, GroupMember, LeaveReason, SendError};
use sim_support::EventQueue;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

pub const PORT: u64 = 0x0000_1234_5678_9abc;
/// The simulated group's secret check.
pub const SECRET: amoeba_abi::Check = amoeba_abi::Check([0x5e, 0xc2, 0xe7, 0x00, 0x11, 0x22]);

/// The group's owner capability, which the simulated members join with.
pub fn owner_capability() -> amoeba_abi::Capability {
    amoeba_abi::Capability::owner(amoeba_abi::Port::from_u64(PORT), 0, SECRET)
}

/// The simulations' seeded generator.
pub use sim_support::SplitMix64 as Rng;

#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    pub delay_min: u64,
    pub jitter: u64,
}

impl Faults {
    pub fn none() -> Self {
        Faults { loss: 0.0, dup: 0.0, delay_min: 200, jitter: 0 }
    }
}

/// What a delivered entry looked like, for comparing orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sig {
    App(Vec<u8>),
    Join(u32, u64),
    Left(u32, LeaveReason),
    Reset(u32, Vec<(u32, u64)>),
}

#[derive(Clone)]
pub enum Action {
    Send(usize, Vec<u8>),
    Crash(usize),
    CrashSequencer,
    Partition(Vec<usize>),
    Heal,
    Leave(usize),
    LeaveSequencer,
    Join(usize),
    SetFaults(Faults),
    /// The adversary tries one attack.
    Attack(Attack),
}

/// What the adversary station tries. It sees every broadcast and can send
/// anything under any source address, but holds none of the group's keys;
/// the receive-only member it controls holds what such a member holds.
#[derive(Clone, Copy, Debug)]
pub enum Attack {
    /// Data claiming the sequencer, for sequence numbers now and ahead.
    FutureData,
    /// A send claiming a member, with a guessed tag.
    ForgedSend,
    /// Its receive-only member sends anyway, bypassing its library.
    SendWithoutRight,
    /// A recorded join request again, from its joiner's address or its own.
    ReplayJoin,
    /// Any recorded broadcast again, from its sender's address.
    Replay,
    /// Reset traffic claiming the sequencer or a member: decisions,
    /// proposals, votes ("accepted"), promises and "not a member".
    ForgedReset,
}

/// Every attack kind.
pub const ATTACKS: [Attack; 6] = [
    Attack::FutureData,
    Attack::ForgedSend,
    Attack::SendWithoutRight,
    Attack::ReplayJoin,
    Attack::Replay,
    Attack::ForgedReset,
];

/// The adversary's own address: a station that never was a member.
pub const ADVERSARY: u64 = 0xbad0;
/// Every payload the adversary makes starts with this.
pub const FORGED: &[u8] = b"FORGED";

impl std::fmt::Debug for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Send(i, p) => write!(f, "Send(n{i}, {})", short(p)),
            Action::Crash(i) => write!(f, "Crash(n{i})"),
            Action::CrashSequencer => write!(f, "CrashSequencer"),
            Action::Partition(s) => write!(f, "Partition({s:?})"),
            Action::Heal => write!(f, "Heal"),
            Action::Leave(i) => write!(f, "Leave(n{i})"),
            Action::LeaveSequencer => write!(f, "LeaveSequencer"),
            Action::Join(i) => write!(f, "Join(n{i})"),
            Action::SetFaults(x) => write!(f, "{x:?}"),
            Action::Attack(a) => write!(f, "Attack({a:?})"),
        }
    }
}

/// The name part of a test payload.
pub fn short(p: &[u8]) -> String {
    let s = String::from_utf8_lossy(p);
    match s.find(':') {
        Some(i) => format!("{}/{}", &s[..i], p.len()),
        None => format!("{}b", p.len()),
    }
}

pub struct Node {
    pub addr: u64,
    pub m: Option<GroupMember>,
    pub crashed: bool,
    pub expelled: bool,
    pub left: bool,
    pub join_failed: bool,
    pub joined: bool,
    pub first_seq: Option<u64>,
    pub delivered: Vec<(u64, Sig)>,
    pub app_seen: HashSet<Vec<u8>>,
    /// Payloads accepted by send_to_group and not yet delivered back here.
    pub outstanding: VecDeque<Vec<u8>>,
    pub was_member: bool,
    pub member_id: u32,
    pub left_lost: bool,
    /// Removed in the order (as a silent member) but perhaps not told yet.
    pub removed: bool,
}

impl Node {
    pub fn survivor(&self) -> bool {
        self.joined && !self.crashed && !self.expelled && !self.left && !self.removed
    }
    /// Crashed, expelled, or left without the group ever seeing the leave
    /// (e.g. a sequencer that left while cut off): failures for the budget.
    pub fn failed(&self) -> bool {
        self.joined && (self.crashed || self.expelled || self.left_lost || self.removed)
    }
}

struct InFlight {
    to: usize,
    from: u64,
    bytes: Vec<u8>,
    /// Put on the network by the adversary, not by a member.
    injected: bool,
}
pub struct Sim {
    /// Simulated time (µs).
    pub now: u64,
    /// All randomness of the run: the seed replays it.
    pub rng: Rng,
    /// Every member's configuration.
    pub cfg: Config,
    /// The stations.
    pub nodes: Vec<Node>,
    /// Packets on the network, by delivery time.
    in_flight: EventQueue<InFlight>,
    /// Ties between actions due at once go in this order.
    order: u64,
    /// The fault model.
    pub faults: Faults,
    /// Nodes cut off from the rest, while a partition lasts.
    pub partition: Option<BTreeSet<usize>>,
    /// Scheduled actions (sends, crashes, joins), by (time, order).
    actions: BTreeMap<(u64, u64), Action>,
    /// The common order as the last [`Sim::check`] found it: sequence number →
    /// what every member delivered there.
    pub log: BTreeMap<u64, Sig>,
    /// Print what happens.
    pub trace: bool,
    /// Print every packet too.
    pub trace_packets: bool,
    /// Packets sent.
    pub packets: u64,
    /// Steps taken (a livelock guard).
    pub steps: u64,
    /// Station address → node.
    by_addr: HashMap<u64, usize>,
    /// Every broadcast packet put on the network, with its source address:
    /// what any station on the segment sees (the adversary's recordings).
    pub tap: Vec<(u64, Vec<u8>)>,
    /// The node that joins with a capability without the send right (the
    /// adversary's member), if any.
    pub receive_only: Option<usize>,
    /// Attacks tried.
    pub attacks: u64,
}

impl Sim {
    pub fn new(seed: u64, n: usize, cfg: Config) -> Self {
        let nodes = (0..n)
            .map(|i| Node {
                addr: 0x1000 + i as u64 * 17,
                m: None,
                crashed: false,
                expelled: false,
                left: false,
                join_failed: false,
                joined: false,
                first_seq: None,
                delivered: Vec::new(),
                app_seen: HashSet::new(),
                outstanding: VecDeque::new(),
                was_member: false,
                member_id: u32::MAX,
                left_lost: false,
                removed: false,
            })
            .collect::<Vec<_>>();
        let by_addr = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Sim {
            now: 0,
            rng: Rng(seed ^ 0x5eed_0000_0000_0000),
            cfg,
            nodes,
            in_flight: EventQueue::new(),
            order: 0,
            faults: Faults::none(),
            partition: None,
            actions: BTreeMap::new(),
            log: BTreeMap::new(),
            trace: std::env::var("SEQ_TRACE").is_ok(),
            trace_packets: std::env::var("SEQ_TRACE").is_ok_and(|v| v == "2"),
            packets: 0,
            steps: 0,
            by_addr,
            tap: Vec::new(),
            receive_only: None,
            attacks: 0,
        }
    }

    pub fn schedule(&mut self, at: u64, a: Action) {
        self.order += 1;
        self.actions.insert((at, self.order), a);
    }

    /// Node `i` creates the group now.
    pub fn create(&mut self, i: usize) {
        let addr = self.nodes[i].addr;
        self.nodes[i].m = Some(GroupMember::create_group(self.cfg.clone(), PORT, SECRET, addr, self.now));
        self.flush(i);
    }

    pub fn join(&mut self, i: usize) {
        if self.receive_only == Some(i) {
            let capability = owner_capability().restrict(sequencer::RIGHT_RECEIVE).unwrap();
            self.join_with(i, &capability);
        } else {
            self.join_with(i, &owner_capability());
        }
    }

    /// Node `i` joins now, showing `capability`.
    pub fn join_with(&mut self, i: usize, capability: &amoeba_abi::Capability) {
        if self.nodes[i].crashed || self.nodes[i].m.is_some() {
            return;
        }
        let addr = self.nodes[i].addr;
        self.nodes[i].m = Some(GroupMember::join_group(self.cfg.clone(), capability, addr, self.now));
        self.flush(i);
    }

    pub fn sequencer(&self) -> Option<usize> {
        self.nodes.iter().position(|n| !n.crashed && n.m.as_ref().is_some_and(|m| m.is_sequencer()))
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            None => true,
            Some(side) => side.contains(&a) == side.contains(&b),
        }
    }

    fn transmit(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if to == from || !self.reachable(from, to) {
            return;
        }
        let f = self.faults;
        if self.rng.chance(f.loss) {
            return;
        }
        let copies = if self.rng.chance(f.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + f.delay_min + self.rng.below(f.jitter + 1);
            self.in_flight.push(
                at,
                InFlight { to, from: self.nodes[from].addr, bytes: bytes.to_vec(), injected: false },
            );
        }
    }

    /// A packet from a station outside the simulation (an adversary) that
    /// claims source address `from`, reaching node `to` after `delay` µs
    /// (unless the node is down; no loss).
    pub fn inject(&mut self, delay: u64, to: usize, from: u64, bytes: Vec<u8>) {
        self.in_flight.push(self.now + delay, InFlight { to, from, bytes, injected: true });
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> u64 {
        self.nodes[i].addr
    }

    /// Moves node i's output to the network and checks its events.
    pub fn flush(&mut self, i: usize) {
        loop {
            let Some(m) = self.nodes[i].m.as_mut() else {
                return;
            };
            let Some(t) = m.poll_transmit() else { break };
            self.packets += 1;
            match t.dest {
                Dest::Group => {
                    if self.tap.len() < 100_000 {
                        self.tap.push((self.nodes[i].addr, t.bytes.clone()));
                    }
                    for j in 0..self.nodes.len() {
                        self.transmit(i, j, &t.bytes);
                    }
                }
                Dest::Member(a) => {
                    if let Some(&j) = self.by_addr.get(&a) {
                        self.transmit(i, j, &t.bytes);
                    }
                }
            }
        }
        loop {
            let Some(m) = self.nodes[i].m.as_mut() else {
                return;
            };
            let Some(e) = m.poll_event() else { break };
            if self.trace {
                match &e {
                    Event::Delivered { seq, sender, payload } => {
                        println!("{:>9} n{} Delivered {seq} from {sender}: {}", self.now, i, short(payload))
                    }
                    e => println!("{:>9} n{} {:?}", self.now, i, e),
                }
            }
            self.on_event(i, e);
        }
    }

    fn record(&mut self, i: usize, seq: u64, sig: Sig) {
        let now = self.now;
        let n = &mut self.nodes[i];
        let expect = n.first_seq.expect("delivery before join") + n.delivered.len() as u64;
        assert_eq!(seq, expect, "t={now} node {i}: delivered seq {seq}, expected {expect} (gap or repeat)");
        if let Sig::App(p) = &sig {
            assert!(!p.starts_with(FORGED), "t={now} node {i}: delivered a forged message at seq {seq}");
            assert!(n.app_seen.insert(p.clone()), "t={now} node {i}: message {p:?} delivered twice");
            if n.outstanding.front() == Some(p) {
                n.outstanding.pop_front();
            }
        }
        n.delivered.push((seq, sig));
    }

    fn on_event(&mut self, i: usize, e: Event) {
        match e {
            Event::Joined { seq, member_id } => {
                let n = &mut self.nodes[i];
                n.member_id = member_id;
                n.joined = true;
                n.was_member = true;
                n.first_seq = Some(seq + 1);
            }
            Event::Delivered { seq, payload, .. } => self.record(i, seq, Sig::App(payload)),
            Event::MemberJoined { seq, member, addr, .. } => self.record(i, seq, Sig::Join(member, addr)),
            Event::MemberLeft { seq, member, reason, .. } => self.record(i, seq, Sig::Left(member, reason)),
            Event::GroupReset { seq, incarnation, removed } => {
                self.record(i, seq, Sig::Reset(incarnation, removed))
            }
            Event::Left => self.nodes[i].left = true,
            Event::Error(sequencer::GroupError::Expelled) => self.nodes[i].expelled = true,
            Event::Error(sequencer::GroupError::JoinTimeout | sequencer::GroupError::JoinDenied) => {
                self.nodes[i].join_failed = true
            }
            _ => {}
        }
    }

    fn do_action(&mut self, a: Action) {
        if self.trace {
            println!("{:>9} action {:?}", self.now, a);
        }
        match a {
            Action::Send(i, p) => {
                let now = self.now;
                let n = &mut self.nodes[i];
                if n.crashed || n.left || n.expelled || n.join_failed {
                    return;
                }
                let r = match n.m.as_mut() {
                    Some(m) if m.is_member() => m.send_to_group(now, &p),
                    _ => Err(SendError::NotMember),
                };
                match r {
                    Ok(_) => n.outstanding.push_back(p),
                    Err(SendError::WouldBlock) | Err(SendError::NotMember) => {
                        // Not joined yet, or throttled: try again a little later.
                        if now < 20_000_000 {
                            self.schedule(now + 10_000, Action::Send(i, p));
                        }
                    }
                    Err(SendError::TooLarge) => panic!("test payload too large"),
                    Err(SendError::NotPermitted) => {
                        panic!("simulated members join with the owner capability")
                    }
                }
                self.flush(i);
            }
            Action::Crash(i) => {
                // Keep a majority of the group (as the sequencer sees it)
                // alive, or no reset can complete (by design) and liveness
                // cannot be asked for. Joins and removals may be in flight.
                let Some(sq) = self.sequencer() else { return };
                let view = self.nodes[sq].m.as_ref().unwrap().get_info().members;
                let alive = view
                    .iter()
                    .filter(|(_, a)| self.by_addr.get(a).is_some_and(|&j| !self.nodes[j].crashed && j != i))
                    .count();
                if self.nodes[i].crashed || alive * 2 <= view.len() {
                    return;
                }
                self.nodes[i].crashed = true;
                self.nodes[i].m = None;
            }
            Action::CrashSequencer => {
                if let Some(i) = self.sequencer() {
                    self.do_action(Action::Crash(i));
                }
            }
            Action::Partition(side) => self.partition = Some(side.into_iter().collect()),
            Action::Heal => self.partition = None,
            Action::Leave(i) => {
                let now = self.now;
                if let Some(m) = self.nodes[i].m.as_mut() {
                    let _ = m.leave_group(now);
                }
                self.flush(i);
            }
            Action::LeaveSequencer => {
                if let Some(i) = self.sequencer() {
                    self.do_action(Action::Leave(i));
                }
            }
            Action::Join(i) => self.join(i),
            Action::SetFaults(f) => self.faults = f,
            Action::Attack(a) => self.attack(a),
        }
    }

    /// A tag the adversary guesses (it holds no key).
    fn guess(&mut self, from: u64, header: Header, body: Body) -> Vec<u8> {
        let key = if self.rng.chance(0.5) { Key([0; 32]) } else { Key([self.rng.below(256) as u8; 32]) };
        auth::seal(&key, from, &Packet { header, body })
    }

    /// The adversary tries `attack` against the live members.
    pub fn attack(&mut self, attack: Attack) {
        self.attacks += 1;
        let targets: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].m.is_some()).collect();
        if targets.is_empty() {
            return;
        }
        let t = targets[self.rng.below(targets.len() as u64) as usize];
        let info = self.nodes[t].m.as_ref().unwrap().get_info();
        let seq_addr =
            info.members.iter().find(|(id, _)| *id == info.sequencer_id).map_or(ADVERSARY, |m| m.1);
        let seq_header = Header { port: PORT, inc: info.incarnation, src: info.sequencer_id, to: 0 };
        let (victim, victim_addr) = info
            .members
            .get(self.rng.below(info.members.len().max(1) as u64) as usize)
            .copied()
            .unwrap_or((0, 0));
        let forged = |k: u64| {
            let mut p = FORGED.to_vec();
            p.extend_from_slice(format!(":{k}").as_bytes());
            p
        };
        let delay = 50 + self.rng.below(500);
        match attack {
            Attack::FutureData => {
                let seq = info.next_seq + self.rng.below(3 * self.cfg.history_size as u64 + 20);
                let flags = [0, sequencer::wire::FLAG_RETRANS][self.rng.below(2) as usize];
                let item =
                    Item::Entry(Entry { sender: victim, msg_id: 1, body: EntryBody::App(forged(seq)) });
                let body = Body::Data { seq, accepted: seq + 1, stable: 0, flags, items: vec![item] };
                let from = if self.rng.chance(0.7) { seq_addr } else { ADVERSARY };
                let bytes = self.guess(from, seq_header, body);
                self.inject(delay, t, from, bytes);
            }
            Attack::ForgedSend => {
                let body = Body::Send {
                    msg_id: self.rng.below(100) as u32,
                    ack: 0,
                    leave: false,
                    payload: forged(0),
                };
                let h = Header { src: victim, to: seq_addr, ..seq_header };
                let bytes = self.guess(victim_addr, h, body);
                if let Some(&j) = self.by_addr.get(&seq_addr) {
                    self.inject(delay, j, victim_addr, bytes);
                }
            }
            Attack::SendWithoutRight => {
                // The receive-only member holds the group key: it can tag
                // its own packets, only not make the sequencer stamp them.
                let Some(r) = self.receive_only else { return };
                let Some(m) = self.nodes[r].m.as_ref().filter(|m| m.is_member()) else { return };
                let mine = m.get_info();
                let seq_addr =
                    mine.members.iter().find(|(id, _)| *id == mine.sequencer_id).map_or(0, |m| m.1);
                let body = Body::Send {
                    msg_id: 1 + self.rng.below(50) as u32,
                    ack: 0,
                    leave: false,
                    payload: forged(1),
                };
                let h = Header { port: PORT, inc: mine.incarnation, src: mine.member_id, to: seq_addr };
                let from = self.nodes[r].addr;
                let bytes = auth::seal(&auth::group_key(PORT, &SECRET), from, &Packet { header: h, body });
                if let Some(&j) = self.by_addr.get(&seq_addr) {
                    self.inject(delay, j, from, bytes);
                }
            }
            Attack::ReplayJoin => {
                let joins: Vec<(u64, Vec<u8>)> = self
                    .tap
                    .iter()
                    .filter(|(_, b)| Packet::decode(b).is_ok_and(|p| matches!(p.body, Body::JoinReq { .. })))
                    .cloned()
                    .collect();
                if joins.is_empty() {
                    return;
                }
                let (src, bytes) = joins[self.rng.below(joins.len() as u64) as usize].clone();
                let from = if self.rng.chance(0.5) { src } else { ADVERSARY };
                self.inject(delay, t, from, bytes);
            }
            Attack::Replay => {
                if self.tap.is_empty() {
                    return;
                }
                let (from, bytes) = self.tap[self.rng.below(self.tap.len() as u64) as usize].clone();
                self.inject(delay, t, from, bytes);
            }
            Attack::ForgedReset => {
                let base = info.next_seq;
                let ballot = Ballot { round: 1 + self.rng.below(20) as u32, id: victim };
                let view = View {
                    old_inc: info.incarnation,
                    new_inc: info.incarnation.wrapping_add(1),
                    sequencer: victim,
                    min_d: base,
                    floor: base,
                    base,
                    members: vec![ViewMember { id: victim, addr: victim_addr, ack: base, rights: 0xff }],
                    removed: info.members.iter().copied().filter(|&(id, _)| id != victim).collect(),
                };
                let body = match self.rng.below(7) {
                    0 => Body::Decided { view },
                    1 => Body::Accept { ballot, view },
                    2 => Body::Accepted { ballot },
                    3 => Body::Prepare { ballot },
                    4 => Body::Nack { ballot },
                    5 => Body::ResetStatus { recv_upto: base + 100 },
                    _ => Body::NotMember { member: info.member_id },
                };
                let h = Header { src: victim, ..seq_header };
                let bytes = self.guess(victim_addr, h, body);
                self.inject(delay, t, victim_addr, bytes);
            }
        }
    }

    /// Advances to the next event at or before `until`; false if none.
    pub fn step(&mut self, until: u64) -> bool {
        let mut t = u64::MAX;
        if let Some(at) = self.in_flight.next_at() {
            t = t.min(at);
        }
        if let Some((&(at, _), _)) = self.actions.first_key_value() {
            t = t.min(at);
        }
        for n in &self.nodes {
            if let Some(d) = n.m.as_ref().and_then(|m| m.next_deadline()) {
                t = t.min(d);
            }
        }
        if t > until || t == u64::MAX {
            self.now = self.now.max(until);
            return false;
        }
        self.steps += 1;
        if self.steps >= 3_000_000 {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(m) = &n.m
                    && m.next_deadline().is_some_and(|d| d <= self.now)
                {
                    println!("stuck node {i}: {m:#?}");
                }
            }
            panic!("simulation does not advance (livelock) at t={}", self.now);
        }
        self.now = self.now.max(t);
        let now = self.now;
        while let Some((&(at, o), _)) = self.actions.first_key_value() {
            if at > now {
                break;
            }
            let a = self.actions.remove(&(at, o)).unwrap();
            self.do_action(a);
        }
        while let Some(p) = self.in_flight.pop_due(now) {
            let i = p.to;
            if self.trace_packets {
                match sequencer::wire::Packet::decode(&p.bytes) {
                    Ok(d) => {
                        let mut txt = format!("{:?}", d.body);
                        txt.truncate(200);
                        println!(
                            "{:>9} n{} <- {:#x} inc {} src {}: {}",
                            now, i, p.from, d.header.inc, d.header.src, txt
                        );
                    }
                    Err(e) => println!("{:>9} n{} <- {:#x}: undecodable ({e})", now, i, p.from),
                }
            }
            let Some(m) = self.nodes[i].m.as_mut() else {
                continue;
            };
            // Injected packets may be garbage; members' own never are.
            if m.handle_packet(now, p.from, &p.bytes).is_err() && !p.injected {
                panic!("member produced a malformed packet");
            }
            self.flush(i);
        }
        for i in 0..self.nodes.len() {
            let due = self.nodes[i].m.as_ref().and_then(|m| m.next_deadline()).is_some_and(|d| d <= now);
            if due {
                self.nodes[i].m.as_mut().unwrap().handle_timeout(now);
                self.flush(i);
            }
        }
        true
    }

    pub fn run_until(&mut self, until: u64) {
        while self.step(until) {}
    }

    /// Runs until `done` holds (checked after each step) or `until`.
    pub fn run_until_cond(&mut self, until: u64, done: impl Fn(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step(until) {
                return done(self);
            }
        }
    }

    /// The group has settled: every survivor is an active, unblocked member
    /// with nothing left to send; all have delivered the same prefix and
    /// agree on the incarnation, the sequencer and the membership, and that
    /// membership is exactly the survivors (the dead are removed).
    pub fn settled(&self) -> bool {
        let mut agreed = None;
        let mut survivors = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.crashed || n.expelled || n.left || n.join_failed {
                continue;
            }
            let Some(m) = &n.m else { continue };
            if n.joined && self.is_removed(i) {
                continue;
            }
            if !n.joined || !m.is_member() || m.is_resetting() || !n.outstanding.is_empty() {
                return false;
            }
            let info = m.get_info();
            if info.send_queue != 0 || info.expected_seq != info.next_seq {
                return false;
            }
            let state = (info.expected_seq, info.incarnation, info.sequencer_id, info.members.clone());
            if *agreed.get_or_insert_with(|| state.clone()) != state {
                return false;
            }
            survivors.insert((info.member_id, n.addr));
        }
        let Some((_, _, _, members)) = agreed else { return false };
        members.into_iter().collect::<BTreeSet<_>>() == survivors
            && !self.actions.values().any(|a| matches!(a, Action::Send(..) | Action::Join(_)))
    }

    /// Whether a member whose order counts (not crashed, not expelled)
    /// delivered the removal of node `i`. A removal that only members later
    /// cut off delivered was undone by a reset.
    /// (Member ids are reused after a reset: only a removal after the
    /// node's own join counts.)
    pub fn is_removed(&self, i: usize) -> bool {
        let (id, joined_at) = (self.nodes[i].member_id, self.nodes[i].first_seq.unwrap_or(u64::MAX));
        let removal = Sig::Left(id, LeaveReason::Failed);
        id != u32::MAX
            && self
                .nodes
                .iter()
                .filter(|n| !n.crashed && !n.expelled)
                .any(|n| n.delivered.iter().any(|(seq, s)| *seq >= joined_at && *s == removal))
    }

    /// Marks members that left as failed if no survivor delivered their
    /// leave, and members removed in the order as failed.
    pub fn classify_leavers(&mut self) {
        for i in 0..self.nodes.len() {
            self.nodes[i].removed = !self.nodes[i].crashed && self.is_removed(i);
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].left {
                continue;
            }
            let own = self.nodes[i]
                .delivered
                .iter()
                .rev()
                .find(|(_, s)| *s == Sig::Left(self.nodes[i].member_id, LeaveReason::Left))
                .cloned();
            let mut any_survivor = false;
            let mut noticed = false;
            for n in self.nodes.iter().filter(|n| n.survivor()) {
                any_survivor = true;
                if let Some(o) = &own
                    && n.delivered.contains(o)
                {
                    noticed = true;
                }
            }
            self.nodes[i].left_lost = any_survivor && !noticed;
        }
    }

    /// Checks the safety invariants over everything delivered so far.
    /// `strict`: failures stayed within the resilience budget, so failed
    /// members' deliveries must also be in the common order and not lost.
    /// `with_left`: include members that left (call `classify_leavers` first).
    pub fn check(&mut self, strict: bool, with_left: bool) -> Result<(), String> {
        let mut log: BTreeMap<u64, (usize, Sig)> = BTreeMap::new();
        let mut order: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].failed() && (with_left || !self.nodes[i].left))
            .collect();
        if strict {
            order.extend((0..self.nodes.len()).filter(|&i| self.nodes[i].failed()));
        }
        for &i in &order {
            for (seq, sig) in &self.nodes[i].delivered {
                match log.get(seq) {
                    Some((j, s)) if s != sig => {
                        return Err(format!(
                            "order diverges at seq {seq}: node {j} delivered {s:?}, node {i} delivered {sig:?}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        log.insert(*seq, (i, sig.clone()));
                    }
                }
            }
        }
        let mut seen: HashMap<&Vec<u8>, u64> = HashMap::new();
        for (seq, (_, sig)) in &log {
            if let Sig::App(p) = sig
                && let Some(prev) = seen.insert(p, *seq)
            {
                return Err(format!("message {p:?} sequenced twice: {prev} and {seq}"));
            }
        }
        self.log = log.into_iter().map(|(k, (_, s))| (k, s)).collect();
        Ok(())
    }

    /// After settling: nothing delivered anywhere (by a failed member, when
    /// `strict`) is missing at a survivor, and every survivor has the same
    /// prefix from its join on.
    pub fn check_complete(&self, strict: bool) -> Result<(), String> {
        let survivors: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].survivor()).collect();
        let top = survivors.iter().filter_map(|&i| self.nodes[i].delivered.last().map(|d| d.0)).max();
        for &i in &survivors {
            let n = &self.nodes[i];
            let last = n.delivered.last().map(|d| d.0);
            if last != top && !(last.is_none() && n.first_seq.unwrap_or(0) > top.unwrap_or(0)) {
                return Err(format!("survivor {i} delivered up to {last:?}, others up to {top:?}"));
            }
        }
        if strict && !survivors.is_empty() {
            for (i, n) in self.nodes.iter().enumerate() {
                if !n.failed() {
                    continue;
                }
                if let Some((s, _)) = n.delivered.last()
                    && Some(*s) > top
                {
                    return Err(format!(
                        "failed node {i} delivered seq {s}, survivors only up to {top:?}: lost"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn failures(&self) -> usize {
        self.nodes.iter().filter(|n| n.failed()).count()
    }
}

/// A message payload that names its sender and number, padded to `len`.
pub fn payload(node: usize, k: u32, len: usize) -> Vec<u8> {
    let mut p = format!("n{node}m{k}:").into_bytes();
    while p.len() < len {
        p.push(b'a' + (p.len() % 26) as u8);
    }
    p
}

/// Seeds to run: `SEQ_SEED` replays one, `SEQ_SEEDS` sets how many.
pub fn seeds(default: u64, salt: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SEQ_SEED") {
        return vec![s.parse().expect("SEQ_SEED must be a number")];
    }
    let n = std::env::var("SEQ_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..n).map(|i| salt * 1_000_000_000 + i).collect()
}

/// Runs `f` for every seed and prints how the runs ended (by tag); then
/// fails listing every failing seed, each with how to replay it. Returns
/// the count of runs by tag.
pub fn for_seeds(
    name: &str,
    default: u64,
    salt: u64,
    f: impl Fn(u64) -> Result<String, String>,
) -> BTreeMap<String, u64> {
    let seeds = seeds(default, salt);
    let single = seeds.len() == 1;
    let t0 = std::time::Instant::now();
    let mut stats = BTreeMap::<String, u64>::new();
    let mut failed = Vec::new();
    // `SEQ_LIST=tag` lists the seeds whose run ended with that tag.
    let list = std::env::var("SEQ_LIST").ok();
    for seed in seeds.iter().copied() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        let why = match r {
            Ok(Ok(tag)) => {
                if list.as_ref().is_some_and(|l| tag.contains(l.as_str())) {
                    println!("{name} seed {seed}: {tag}");
                }
                if single {
                    println!("{name} seed {seed}: ok ({tag})");
                }
                *stats.entry(tag).or_default() += 1;
                continue;
            }
            Ok(Err(msg)) => msg,
            Err(_) => "panicked (see above)".to_string(),
        };
        eprintln!(
            "{name}: seed {seed} failed: {why}\n  replay: SEQ_SEED={seed} SEQ_TRACE=1 cargo test -p sequencer --test sim -- --nocapture --exact {name}"
        );
        failed.push(seed);
    }
    println!("{name}: {} seeds in {:.1?}: {stats:?}, {} failed", seeds.len(), t0.elapsed(), failed.len());
    assert!(failed.is_empty(), "{name}: failing seeds {failed:?}");
    stats
}
