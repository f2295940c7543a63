//! Deterministic simulation of the replicated directory service: three replicas,
//! each a `sequencer::GroupMember` plus a `Replica`, on a seeded lossy network
//! that duplicates and reorders; a shared simulated disk (Bullet files and anchor
//! halves) that survives crashes and tears anchor writes in flight; clients that
//! call random replicas and record every call for the linearizability checker.

#![allow(dead_code)]

use sim_support::EventQueue;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use amoeba_abi::{Capability, Check, Port, Rights, Status};
use directory_server::store::{self, read_anchor};
use directory_server::{
    AnchorSlot, GroupInput, Lookup, NOT_SERVING, OUTCOME_UNKNOWN, Output, Query, Replica, ReplicaConfig,
    Reply, Request, Start, State, Store, StoreError, StoreOp, Update,
};
use sequencer::{Config, Dest, Event, GroupError, GroupMember, SendError};

use directory_server::checker::lin::Call;
use directory_server::workload::{In, MASKS, NAMES, Out, note_name, row_masks as masks, value_cap};

pub const MS: u64 = 1000;
const GROUP_PORT: u64 = 0x0000_d1d1_0000_0001;
const GROUP_SECRET: Check = Check([0x5e, 0xc2, 0xe7, 1, 2, 3]);
const SERVICE_PORT: Port = Port([0xd1, 0x4e, 0xc7, 0, 0, 1]);
const SUPER: Check = Check([7, 7, 7, 1, 2, 3]);
const BULLET_PORT: Port = Port([0xb0, 0x11, 0xe7, 0, 0, 9]);
/// How long a client waits for a reply before counting the call as unanswered.
const CLIENT_TIMEOUT: u64 = 1200 * MS;
/// How long the RPC layer takes to report that a server is gone.
const RPC_FAILURE_DETECTION: u64 = 50 * MS;
/// When the clients start calling (the replicas have joined by then).
pub const CLIENTS_START: u64 = 120 * MS;

/// The simulations' seeded generator.
pub use sim_support::SplitMix64 as Rng;

#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub loss: f64,
    pub dup: f64,
    pub delay: u64,
    pub jitter: u64,
}

/// Attempts recovery makes at each read (as the program does, fewer).
pub const RECOVERY_ATTEMPTS: u32 = 8;

/// Reads that fail for a while, as a busy or restarting file server's and a
/// failing disk's do: each read fails with `chance`, until `budget` failures
/// were injected (fewer than recovery's attempts, so a retrying reader always
/// gets through; one that skips a failed read does not).
#[derive(Clone, Debug)]
pub struct ReadFaults {
    pub rng: Rng,
    pub chance: f64,
    pub budget: u32,
    /// Failures injected so far.
    pub injected: u32,
}

impl ReadFaults {
    fn fail(&mut self) -> bool {
        if self.injected < self.budget && self.rng.chance(self.chance) {
            self.injected += 1;
            return true;
        }
        false
    }
}

/// The shared disk: Bullet files and anchor halves.
#[derive(Default, Clone)]
pub struct Disk {
    pub files: BTreeMap<u32, Vec<u8>>,
    pub anchors: BTreeMap<AnchorSlot, Vec<u8>>,
    /// Bytes of one anchor half (0: no limit).
    pub anchor_len: usize,
    /// Reads of files and anchors fail transiently while this is set.
    pub read_faults: Option<ReadFaults>,
    next: u32,
}

impl Disk {
    fn cap(object: u32) -> Capability {
        Capability::owner(BULLET_PORT, object, Check([object as u8, 1, 2, 3, 4, 5]))
    }
    fn create(&mut self, bytes: &[u8]) -> Capability {
        self.next += 1;
        self.files.insert(self.next, bytes.to_vec());
        Disk::cap(self.next)
    }
}

impl Store for Disk {
    fn put_file(&mut self, bytes: &[u8]) -> Result<Capability, StoreError> {
        Ok(self.create(bytes))
    }
    fn get_file(&mut self, cap: &Capability) -> Result<Vec<u8>, StoreError> {
        if self.read_faults.as_mut().is_some_and(ReadFaults::fail) {
            return Err(StoreError::Failed);
        }
        if cap.port != BULLET_PORT || *cap != Disk::cap(cap.object) {
            return Err(StoreError::NotFound);
        }
        self.files.get(&cap.object).cloned().ok_or(StoreError::NotFound)
    }
    fn destroy_file(&mut self, cap: &Capability) -> Result<(), StoreError> {
        self.files.remove(&cap.object).map(|_| ()).ok_or(StoreError::NotFound)
    }
    fn read_anchor(&mut self, slot: AnchorSlot) -> Result<Option<Vec<u8>>, StoreError> {
        if self.read_faults.as_mut().is_some_and(ReadFaults::fail) {
            return Err(StoreError::Failed);
        }
        Ok(self.anchors.get(&slot).cloned())
    }
    fn write_anchor(&mut self, slot: AnchorSlot, bytes: &[u8]) -> Result<(), StoreError> {
        assert!(self.anchor_len == 0 || bytes.len() <= self.anchor_len, "anchor of {} bytes", bytes.len());
        self.anchors.insert(slot, bytes.to_vec());
        Ok(())
    }
}

/// A reply handle: (client, call number).
type Handle = (usize, u64);

enum Ev {
    Packet { to: usize, from: u64, bytes: Vec<u8> },
    Peer { to: usize, member: u32, bytes: Vec<u8> },
    Request { to: usize, handle: Handle, req: Request },
    Reply { handle: Handle, result: Result<Reply, Status> },
    StoreDone { node: usize, life: u32, id: u64, op: StoreOp },
    Restart { node: usize },
}

pub struct Node {
    pub addr: u64,
    pub life: u32,
    pub up: bool,
    pub member: Option<GroupMember>,
    pub replica: Option<Replica<Handle>>,
    outbox: VecDeque<Vec<u8>>,
    /// Storage operations in flight (torn or lost by a crash).
    pub in_flight: BTreeMap<u64, StoreOp>,
    /// Files created since this node's last anchor write (which names them).
    unanchored: Vec<u32>,
    /// The node's clock runs at (1 + drift / 1e6) times real time.
    drift_ppm: i64,
}

impl Node {
    fn clock(&self, now: u64) -> u64 {
        (now as i128 + now as i128 * self.drift_ppm as i128 / 1_000_000) as u64
    }
}

pub struct Client {
    pub busy: Option<(u64, usize, u64)>,
    pub next_at: u64,
    /// The client starts no call after this.
    pub until: u64,
    pub next_value: u32,
}

pub struct Sim {
    /// Simulated time (µs).
    pub now: u64,
    /// All randomness of the run: the seed replays it.
    pub rng: Rng,
    /// The group members' configuration.
    pub gcfg: Config,
    /// The replicas' configuration.
    pub rcfg: ReplicaConfig,
    /// The fault model.
    pub faults: Faults,
    /// Replica `.0` is cut off from the others (not from clients) until `.1`.
    pub partition: Option<(usize, u64)>,
    /// Range of a storage operation's duration (µs).
    pub disk_latency: (u64, u64),
    /// The replicas' stations.
    pub nodes: Vec<Node>,
    /// The one shared disk (anchors and files).
    pub disk: Disk,
    /// Files a crash left unnamed: created, but the anchor naming them never
    /// written (the file server's ageing removes such files).
    pub orphans: BTreeSet<u32>,
    /// The clients.
    pub clients: Vec<Client>,
    /// Every client call and its outcome, for the linearizability check.
    pub history: Vec<Call<In, Out>>,
    /// Calls a replica refused (not serving): they had no effect.
    pub refused: BTreeSet<usize>,
    /// The directories the clients use: root and sub.
    pub dirs: [Capability; 2],
    /// Timed events, by due time.
    events: EventQueue<Ev>,
    /// Member id → node, as the group assigned them.
    members: BTreeMap<u32, usize>,
    /// Print what happens.
    pub trace: bool,
    /// Crashes the sequencer's limitations do not allow right now are skipped.
    pub crashes_done: u32,
    /// Partitions made so far.
    pub partitions_done: u32,
    /// Steps taken without time advancing (a livelock guard).
    stuck: u32,
}

/// The initial state: a root directory with `sub` in it.
pub fn initial_state() -> (State, [Capability; 2]) {
    let mut s = State::new(SERVICE_PORT, SUPER);
    let sup = s.super_capability();
    let cols = vec!["owner".to_string(), "group".to_string(), "other".to_string()];
    let mk = |s: &mut State, k: u8| match s.apply(&Update::Create {
        server: sup,
        columns: cols.clone(),
        check: Check([k; 6]),
    }) {
        Ok(Reply::Capability(c)) => c,
        other => panic!("setup: {other:?}"),
    };
    let root = mk(&mut s, 0x11);
    let sub = mk(&mut s, 0x22);
    let masks = vec![Rights(0xff), Rights(0x0f), Rights(0x02)];
    s.apply(&Update::Append { dir: root, name: "sub".into(), caps: vec![sub], masks }).expect("setup");
    (s, [root, sub])
}

impl Sim {
    pub fn new(
        seed: u64,
        gcfg: Config,
        rcfg: ReplicaConfig,
        faults: Faults,
        clients: usize,
        until: u64,
    ) -> Sim {
        let mut rng = Rng(seed ^ 0xd1d1_0000_5eed);
        let nodes = (0..3)
            .map(|i| Node {
                addr: 0x2000 + i as u64 * 31,
                life: 0,
                up: false,
                member: None,
                replica: None,
                outbox: VecDeque::new(),
                in_flight: BTreeMap::new(),
                unanchored: Vec::new(),
                drift_ppm: rng.range(0, 2000) as i64 - 1000,
            })
            .collect();
        let (_, dirs) = initial_state();
        let clients = (0..clients)
            .map(|c| Client {
                busy: None,
                next_at: CLIENTS_START,
                until,
                next_value: (c as u32 + 1) * 100_000,
            })
            .collect();
        Sim {
            now: 0,
            rng,
            gcfg,
            rcfg,
            faults,
            partition: None,
            disk_latency: (100, 3000),
            nodes,
            disk: Disk::default(),
            orphans: BTreeSet::new(),
            clients,
            history: Vec::new(),
            refused: BTreeSet::new(),
            dirs,
            events: EventQueue::new(),
            members: BTreeMap::new(),
            trace: std::env::var("DIR_TRACE").is_ok(),
            crashes_done: 0,
            partitions_done: 0,
            stuck: 0,
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.events.push(at, ev);
    }

    fn net_delay(&mut self) -> u64 {
        self.faults.delay + self.rng.below(self.faults.jitter + 1)
    }

    fn seed32(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        for c in s.chunks_mut(8) {
            c.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        s
    }

    fn replica_cfg(&self, i: usize) -> ReplicaConfig {
        ReplicaConfig { index: i as u8, ..self.rcfg.clone() }
    }

    /// Node `i` creates the group, serving `state`.
    pub fn create(&mut self, i: usize, state: State) {
        let previous = read_anchor(&mut self.disk, i as u8).expect("simulated disk");
        let seed = self.seed32();
        let cfg = self.replica_cfg(i);
        let clock = self.nodes[i].clock(self.now);
        let n = &mut self.nodes[i];
        n.up = true;
        n.replica = Some(Replica::new(cfg, Start::Create(state), previous, seed));
        n.member =
            Some(GroupMember::create_group(self.gcfg.clone(), GROUP_PORT, GROUP_SECRET, n.addr, clock));
        self.pump(i);
    }

    /// Node `i` starts a replica that joins the group.
    pub fn join(&mut self, i: usize) {
        let previous = read_anchor(&mut self.disk, i as u8).expect("simulated disk");
        let seed = self.seed32();
        let cfg = self.replica_cfg(i);
        let clock = self.nodes[i].clock(self.now);
        let cap = Capability::owner(Port::from_u64(GROUP_PORT), 0, GROUP_SECRET);
        let n = &mut self.nodes[i];
        n.up = true;
        n.replica = Some(Replica::new(cfg, Start::Join, previous, seed));
        n.member = Some(GroupMember::join_group(self.gcfg.clone(), &cap, n.addr, clock));
        self.pump(i);
    }

    /// Node `i` crashes: memory gone, storage operations in flight lost or torn.
    pub fn crash(&mut self, i: usize) {
        if self.trace {
            println!("{:>9} CRASH n{i}", self.now);
        }
        let in_flight = std::mem::take(&mut self.nodes[i].in_flight);
        for op in in_flight.into_values() {
            if let StoreOp::WriteAnchor(slot, bytes) = op {
                match self.rng.below(3) {
                    0 => {}
                    1 => {
                        let _ = self.disk.write_anchor(slot, &bytes);
                    }
                    _ => {
                        let cut = self.rng.below(bytes.len() as u64) as usize;
                        let mut torn = bytes[..cut].to_vec();
                        torn.extend(self.disk.anchors.get(&slot).map_or(&[][..], |o| &o[cut.min(o.len())..]));
                        self.disk.anchors.insert(slot, torn);
                    }
                }
            }
        }
        self.orphans.extend(std::mem::take(&mut self.nodes[i].unanchored));
        // Calls this replica may have taken fail: they may or may not have run.
        for c in 0..self.clients.len() {
            if let Some((call, to, _)) = self.clients[c].busy
                && to == i
            {
                let at = self.now + RPC_FAILURE_DETECTION;
                self.schedule(at, Ev::Reply { handle: (c, call), result: Err(OUTCOME_UNKNOWN) });
            }
        }
        let n = &mut self.nodes[i];
        n.up = false;
        n.life += 1;
        n.member = None;
        n.replica = None;
        n.outbox.clear();
        self.members.retain(|_, node| *node != i);
    }

    /// The whole pool stops: besides the crashes, nothing stays on the wire (the
    /// boards and the switch restart), but client calls in flight stay unanswered.
    pub fn silence_network(&mut self) {
        let before = self.events.len();
        self.events.retain(|ev| !matches!(ev, Ev::Packet { .. } | Ev::Peer { .. }));
        if self.trace {
            println!(
                "{:>9} network silenced: {} of {} events dropped",
                self.now,
                before - self.events.len(),
                before
            );
        }
    }

    pub fn restart_later(&mut self, i: usize, after: u64) {
        self.schedule(self.now + after, Ev::Restart { node: i });
    }

    pub fn sequencer(&self) -> Option<usize> {
        self.nodes.iter().position(|n| n.up && n.member.as_ref().is_some_and(|m| m.is_sequencer()))
    }

    /// Everyone up, in the group, with a state; the group's view has all three.
    pub fn all_settled_members(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.up && n.replica.as_ref().is_some_and(|r| r.is_serving())
                && n.member
                    .as_ref()
                    .is_some_and(|m| m.is_member() && !m.is_resetting() && m.get_info().members.len() == 3)
        })
    }

    // ------------------------------------------------------------------ moving things

    /// Move node `i`'s outputs to where they go, feed its group events to its replica.
    fn pump(&mut self, i: usize) {
        for _ in 0..10_000 {
            let mut moved = self.pump_member(i);
            moved |= self.pump_replica(i);
            moved |= self.flush_outbox(i);
            if !moved {
                return;
            }
        }
        panic!("node {i} does not settle");
    }

    fn pump_member(&mut self, i: usize) -> bool {
        let mut moved = false;
        let clock = self.nodes[i].clock(self.now);
        loop {
            let Some(m) = self.nodes[i].member.as_mut() else { return moved };
            let Some(t) = m.poll_transmit() else { break };
            moved = true;
            let from = self.nodes[i].addr;
            let targets: Vec<usize> = match t.dest {
                Dest::Group => (0..self.nodes.len()).filter(|j| *j != i).collect(),
                Dest::Member(a) => self.nodes.iter().position(|n| n.addr == a).into_iter().collect(),
            };
            if std::env::var("DIR_TRACE").is_ok_and(|v| v == "2") {
                let d =
                    sequencer::wire::Packet::decode(&t.bytes).map(|p| format!("{:?} {:?}", p.header, p.body));
                println!(
                    "{:>9} n{i} -> {:?}: {}",
                    self.now,
                    t.dest,
                    d.unwrap_or_default().chars().take(120).collect::<String>()
                );
            }
            for to in targets {
                self.send(i, Ev::Packet { to, from, bytes: t.bytes.clone() });
            }
        }
        loop {
            let Some(m) = self.nodes[i].member.as_mut() else { return moved };
            let Some(e) = m.poll_event() else { break };
            moved = true;
            let members: Vec<u32> = m.get_info().members.iter().map(|(id, _)| *id).collect();
            if self.trace && !matches!(e, Event::Delivered { .. }) {
                println!("{:>9} n{i} event {e:?}", self.now);
            }
            let input = match e {
                Event::Joined { member_id, .. } => {
                    self.members.insert(member_id, i);
                    Some(GroupInput::Joined { member_id, members })
                }
                Event::Delivered { sender, payload, .. } => Some(GroupInput::Message { sender, payload }),
                Event::MemberJoined { member, .. } => Some(GroupInput::MemberJoined { member }),
                Event::MemberLeft { member, .. } => Some(GroupInput::MemberLeft { member }),
                Event::GroupReset { removed, .. } => {
                    Some(GroupInput::Reset { removed: removed.iter().map(|(id, _)| *id).collect() })
                }
                Event::Left | Event::Error(GroupError::Expelled) => Some(GroupInput::Gone),
                Event::Error(GroupError::JoinTimeout | GroupError::JoinDenied) => {
                    // Try again, as the program would.
                    let cap = Capability::owner(Port::from_u64(GROUP_PORT), 0, GROUP_SECRET);
                    let addr = self.nodes[i].addr;
                    self.nodes[i].member =
                        Some(GroupMember::join_group(self.gcfg.clone(), &cap, addr, clock));
                    None
                }
                _ => None,
            };
            if let Some(input) = input {
                if self.trace {
                    println!("{:>9} n{i} group {}", self.now, short_input(&input));
                }
                if let Some(r) = self.nodes[i].replica.as_mut() {
                    r.on_group(clock, input);
                }
            }
        }
        moved
    }

    fn pump_replica(&mut self, i: usize) -> bool {
        let mut moved = false;
        loop {
            let Some(r) = self.nodes[i].replica.as_mut() else { return moved };
            let Some(out) = r.poll_output() else { break };
            moved = true;
            match out {
                Output::Group(bytes) => self.nodes[i].outbox.push_back(bytes),
                Output::Peer { member, bytes } => {
                    if let Some(&to) = self.members.get(&member) {
                        self.send(i, Ev::Peer { to, member, bytes });
                    }
                }
                Output::Reply { handle, result } => {
                    let at = self.now + self.net_delay();
                    self.schedule(at, Ev::Reply { handle, result });
                }
                Output::Store { id, op } => {
                    let (lo, hi) = self.disk_latency;
                    let at = self.now + self.rng.range(lo, hi);
                    self.nodes[i].in_flight.insert(id, op.clone());
                    let life = self.nodes[i].life;
                    self.schedule(at, Ev::StoreDone { node: i, life, id, op });
                }
            }
        }
        if self.nodes[i].replica.as_ref().is_some_and(|r| r.is_gone()) {
            // Expelled: the program starts over, joining again.
            if self.trace {
                println!("{:>9} n{i} replica gone: restart", self.now);
            }
            self.crash(i);
            self.restart_later(i, 50 * MS);
        }
        moved
    }

    fn flush_outbox(&mut self, i: usize) -> bool {
        let clock = self.nodes[i].clock(self.now);
        let mut moved = false;
        let node = &mut self.nodes[i];
        while let Some(bytes) = node.outbox.front() {
            let Some(m) = node.member.as_mut() else { return moved };
            match m.send_to_group(clock, bytes) {
                Ok(_) => {
                    node.outbox.pop_front();
                    moved = true;
                }
                Err(SendError::WouldBlock | SendError::NotMember) => break,
                Err(e) => panic!("send_to_group: {e:?}"),
            }
        }
        moved
    }

    /// Is the link between replicas `a` and `b` cut now?
    fn cut(&self, a: usize, b: usize) -> bool {
        self.partition.is_some_and(|(n, until)| self.now < until && (a == n) != (b == n))
    }

    fn send(&mut self, from: usize, ev: Ev) {
        let f = self.faults;
        let to = match &ev {
            Ev::Packet { to, .. } | Ev::Peer { to, .. } => *to,
            _ => unreachable!("only network messages are sent"),
        };
        if self.rng.chance(f.loss) || self.cut(from, to) {
            return;
        }
        let copies = if self.rng.chance(f.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.net_delay();
            let ev = match &ev {
                Ev::Packet { to, from, bytes } => Ev::Packet { to: *to, from: *from, bytes: bytes.clone() },
                Ev::Peer { to, member, bytes } => Ev::Peer { to: *to, member: *member, bytes: bytes.clone() },
                _ => unreachable!("only network messages are sent"),
            };
            self.schedule(at, ev);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Packet { to, from, bytes } => {
                let clock = self.nodes[to].clock(self.now);
                if std::env::var("DIR_TRACE").is_ok_and(|v| v == "2") {
                    let d = sequencer::wire::Packet::decode(&bytes)
                        .map(|p| format!("{:?} {:?}", p.header, p.body));
                    println!(
                        "{:>9} n{to} <- {from:#x}: {}",
                        self.now,
                        d.unwrap_or_default().chars().take(160).collect::<String>()
                    );
                }
                if let Some(m) = self.nodes[to].member.as_mut() {
                    m.handle_packet(clock, from, &bytes).expect("member sent a malformed packet");
                    self.pump(to);
                }
            }
            Ev::Peer { to, member, bytes } => {
                let clock = self.nodes[to].clock(self.now);
                let mine = self.nodes[to].replica.as_ref().and_then(|r| r.member_id()) == Some(member);
                if let Some(r) = self.nodes[to].replica.as_mut()
                    && mine
                {
                    r.on_peer(clock, &bytes);
                    self.pump(to);
                }
            }
            Ev::Request { to, handle, req } => {
                let clock = self.nodes[to].clock(self.now);
                if let Some(r) = self.nodes[to].replica.as_mut() {
                    r.on_request(clock, handle, req);
                    self.pump(to);
                } else {
                    // Nobody there: the RPC fails without running (as a failed locate).
                    let at = self.now + RPC_FAILURE_DETECTION;
                    self.schedule(at, Ev::Reply { handle, result: Err(NOT_SERVING) });
                }
            }
            Ev::Reply { handle, result } => self.on_reply(handle, result),
            Ev::StoreDone { node, life, id, op } => {
                if self.nodes[node].life != life || !self.nodes[node].up {
                    return;
                }
                self.nodes[node].in_flight.remove(&id);
                let result = op.run(&mut self.disk);
                match (&op, &result) {
                    (StoreOp::PutFile(_), Ok(directory_server::StoreDone::File(c))) => {
                        self.nodes[node].unanchored.push(c.object)
                    }
                    (StoreOp::WriteAnchor(..), Ok(_)) => self.nodes[node].unanchored.clear(),
                    _ => {}
                }
                if self.trace {
                    let what = match &op {
                        StoreOp::PutFile(b) => format!("put {} bytes", b.len()),
                        StoreOp::DestroyFile(c) => format!("destroy {}", c.object),
                        StoreOp::WriteAnchor(slot, b) => format!("anchor {slot:?} {} bytes", b.len()),
                    };
                    println!("{:>9} n{node} store {what} -> {result:?}", self.now);
                }
                let clock = self.nodes[node].clock(self.now);
                if let Some(r) = self.nodes[node].replica.as_mut() {
                    r.on_store_done(clock, id, result);
                    self.pump(node);
                }
            }
            Ev::Restart { node } => {
                if !self.nodes[node].up {
                    if self.trace {
                        println!("{:>9} RESTART n{node}", self.now);
                    }
                    self.join(node);
                }
            }
        }
    }

    /// Advance to the next thing that happens at or before `until`; false if none.
    pub fn step(&mut self, until: u64) -> bool {
        let mut t = self.events.next_at().unwrap_or(u64::MAX);
        for n in &self.nodes {
            if !n.up {
                continue;
            }
            let local_now = n.clock(self.now);
            let deadlines = [
                n.member.as_ref().and_then(|m| m.next_deadline()),
                n.replica.as_ref().and_then(|r| r.next_deadline()),
            ];
            for d in deadlines.into_iter().flatten() {
                // Invert the node's clock; anything not yet due is at least 1 µs away.
                let real = (d as i128 * 1_000_000 / (1_000_000 + n.drift_ppm as i128)) as u64 + 1;
                t = t.min(if d <= local_now { self.now } else { real.max(self.now + 1) });
            }
        }
        for c in &self.clients {
            t = t.min(match c.busy {
                Some((_, _, started)) => started + CLIENT_TIMEOUT,
                None if c.next_at <= c.until => c.next_at,
                None => u64::MAX,
            });
        }
        if t > until {
            self.now = self.now.max(until);
            return false;
        }
        if t <= self.now {
            self.stuck += 1;
            assert!(self.stuck < 100_000, "livelock at t={}: something due never moves", self.now);
        } else {
            self.stuck = 0;
        }
        self.now = self.now.max(t);
        while let Some(ev) = self.events.pop_due(self.now) {
            self.handle(ev);
        }
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let clock = self.nodes[i].clock(self.now);
            if let Some(m) = self.nodes[i].member.as_mut()
                && m.next_deadline().is_some_and(|d| d <= clock)
            {
                m.handle_timeout(clock);
            }
            if let Some(r) = self.nodes[i].replica.as_mut()
                && r.next_deadline().is_some_and(|d| d <= clock)
            {
                r.on_tick(clock);
            }
            self.pump(i);
        }
        self.clients_act();
        true
    }

    pub fn run_until(&mut self, until: u64) {
        while self.step(until) {}
    }

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

    // ------------------------------------------------------------------ clients

    /// The calls to check: everything but the refused ones.
    pub fn checked_history(&self) -> Vec<Call<In, Out>> {
        self.history
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.refused.contains(i))
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// Has every client finished its calls?
    pub fn clients_done(&self) -> bool {
        self.clients.iter().all(|c| c.busy.is_none() && (c.next_at > c.until || self.now > c.until))
    }

    fn clients_act(&mut self) {
        for c in 0..self.clients.len() {
            if let Some((call, _, started)) = self.clients[c].busy
                && self.now >= started + CLIENT_TIMEOUT
            {
                // No answer: the call's outcome is unknown (a read's does not matter).
                self.clients[c].busy = None;
                self.clients[c].next_at = self.now + 1;
                let _ = call;
            }
            let client = &self.clients[c];
            if client.busy.is_none() && client.next_at <= client.until && self.now >= client.next_at {
                self.issue(c);
            }
        }
    }

    fn issue(&mut self, c: usize) {
        let input = self.random_input(c);
        let to = self.rng.below(self.nodes.len() as u64) as usize;
        self.call(c, to, input);
    }

    /// Client `c` sends `input` to node `to` now.
    pub fn call(&mut self, c: usize, to: usize, input: In) {
        let req = self.request_for(&input);
        let call = self.history.len() as u64;
        self.history.push(Call { client: c, invoked: self.now, returned: None, input });
        self.clients[c].busy = Some((call, to, self.now));
        let at = self.now + self.net_delay();
        self.schedule(at, Ev::Request { to, handle: (c, call), req });
    }

    fn random_input(&mut self, c: usize) -> In {
        let d = self.rng.below(2) as usize;
        let n = self.rng.below(NAMES.len() as u64) as usize;
        self.clients[c].next_value += 2;
        let v = self.clients[c].next_value;
        let mut value = {
            let mut k = v - 2;
            move || {
                k += 1;
                k
            }
        };
        match self.rng.below(20) {
            0..=3 => In::Append(d, n, value()),
            4..=5 => In::Delete(d, n),
            6..=7 => {
                let expect = self.latest_value(d, n);
                In::Replace(d, n, expect, value())
            }
            8 => In::Chmod(d, n, self.rng.pick(&MASKS)),
            9 => {
                let n2 = (n + 1) % NAMES.len();
                In::Install(vec![(d, n, value()), (1 - d, n2, value())])
            }
            10..=13 => In::Lookup(d, n),
            14..=15 => In::Walk(n),
            16..=17 => In::List(d),
            _ => In::SetLookup(vec![(d, n), (1 - d, n), (d, (n + 2) % NAMES.len())]),
        }
    }

    /// Some value recently written to (d, n), so that replaces sometimes succeed.
    fn latest_value(&self, d: usize, n: usize) -> u32 {
        self.history
            .iter()
            .rev()
            .find_map(|c| match &c.input {
                In::Append(dd, nn, v) | In::Replace(dd, nn, _, v) if (*dd, *nn) == (d, n) => Some(*v),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn request_for(&self, input: &In) -> Request {
        let [root, sub] = self.dirs;
        let dir = |d: usize| if d == 0 { root } else { sub };
        let name = |n: usize| NAMES[n].to_string();
        let u = Request::Update;
        let q = Request::Query;
        match input {
            In::Append(d, n, v) => u(Update::Append {
                dir: dir(*d),
                name: name(*n),
                caps: vec![value_cap(*v)],
                masks: masks(0xff),
            }),
            // The simulated clients make no notes; in root they would not disturb the model.
            In::Note(v) => u(Update::Append {
                dir: root,
                name: note_name(*v),
                caps: vec![value_cap(*v)],
                masks: masks(0xff),
            }),
            In::Delete(d, n) => u(Update::Delete { dir: dir(*d), name: name(*n) }),
            In::Replace(d, n, e, v) => u(Update::Replace {
                dir: dir(*d),
                name: name(*n),
                expect: vec![value_cap(*e)],
                caps: vec![value_cap(*v)],
            }),
            In::Chmod(d, n, m) => u(Update::Chmod { dir: dir(*d), name: name(*n), masks: masks(*m) }),
            In::Install(entries) => u(Update::Install {
                entries: entries
                    .iter()
                    .map(|(d, n, v)| directory_server::InstallEntry {
                        dir: dir(*d),
                        name: name(*n),
                        caps: vec![value_cap(*v)],
                        masks: masks(0xff),
                        expect: None,
                    })
                    .collect(),
            }),
            In::Lookup(d, n) => q(Query::Lookup { dir: dir(*d), path: name(*n) }),
            In::Walk(n) => q(Query::Lookup { dir: root, path: format!("sub/{}", NAMES[*n]) }),
            In::List(d) => q(Query::List { dir: dir(*d) }),
            In::SetLookup(items) => {
                q(Query::SetLookup { items: items.iter().map(|(d, n)| (dir(*d), name(*n))).collect() })
            }
        }
    }

    fn on_reply(&mut self, handle: Handle, result: Result<Reply, Status>) {
        let (c, call) = handle;
        if self.clients[c].busy.map(|b| b.0) != Some(call) {
            return; // a late or duplicate answer
        }
        self.clients[c].busy = None;
        self.clients[c].next_at = self.now + self.rng.range(0, 20 * MS);
        let entry = &mut self.history[call as usize];
        match result {
            // Not taken, so no effect: the call leaves the history.
            Err(s) if s == NOT_SERVING => {
                self.refused.insert(call as usize);
            }
            Err(s) if s == OUTCOME_UNKNOWN => {}
            r => entry.returned = Some((self.now, to_out(&entry.input, r))),
        }
    }
}

/// What the model calls a real reply.
pub fn to_out(input: &In, r: Result<Reply, Status>) -> Out {
    match (input, r) {
        (_, Ok(Reply::Done)) => Out::Ok,
        (_, Err(Status::Exists)) => Out::Exists,
        (_, Err(Status::NotFound)) => Out::NotFound,
        (In::Replace(..), Err(Status::NotNow)) => Out::Conflict,
        (In::Lookup(..) | In::Walk(_), Ok(Reply::Lookup(Lookup::Found(caps)))) if caps.len() == 1 => {
            Out::Found(caps[0].object, caps[0].rights.0)
        }
        (In::List(_), Ok(Reply::List { rows, .. })) => Out::List(
            rows.iter()
                .filter_map(|(name, masks)| NAMES.iter().position(|n| n == name).map(|i| (i, masks[0].0)))
                .collect(),
        ),
        (In::SetLookup(_), Ok(Reply::SetLookup(items))) => Out::Set(
            items
                .into_iter()
                .map(|i| match i {
                    Ok(caps) if caps.len() == 1 => Some((caps[0].object, caps[0].rights.0)),
                    _ => None,
                })
                .collect(),
        ),
        (_, other) => Out::Other(format!("{other:?}")),
    }
}

fn short_input(i: &GroupInput) -> String {
    match i {
        GroupInput::Message { sender, payload } => {
            format!(
                "msg from {sender}: {:?}",
                directory_server::protocol::Envelope::decode(payload).map(|e| {
                    let s = format!("{e:?}");
                    s.chars().take(80).collect::<String>()
                })
            )
        }
        other => format!("{other:?}"),
    }
}

/// Recover from the disk as a whole-pool restart would (retrying reads that fail
/// transiently, with no pause: simulated time stands still meanwhile).
pub fn recover(disk: &mut Disk) -> Result<State, String> {
    match store::recover(disk, 3, RECOVERY_ATTEMPTS, |_| {}) {
        Ok(Some(r)) if r.skipped.is_empty() => Ok(r.state),
        Ok(Some(r)) => Err(format!("anchors skipped in recovery: {:?}", r.skipped)),
        Ok(None) => Err("nothing stored".into()),
        Err(e) => Err(format!("recovery failed: {e}")),
    }
}
