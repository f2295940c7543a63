//! One replica of the directory service, sans-IO: fed client requests, group
//! deliveries, peer messages, storage completions and time; produces group sends,
//! peer messages, replies and storage operations.
//!
//! # Writes
//! The replica that takes an update broadcasts it; every replica logs it, applies
//! it in the total order once it is durable in its own log, and tells every other
//! member how far it has applied ([`Envelope::Applied`], point to point). The
//! taking replica replies once the update is durable in its log and **stable**:
//! applied by every member that may hold a read lease (below).
//!
//! # Durability
//! Every replica logs an update before it applies it (`durable_before_apply`), so
//! a reply means the update is on disk in the replying replica's log — and in the
//! log of every replica that applied it, which includes every lease holder. No read
//! shows an update that is not on disk at the replica answering. A whole-pool crash
//! therefore loses only updates no client was told about and no read showed; the
//! recovering replica loads the longest log, which holds every acknowledged update
//! because all replicas apply one order. Cost per batch of updates (all that
//! arrived while the previous write was in flight) at each replica: one anchor
//! write (a few blocks, flushed); a Bullet file per `tail_capacity` bytes of
//! records; a checkpoint file per `max_log_files` log files. Update latency is
//! about one broadcast, one anchor write and one peer message.
//!
//! # Reads (linearizable, local in the common case)
//! A replica reads locally while it holds a **lease**: it sends a `Renew` through
//! the group every `renew_us`; when it processes its own `Renew` — so has applied
//! everything ordered before it — it may read until `sent + lease_us` by its clock.
//! Every member notes when it delivered each other member's latest `Renew`, and
//! counts that member as a possible lease holder until `lease_us + lease_margin_us`
//! after that, by its own clock (the delivery came after the send; the margin
//! covers clock rates).
//!
//! Reads are answered from the **visible** state: the latest state restricted to
//! stable updates, so no read shows an update that some lease holder has not yet
//! applied. A read waits until everything applied when it arrived is stable.
//!
//! Why this is linearizable: let update U be acknowledged before a read starts. U
//! was stable at the replier, so every member that could hold a lease from a
//! `Renew` ordered before U had applied U (or that lease had run out). A replica
//! serving a local read holds a lease from some `Renew`: one ordered after U means
//! it applied U before processing it; one ordered before U means it had applied U
//! before the acknowledgement. Either way U is applied when the read arrives, and
//! the read waits until it is visible. Conversely a read only shows stable
//! updates, which every lease holder has applied, so a later read elsewhere sees
//! them too. Without a lease (starting, cut off), a read goes through the group as
//! a barrier: processed at its place in the order, after every update acknowledged
//! before it was sent, then answered under the same visibility rule. A replica that
//! joined late cannot know the leases granted before it joined, so it neither
//! replies to updates nor serves reads until one lease period after catching up.
//!
//! # Catching up
//! A (re)started replica joins the group, asks one member (`StateRequest`, ordered)
//! for its state and collects the snapshot, sent as ordered `Chunk`s, taken exactly
//! at the request's place in the order; it keeps every later delivery and applies
//! them on top. Only then does it answer anything.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use amoeba_abi::{Rng, Status};

use crate::ops::{Query, Reply, Request, Update};
use crate::persist::{PersistConfig, Persister};
use crate::protocol::{CHUNK_OVERHEAD, Envelope};
use crate::state::State;
use crate::store::{Anchor, StoreDone, StoreError, StoreOp};

/// The status a replica gives an update whose outcome it cannot know (it timed
/// out or left the group before the update came back through the order): the
/// update may or may not have been applied, as with a failed RPC.
pub const OUTCOME_UNKNOWN: Status = Status::RpcFailure;

/// The status a replica gives a request it cannot take now (no state yet, no
/// majority, or a read whose barrier did not come through): nothing was done; ask
/// again, here or at another replica.
pub const NOT_SERVING: Status = Status::RpcTryAgain;

/// How one replica behaves.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// How many replicas the service has (a replica serves only while the group
    /// holds a majority of them).
    pub replicas: u8,
    /// This replica's index (0..replicas): which anchor it writes.
    pub index: u8,
    /// Read lease length, from sending a `Renew` (µs).
    pub lease_us: u64,
    /// Extra wait before another member counts a lease as expired (µs): covers
    /// the difference of clock rates over one lease.
    pub lease_margin_us: u64,
    /// Interval between `Renew`s (µs); well below `lease_us`.
    pub renew_us: u64,
    /// Interval between repeated `Applied` messages, which make up for lost ones (µs).
    pub confirm_repeat_us: u64,
    /// A catching-up replica asks again (another member) after this long without
    /// progress (µs); also how long a read waits for its barrier.
    pub state_retry_us: u64,
    /// An update not back through the order after this long is answered with
    /// [`OUTCOME_UNKNOWN`] (µs).
    pub write_timeout_us: u64,
    /// Largest group message (the group's `max_message_size`).
    pub max_message_len: usize,
    /// `true`: apply an update only once it is in this replica's log, so no read
    /// ever shows an update a whole-pool crash could lose. `false`: apply at once and
    /// log in the background (replies still wait for the log).
    pub durable_before_apply: bool,
    /// Storage layout.
    pub persist: PersistConfig,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            replicas: 3,
            index: 0,
            lease_us: 1_000_000,
            lease_margin_us: 125_000,
            renew_us: 250_000,
            confirm_repeat_us: 50_000,
            state_retry_us: 1_000_000,
            write_timeout_us: 5_000_000,
            max_message_len: 8192,
            durable_before_apply: true,
            persist: PersistConfig::default(),
        }
    }
}

impl ReplicaConfig {
    fn lease_wait(&self) -> u64 {
        self.lease_us + self.lease_margin_us
    }
    fn quorum(&self) -> usize {
        self.replicas as usize / 2 + 1
    }
}

/// What the group layer reports, in the order it delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupInput {
    /// This replica is in the group as `member_id`; `members` is the membership then.
    Joined {
        /// Our member id.
        member_id: u32,
        /// Every member (including us).
        members: Vec<u32>,
    },
    /// An ordered message.
    Message {
        /// Sending member.
        sender: u32,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// A member joined.
    MemberJoined {
        /// Its id.
        member: u32,
    },
    /// A member left or was removed.
    MemberLeft {
        /// Its id.
        member: u32,
    },
    /// A reset removed these members.
    Reset {
        /// Removed members.
        removed: Vec<u32>,
    },
    /// This replica left or was expelled: it will never deliver again.
    Gone,
}

/// What the replica wants done. `H` is the program's handle for a client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<H> {
    /// Send to the group (`send_to_group`; retry later if the group is busy).
    Group(Vec<u8>),
    /// Send to one member (best effort; loss is made up for).
    Peer {
        /// The member.
        member: u32,
        /// The bytes (an encoded [`Envelope`]).
        bytes: Vec<u8>,
    },
    /// Answer a client.
    Reply {
        /// The request's handle.
        handle: H,
        /// The answer.
        result: Result<Reply, Status>,
    },
    /// Carry out a storage operation and report with [`Replica::on_store_done`].
    Store {
        /// Its id.
        id: u64,
        /// The operation.
        op: StoreOp,
    },
}

/// How a replica starts.
///
/// At pool start the first replica finds no group: it calls
/// [`crate::store::recover`] (every replica's anchor) and creates the group with
/// the state found, or with `State::new(port, super_check)` if nothing was ever
/// stored. Every other start joins the existing group and reads only its own
/// anchor ([`crate::store::read_anchor`]), to pass as `previous` to
/// [`Replica::new`]. Only one replica may create the group: two groups on one port
/// would each serve their own order.
#[derive(Clone, Debug)]
pub enum Start {
    /// It creates the group with this state (recovered, or new) and serves it.
    Create(State),
    /// It joins an existing group and catches up by state transfer.
    Join,
}

/// Where this replica's own updates spent their time, summed over the updates it
/// answered (µs by its clock): what an update costs, part by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpdateTimings {
    /// Updates taken from clients and answered after they were applied.
    pub count: u64,
    /// From the request to its delivery in the order (the broadcast).
    pub ordering_us: u64,
    /// From delivery to being applied (the log write it waits for, and the
    /// updates before it).
    pub logging_us: u64,
    /// From applied to the answer (every possible lease holder's confirmation
    /// that it has applied the update too).
    pub confirming_us: u64,
}

/// A delivered entry waiting for its turn.
#[derive(Debug)]
enum Step {
    /// `at`: when it was delivered.
    Update {
        sender: u32,
        req: u64,
        update: Update,
        at: u64,
    },
    Renew {
        sender: u32,
        nonce: u64,
    },
    Barrier {
        sender: u32,
        nonce: u64,
    },
    StateRequest {
        sender: u32,
        target: u32,
        nonce: u64,
    },
}

#[derive(Debug)]
struct Catch {
    nonce: u64,
    target: Option<u32>,
    /// Last progress (request sent or chunk received).
    since: u64,
    /// Our request has come through the order: later deliveries are kept.
    fixed: bool,
    chunks: BTreeMap<u32, Vec<u8>>,
}

#[derive(Debug)]
enum Phase {
    /// Not yet in the group; `Some` carries the state to serve once in.
    Joining(Option<State>),
    Catching(Catch),
    Serving,
    Gone,
}

#[derive(Debug)]
struct PendingAck<H> {
    pos: u64,
    handle: H,
    result: Result<Reply, Status>,
    /// When the request came, was delivered in the order, and was applied.
    requested: u64,
    delivered: u64,
    applied: u64,
}

/// One replica of the directory service.
#[derive(Debug)]
pub struct Replica<H> {
    /// Its configuration (index, timings, persistence, lease lengths).
    cfg: ReplicaConfig,
    /// Joining, catching up, serving, or gone.
    phase: Phase,
    /// Every update applied so far (valid when serving).
    latest: State,
    /// `latest` without the updates that are not yet stable: what reads see.
    visible: State,
    /// Updates in `latest` but not yet in `visible`, oldest first.
    unstable: VecDeque<Update>,
    /// Its member id in the group, once it joined.
    me: Option<u32>,
    /// The group's members as last told.
    members: BTreeSet<u32>,
    /// Where new directories' check values come from.
    rng: Rng,
    /// Its log and checkpoints: which records are written, which durable.
    persister: Persister,
    /// Delivered steps (updates, renewals, barriers) not yet processed, in
    /// the group's order: an update waits here until it may be applied.
    pipeline: VecDeque<Step>,
    /// Position of the last update delivered (logged).
    queued_pos: u64,
    /// The request number its next own update is sent with.
    next_number: u64,
    /// Our updates sent to the group, not yet back: number → (handle, sent at).
    writes: BTreeMap<u64, (H, u64)>,
    /// Our updates applied, whose answers wait until they are stable (and
    /// durable, where the configuration asks it).
    acks: Vec<PendingAck<H>>,
    /// Reads that may be answered once `visible` reaches the position.
    reads: Vec<(u64, H, Query)>,
    /// Reads that have no lease yet to go by, for the next barrier.
    unsent_reads: Vec<(H, Query)>,
    /// Barriers in the order: nonce → (sent at, reads).
    barriers: BTreeMap<u64, (u64, Vec<(H, Query)>)>,
    /// How far each member has told us it applied.
    confirmed: BTreeMap<u32, u64>,
    /// When we delivered each member's latest `Renew`.
    renews_seen: BTreeMap<u32, u64>,
    /// Our `Renew`s in flight: nonce → sent at.
    my_renews: BTreeMap<u64, u64>,
    /// Until when its read lease holds (µs, its clock): reads are answered
    /// locally while it does.
    lease_until: u64,
    /// When it next renews its lease.
    next_renew: u64,
    /// When it next tells the others how far it applied.
    next_confirm: u64,
    /// When `latest` last advanced: confirmations are repeated for a lease
    /// period after that, which covers every wait they can end.
    last_applied_at: u64,
    /// Until then we may not know every lease holder (we joined late).
    blackout_until: u64,
    /// Where its own updates spent their time, for the benches.
    timings: UpdateTimings,
    /// What it asks of the program around it (sends, stores, replies), in order.
    out: VecDeque<Output<H>>,
    /// The clock as last given (µs).
    now: u64,
}

impl<H> Replica<H> {
    /// A replica. `previous` is this replica's own anchor from an earlier life (its
    /// files are destroyed once a new checkpoint is durable); `seed` seeds the
    /// generator of new directories' check values.
    pub fn new(cfg: ReplicaConfig, start: Start, previous: Option<Anchor>, seed: [u8; 32]) -> Replica<H> {
        let persister = Persister::new(cfg.persist.clone(), cfg.index, previous);
        let (phase, latest) = match start {
            Start::Create(state) => (Phase::Joining(Some(state.clone())), state),
            Start::Join => {
                (Phase::Joining(None), State::new(amoeba_abi::Port::NULL, amoeba_abi::Check::default()))
            }
        };
        Replica {
            cfg,
            phase,
            visible: latest.clone(),
            queued_pos: latest.applied,
            latest,
            unstable: VecDeque::new(),
            me: None,
            members: BTreeSet::new(),
            rng: Rng::from_seed(seed),
            persister,
            pipeline: VecDeque::new(),
            next_number: 1,
            writes: BTreeMap::new(),
            acks: Vec::new(),
            reads: Vec::new(),
            unsent_reads: Vec::new(),
            barriers: BTreeMap::new(),
            confirmed: BTreeMap::new(),
            renews_seen: BTreeMap::new(),
            my_renews: BTreeMap::new(),
            lease_until: 0,
            next_renew: 0,
            next_confirm: 0,
            last_applied_at: 0,
            blackout_until: 0,
            timings: UpdateTimings::default(),
            out: VecDeque::new(),
            now: 0,
        }
    }

    /// Every update applied so far (meaningful once [`Replica::is_serving`]).
    pub fn state(&self) -> &State {
        &self.latest
    }

    /// What reads see.
    pub fn visible_state(&self) -> &State {
        &self.visible
    }

    /// Has this replica a state (created, or caught up)?
    pub fn has_state(&self) -> bool {
        matches!(self.phase, Phase::Serving)
    }

    /// Does it answer clients now (has a state, and the group a majority)?
    pub fn is_serving(&self) -> bool {
        self.has_state() && self.members.len() >= self.cfg.quorum()
    }

    /// Has it left the group for good?
    pub fn is_gone(&self) -> bool {
        matches!(self.phase, Phase::Gone)
    }

    /// Our member id.
    pub fn member_id(&self) -> Option<u32> {
        self.me
    }

    /// Position up to which this replica's log is on disk.
    pub fn durable_position(&self) -> Option<u64> {
        self.persister.durable_end()
    }

    /// Nothing waiting: no delivered entry unprocessed, no request unanswered, no
    /// storage work pending.
    pub fn is_idle(&self) -> bool {
        self.pipeline.is_empty()
            && self.writes.is_empty()
            && self.acks.is_empty()
            && self.reads.is_empty()
            && self.unsent_reads.is_empty()
            && self.barriers.is_empty()
            && self.persister.is_idle()
    }

    /// Where this replica's own updates spent their time so far.
    pub fn update_timings(&self) -> UpdateTimings {
        self.timings
    }

    /// Does it hold a read lease now?
    pub fn has_lease(&self) -> bool {
        self.lease_until > self.now
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output<H>> {
        if !self.unsent_reads.is_empty() {
            // The barrier goes out after every read it covers has arrived.
            let nonce = self.number();
            let reads = core::mem::take(&mut self.unsent_reads);
            self.barriers.insert(nonce, (self.now, reads));
            self.out.push_back(Output::Group(Envelope::Barrier { nonce }.encode()));
        }
        self.out.pop_front()
    }

    fn number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    fn reply(&mut self, handle: H, result: Result<Reply, Status>) {
        self.out.push_back(Output::Reply { handle, result });
    }

    fn group(&mut self, env: &Envelope) {
        self.out.push_back(Output::Group(env.encode()));
    }

    // ------------------------------------------------------------------ clients

    /// A client request with the program's `handle` for the reply.
    pub fn on_request(&mut self, now: u64, handle: H, request: Request) {
        self.now = self.now.max(now);
        if !self.is_serving() {
            self.reply(handle, Err(NOT_SERVING));
            return;
        }
        match request {
            Request::Query(q) => self.on_query(handle, q),
            Request::Update(u) => self.on_update(handle, u),
        }
        self.settle();
    }

    fn on_query(&mut self, handle: H, query: Query) {
        if self.has_lease() {
            self.reads.push((self.latest.applied, handle, query));
        } else {
            self.unsent_reads.push((handle, query));
        }
    }

    fn on_update(&mut self, handle: H, mut update: Update) {
        if let Update::Create { check, .. } = &mut update {
            *check = self.rng.check();
        }
        let req = self.number();
        let bytes = Envelope::Update { req, update }.encode();
        if bytes.len() > self.cfg.max_message_len {
            self.reply(handle, Err(Status::ArgBad));
            return;
        }
        self.writes.insert(req, (handle, self.now));
        self.out.push_back(Output::Group(bytes));
    }

    // ------------------------------------------------------------------ group

    /// What the group delivered, in order.
    pub fn on_group(&mut self, now: u64, input: GroupInput) {
        self.now = self.now.max(now);
        match input {
            GroupInput::Joined { member_id, members } => self.on_joined(member_id, members),
            GroupInput::Message { sender, payload } => self.on_message(sender, &payload),
            GroupInput::MemberJoined { member } => {
                self.members.insert(member);
            }
            GroupInput::MemberLeft { member } => self.member_gone(member),
            GroupInput::Reset { removed } => removed.into_iter().for_each(|m| self.member_gone(m)),
            GroupInput::Gone => self.leave(),
        }
        self.settle();
    }

    fn on_joined(&mut self, member_id: u32, members: Vec<u32>) {
        self.me = Some(member_id);
        self.members = members.into_iter().collect();
        self.members.insert(member_id);
        match core::mem::replace(&mut self.phase, Phase::Gone) {
            Phase::Joining(Some(_)) => {
                self.phase = Phase::Serving;
                self.persister.request_checkpoint();
            }
            Phase::Joining(None) => {
                self.phase = Phase::Catching(Catch {
                    nonce: 0,
                    target: None,
                    since: 0,
                    fixed: false,
                    chunks: BTreeMap::new(),
                });
                self.ask_for_state();
            }
            other => self.phase = other,
        }
    }

    fn member_gone(&mut self, member: u32) {
        self.members.remove(&member);
        // Its lease (renews_seen) is kept: it may still read until it runs out.
        if let Phase::Catching(c) = &mut self.phase
            && c.target == Some(member)
        {
            c.since = 0; // ask someone else at the next tick
        }
    }

    fn leave(&mut self) {
        self.phase = Phase::Gone;
        self.lease_until = 0;
        for (handle, _) in core::mem::take(&mut self.writes).into_values() {
            self.reply(handle, Err(OUTCOME_UNKNOWN));
        }
        let reads: Vec<_> = self.barriers.values_mut().flat_map(|(_, r)| core::mem::take(r)).collect();
        self.barriers.clear();
        for (handle, _) in reads.into_iter().chain(core::mem::take(&mut self.unsent_reads)) {
            self.reply(handle, Err(NOT_SERVING));
        }
    }

    fn on_message(&mut self, sender: u32, payload: &[u8]) {
        let Ok(env) = Envelope::decode(payload) else { return };
        match env {
            // Through the group, the sender is known (the group checks it):
            // a member speaks for itself only.
            Envelope::Applied { from, pos } if from == sender => self.on_applied(from, pos),
            Envelope::Applied { .. } => {}
            Envelope::Chunk { to, nonce, index, total, bytes } => {
                if Some(to) == self.me {
                    self.on_chunk(nonce, index, total, bytes);
                }
            }
            Envelope::Renew { nonce, applied } => {
                self.renews_seen.insert(sender, self.now);
                self.on_applied(sender, applied);
                self.enqueue(Step::Renew { sender, nonce });
            }
            Envelope::Update { req, update } => {
                self.enqueue(Step::Update { sender, req, update, at: self.now })
            }
            Envelope::Barrier { nonce } => self.enqueue(Step::Barrier { sender, nonce }),
            Envelope::StateRequest { nonce, target } => {
                if let Phase::Catching(c) = &mut self.phase
                    && Some(sender) == self.me
                    && c.nonce == nonce
                {
                    c.fixed = true;
                    c.since = self.now;
                }
                self.enqueue(Step::StateRequest { sender, target, nonce });
            }
        }
    }

    /// Keep a delivered entry for processing in order (dropped while we have no
    /// state and our state request has not come through yet).
    fn enqueue(&mut self, step: Step) {
        match &self.phase {
            Phase::Serving => {
                if let Step::Update { update, .. } = &step {
                    self.queued_pos += 1;
                    self.persister.log(self.queued_pos, update);
                }
                self.pipeline.push_back(step);
            }
            Phase::Catching(c) if c.fixed => self.pipeline.push_back(step),
            _ => {}
        }
    }

    /// A point-to-point message from another replica.
    pub fn on_peer(&mut self, now: u64, bytes: &[u8]) {
        self.now = self.now.max(now);
        if let Ok(Envelope::Applied { from, pos }) = Envelope::decode(bytes) {
            self.on_applied(from, pos);
            self.settle();
        }
    }

    /// Member `from` says it applied up to `pos`. Point to point, what proves
    /// the sender is the replica capability the call carried; a claim for
    /// anyone but a current member (or for ourselves) is dropped, which also
    /// keeps `confirmed` to the members.
    fn on_applied(&mut self, from: u32, pos: u64) {
        if Some(from) == self.me || !self.members.contains(&from) {
            return;
        }
        let c = self.confirmed.entry(from).or_insert(0);
        *c = (*c).max(pos);
    }

    // ------------------------------------------------------------------ catching up

    fn ask_for_state(&mut self) {
        let nonce = self.number();
        let me = self.me;
        let Phase::Catching(c) = &mut self.phase else { return };
        let others: Vec<u32> = self.members.iter().copied().filter(|m| Some(*m) != me).collect();
        let next =
            others.iter().copied().find(|m| c.target.is_none_or(|t| *m > t)).or(others.first().copied());
        *c = Catch { nonce, target: next, since: self.now, fixed: false, chunks: BTreeMap::new() };
        self.pipeline.clear();
        if let Some(target) = next {
            self.group(&Envelope::StateRequest { nonce, target });
        }
    }

    fn on_chunk(&mut self, nonce: u64, index: u32, total: u32, bytes: Vec<u8>) {
        let Phase::Catching(c) = &mut self.phase else { return };
        if c.nonce != nonce || !c.fixed {
            return;
        }
        c.since = self.now;
        c.chunks.insert(index, bytes);
        if c.chunks.len() < total as usize || c.chunks.keys().any(|k| *k >= total) {
            return;
        }
        let snapshot: Vec<u8> = core::mem::take(&mut c.chunks).into_values().flatten().collect();
        match State::decode(&snapshot) {
            Ok(state) => self.install(state),
            Err(_) => self.ask_for_state(),
        }
    }

    fn install(&mut self, state: State) {
        self.phase = Phase::Serving;
        self.queued_pos = state.applied;
        self.visible = state.clone();
        self.latest = state;
        self.unstable.clear();
        for step in &self.pipeline {
            if let Step::Update { update, .. } = step {
                self.queued_pos += 1;
                self.persister.log(self.queued_pos, update);
            }
        }
        self.persister.request_checkpoint();
        self.blackout_until = self.now + self.cfg.lease_wait();
    }

    fn send_snapshot(&mut self, to: u32, nonce: u64) {
        let bytes = self.latest.encode();
        let room = self.cfg.max_message_len.saturating_sub(CHUNK_OVERHEAD).max(1);
        let total = bytes.len().div_ceil(room).max(1) as u32;
        for (index, part) in bytes.chunks(room).enumerate() {
            let env = Envelope::Chunk { to, nonce, index: index as u32, total, bytes: part.to_vec() };
            self.group(&env);
        }
    }

    // ------------------------------------------------------------------ processing

    /// Apply what may be applied, answer what may be answered, start storage work.
    fn settle(&mut self) {
        let applied_before = self.latest.applied;
        self.process();
        if self.latest.applied > applied_before {
            self.last_applied_at = self.now;
            self.confirm_all();
        }
        self.advance_visible();
        self.answer_reads();
        self.answer_acks();
        if self.has_state() {
            // Before that, `latest` is only a placeholder: nothing to keep.
            self.persister.pump(self.now, &self.latest);
        }
        while let Some((id, op)) = self.persister.poll_op() {
            self.out.push_back(Output::Store { id, op });
        }
    }

    fn process(&mut self) {
        if !matches!(self.phase, Phase::Serving) {
            return;
        }
        while let Some(step) = self.pipeline.front() {
            let durable = self.persister.durable_end().unwrap_or(0);
            if matches!(step, Step::Update { .. })
                && self.cfg.durable_before_apply
                && durable <= self.latest.applied
            {
                break;
            }
            let step = self.pipeline.pop_front().expect("front exists");
            self.process_step(step);
        }
    }

    fn process_step(&mut self, step: Step) {
        match step {
            Step::Update { sender, req, update, at } => {
                let result = self.latest.apply(&update);
                self.unstable.push_back(update);
                if Some(sender) == self.me
                    && let Some((handle, requested)) = self.writes.remove(&req)
                {
                    let (pos, applied) = (self.latest.applied, self.now);
                    self.acks.push(PendingAck { pos, handle, result, requested, delivered: at, applied });
                }
            }
            Step::Renew { sender, nonce } => {
                if Some(sender) == self.me
                    && let Some(sent) = self.my_renews.remove(&nonce)
                {
                    self.lease_until = self.lease_until.max(sent + self.cfg.lease_us);
                    self.my_renews.retain(|n, _| *n > nonce);
                }
            }
            Step::Barrier { sender, nonce } => {
                if Some(sender) == self.me
                    && let Some((_, reads)) = self.barriers.remove(&nonce)
                {
                    let pos = self.latest.applied;
                    self.reads.extend(reads.into_iter().map(|(h, q)| (pos, h, q)));
                }
            }
            Step::StateRequest { sender, target, nonce } => {
                if Some(target) == self.me {
                    self.send_snapshot(sender, nonce);
                }
            }
        }
    }

    /// The highest position every possible lease holder has applied.
    fn stable(&self) -> u64 {
        if self.now < self.blackout_until {
            return self.visible.applied;
        }
        let wait = self.cfg.lease_wait();
        self.renews_seen
            .iter()
            .filter(|(m, seen)| Some(**m) != self.me && **seen + wait > self.now)
            .map(|(m, _)| self.confirmed.get(m).copied().unwrap_or(0))
            .fold(self.latest.applied, u64::min)
    }

    fn advance_visible(&mut self) {
        let stable = self.stable();
        while self.visible.applied < stable {
            let Some(update) = self.unstable.pop_front() else { break };
            let _ = self.visible.apply(&update);
        }
    }

    fn answer_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let visible = self.visible.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            core::mem::take(&mut self.reads).into_iter().partition(|r| r.0 <= visible);
        self.reads = waiting;
        for (_, handle, query) in ready {
            let result = self.visible.query(&query);
            self.reply(handle, result);
        }
    }

    fn answer_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let durable = self.persister.durable_end().unwrap_or(0);
        let visible = self.visible.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            core::mem::take(&mut self.acks).into_iter().partition(|a| a.pos <= visible && a.pos <= durable);
        self.acks = waiting;
        for a in ready {
            let t = &mut self.timings;
            t.count += 1;
            t.ordering_us += a.delivered.saturating_sub(a.requested);
            t.logging_us += a.applied.saturating_sub(a.delivered);
            t.confirming_us += self.now.saturating_sub(a.applied);
            self.reply(a.handle, a.result);
        }
    }

    fn confirm_all(&mut self) {
        let (Some(me), Phase::Serving) = (self.me, &self.phase) else { return };
        let bytes = Envelope::Applied { from: me, pos: self.latest.applied }.encode();
        for m in self.members.iter().copied().filter(|m| *m != me) {
            self.out.push_back(Output::Peer { member: m, bytes: bytes.clone() });
        }
        self.next_confirm = self.now + self.cfg.confirm_repeat_us;
    }

    // ------------------------------------------------------------------ storage and time

    /// The outcome of storage operation `id`.
    pub fn on_store_done(&mut self, now: u64, id: u64, result: Result<StoreDone, StoreError>) {
        self.now = self.now.max(now);
        self.persister.done(self.now, id, result);
        self.settle();
    }

    /// Time passes: renew the lease, repeat confirmations, retry, time out.
    pub fn on_tick(&mut self, now: u64) {
        self.now = self.now.max(now);
        if self.is_serving() && self.now >= self.next_renew {
            let nonce = self.number();
            self.my_renews.insert(nonce, self.now);
            self.group(&Envelope::Renew { nonce, applied: self.latest.applied });
            self.next_renew = self.now + self.cfg.renew_us;
        }
        if self.now >= self.next_confirm {
            if self.now < self.last_applied_at + self.cfg.lease_wait() {
                self.confirm_all();
            }
            self.next_confirm = self.now + self.cfg.confirm_repeat_us;
        }
        if let Phase::Catching(c) = &self.phase
            && self.now >= c.since + self.cfg.state_retry_us
        {
            self.ask_for_state();
        }
        self.expire();
        self.settle();
    }

    /// Give up on writes and barrier reads that took too long.
    fn expire(&mut self) {
        let now = self.now;
        let late_writes: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, (_, t))| now >= t + self.cfg.write_timeout_us)
            .map(|(k, _)| *k)
            .collect();
        for k in late_writes {
            if let Some((handle, _)) = self.writes.remove(&k) {
                self.reply(handle, Err(OUTCOME_UNKNOWN));
            }
        }
        let late: Vec<u64> = self
            .barriers
            .iter()
            .filter(|(_, (t, _))| now >= t + self.cfg.state_retry_us)
            .map(|(k, _)| *k)
            .collect();
        for k in late {
            if let Some((_, reads)) = self.barriers.remove(&k) {
                reads.into_iter().for_each(|(h, _)| self.reply(h, Err(NOT_SERVING)));
            }
        }
        self.my_renews.retain(|_, sent| *sent + self.cfg.lease_us > now);
    }

    /// When [`Replica::on_tick`] should run next.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d = self.persister.next_deadline();
        let mut at = |t: u64| d = Some(d.map_or(t, |x: u64| x.min(t)));
        match &self.phase {
            Phase::Serving if self.now < self.last_applied_at + self.cfg.lease_wait() => {
                at(self.next_confirm)
            }
            Phase::Catching(c) => at(c.since + self.cfg.state_retry_us),
            _ => {}
        }
        if self.is_serving() {
            at(self.next_renew);
        }
        if (!self.acks.is_empty() || !self.reads.is_empty()) && self.blackout_until > self.now {
            at(self.blackout_until);
        }
        if !self.acks.is_empty() || !self.reads.is_empty() {
            let wait = self.cfg.lease_wait();
            self.renews_seen.values().filter(|t| **t + wait > self.now).for_each(|t| at(t + wait));
        }
        self.writes.values().for_each(|(_, t)| at(t + self.cfg.write_timeout_us));
        self.barriers.values().for_each(|(t, _)| at(t + self.cfg.state_retry_us));
        d
    }
}
