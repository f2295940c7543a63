//! The group member state machine.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use amoeba::{Capability, Check, Port, Private, Rights, verify};

use crate::{RIGHT_RECEIVE, RIGHT_SEND};

use crate::wire::{
    Ballot, Body, DecodeError, Entry, EntryBody, FLAG_NEED_ACK, FLAG_RETRANS, FLAG_SYNC, GroupParams, Header,
    NO_MEMBER, PORT_MASK, Packet, View, ViewMember, WelcomeMember,
};

/// Most entries sent in answer to one retransmission request.
const RETRANS_BATCH: u64 = 16;
/// Most BB payloads kept while waiting for their accept.
const BB_PENDING_MAX: usize = 64;

/// Configuration of one member. The group parameters (`resilience`,
/// `max_members`, `history_size`, `max_message_size`, `bb_threshold`) are
/// taken from the creator; a joiner's values are replaced by the group's.
#[derive(Clone, Debug)]
pub struct Config {
    /// Resilience degree r: an entry is delivered only once r members other
    /// than the sequencer hold it (capped at the group size minus one).
    pub resilience: u16,
    /// Most members the group admits.
    pub max_members: u16,
    /// History buffer size at the sequencer, in entries.
    pub history_size: u32,
    /// Largest payload accepted by `send_to_group`.
    pub max_message_size: u32,
    /// Payloads longer than this are sent with the BB method.
    pub bb_threshold: u32,
    /// Retransmission interval for sends, gap repair, joins and reset rounds (µs).
    pub retransmit_us: u64,
    /// The sequencer broadcasts a status/alive check at least this often (µs).
    pub heartbeat_us: u64,
    /// A member that hears nothing from the sequencer this long declares it dead (µs).
    pub sequencer_timeout_us: u64,
    /// The sequencer removes a member it has not heard from this long (µs).
    pub member_timeout_us: u64,
    /// A join that is not welcomed within this time fails (µs).
    pub join_timeout_us: u64,
    /// Most messages queued by `send_to_group` before it says `WouldBlock`.
    pub max_send_queue: usize,
    /// Members needed to complete a reset. `None` means a majority of the
    /// current membership, which rules out two groups forming on both sides
    /// of a partition. A smaller number lets a minority continue, at that risk.
    pub min_reset_members: Option<u16>,
    /// Start `reset_group` by itself when the sequencer is found dead.
    pub auto_reset: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            resilience: 0,
            max_members: 32,
            history_size: 128,
            max_message_size: 8192,
            bb_threshold: 1024,
            retransmit_us: 20_000,
            heartbeat_us: 50_000,
            sequencer_timeout_us: 500_000,
            member_timeout_us: 500_000,
            join_timeout_us: 5_000_000,
            max_send_queue: 16,
            min_reset_members: None,
            auto_reset: true,
        }
    }
}

impl Config {
    fn params(&self) -> GroupParams {
        GroupParams {
            resilience: self.resilience,
            max_members: self.max_members,
            history_size: self.history_size.max(2),
            max_message_size: self.max_message_size,
            bb_threshold: self.bb_threshold,
        }
    }
    fn set_params(&mut self, p: &GroupParams) {
        self.resilience = p.resilience;
        self.max_members = p.max_members;
        self.history_size = p.history_size.max(2);
        self.max_message_size = p.max_message_size;
        self.bb_threshold = p.bb_threshold;
    }
}

/// Where a packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// One process, by address.
    Member(u64),
    /// Every process listening on the group port (broadcast/multicast).
    Group,
}

/// A packet to put on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dest: Dest,
    /// Encoded packet.
    pub bytes: Vec<u8>,
}

/// Why a member left the membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// It called `leave_group`.
    Left,
    /// It stopped answering and was removed by the sequencer.
    Failed,
}

/// Errors reported through [`Event::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupError {
    /// Nothing was heard from the sequencer for `sequencer_timeout_us`.
    SequencerFailed,
    /// This member was dropped from the group (removed, or left out of a reset).
    Expelled,
    /// The group is full.
    JoinDenied,
    /// No welcome came within `join_timeout_us`.
    JoinTimeout,
}

/// What the member reports to its user, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This member is in; its join has sequence number `seq`.
    Joined {
        /// Our member id.
        member_id: u32,
        /// Sequence number of our join entry.
        seq: u64,
    },
    /// This member's leave was delivered; it is out.
    Left,
    /// An application message, in the total order.
    Delivered {
        /// Sequence number.
        seq: u64,
        /// Sending member.
        sender: u32,
        /// Contents.
        payload: Vec<u8>,
    },
    /// Another member joined (ordered).
    MemberJoined {
        /// Sequence number of the join.
        seq: u64,
        /// Its member id.
        member: u32,
        /// Its address.
        addr: u64,
    },
    /// A member left or was removed (ordered).
    MemberLeft {
        /// Sequence number of the leave.
        seq: u64,
        /// Its member id.
        member: u32,
        /// Its address.
        addr: u64,
        /// Why.
        reason: LeaveReason,
    },
    /// A reset completed; the entry at `seq` starts incarnation `incarnation`.
    GroupReset {
        /// Sequence number of the reset entry.
        seq: u64,
        /// New incarnation.
        incarnation: u32,
        /// Members dropped by the reset.
        removed: Vec<(u32, u64)>,
    },
    /// Another member is now the sequencer.
    SequencerChanged {
        /// Its member id.
        member: u32,
        /// Its address.
        addr: u64,
    },
    /// The group stopped making progress (reset in progress).
    Blocked,
    /// The group makes progress again.
    Unblocked,
    /// Something went wrong.
    Error(GroupError),
}

/// A message returned by [`GroupMember::receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sequence number.
    pub seq: u64,
    /// Sending member id.
    pub sender: u32,
    /// Contents.
    pub payload: Vec<u8>,
}

/// Why `send_to_group` refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Not an active member.
    NotMember,
    /// The capability this member joined with lacks [`RIGHT_SEND`].
    NotPermitted,
    /// Longer than `max_message_size`.
    TooLarge,
    /// The send queue is full; try again after some messages are delivered.
    WouldBlock,
}

/// What `get_info` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Sequence number of the next entry to deliver.
    pub expected_seq: u64,
    /// Highest sequence number known to be in use, plus one.
    pub next_seq: u64,
    /// Entries known but not yet known to be held by every member.
    pub unstable: u64,
    /// Our member id ([`NO_MEMBER`] if none).
    pub member_id: u32,
    /// The sequencer's member id.
    pub sequencer_id: u32,
    /// Current incarnation.
    pub incarnation: u32,
    /// Membership as of the delivered prefix (id, address).
    pub members: Vec<(u32, u64)>,
    /// Messages queued or in flight from this member.
    pub send_queue: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Joining {
        since: u64,
        last_tx: u64,
    },
    Active,
    Resetting,
    /// A sequencer that left and stays to serve stragglers.
    Retiring {
        since: u64,
        leave_seq: u64,
    },
    Gone,
}

#[derive(Clone, Debug)]
struct OutMsg {
    msg_id: u32,
    leave: bool,
    payload: Vec<u8>,
    stamped: Option<u64>,
    last_tx: Option<u64>,
}

#[derive(Clone, Debug)]
struct PendingWelcome {
    join_seq: u64,
    addr: u64,
    members: Vec<WelcomeMember>,
    sent: bool,
}

#[derive(Clone, Debug)]
struct SeqState {
    next_seq: u64,
    acks: BTreeMap<u32, u64>,
    /// Sequence number of each member's join (0 if older than our tenure):
    /// a member only counts as holding entries after its join.
    joined: BTreeMap<u32, u64>,
    /// Members whose leave/removal at `.0` is not accepted yet, with their
    /// last ack: a reset may still undo the removal, so they keep holding
    /// back stability (and history trimming) until then.
    departing: BTreeMap<u32, (u64, u64)>,
    last_heard: BTreeMap<u32, u64>,
    last_id: BTreeMap<u32, u32>,
    welcomes: BTreeMap<u32, PendingWelcome>,
    next_member_id: u32,
    last_bcast: u64,
    /// Last status broadcast that asked every member to answer.
    last_sync_bcast: u64,
    last_sync_req: Option<u64>,
    leaving: bool,
    blocked_dead_since: Option<u64>,
    next_dead_check: u64,
}

#[derive(Clone, Debug)]
struct PromiseInfo {
    addr: u64,
    seq_accepted: Option<u64>,
    delivered: u64,
    recv_upto: u64,
    held: Vec<(u64, u64)>,
    accepted: Option<(Ballot, View)>,
}

#[derive(Clone, Debug)]
enum Phase {
    Waiting {
        until: u64,
        ranked: bool,
    },
    Follower {
        since: u64,
    },
    Preparing {
        ballot: Ballot,
        quorum_members: Quorum,
        promises: BTreeMap<u32, PromiseInfo>,
        started: u64,
        last_tx: u64,
    },
    Fetching {
        ballot: Ballot,
        quorum_members: Quorum,
        promises: BTreeMap<u32, PromiseInfo>,
        base: u64,
        started: u64,
        last_tx: u64,
    },
    Accepting {
        ballot: Ballot,
        quorum_members: Quorum,
        view: View,
        accepted_by: BTreeSet<u32>,
        started: u64,
        last_tx: u64,
    },
}

#[derive(Clone, Debug)]
struct ResetState {
    /// Rounds we coordinated that timed out: back off to let others try.
    failed_rounds: u32,
    phase: Phase,
    candidates: BTreeMap<u32, u64>,
}

/// One member of one group: a sans-IO state machine.
///
/// Feed it packets with [`handle_packet`](Self::handle_packet) and time with
/// [`handle_timeout`](Self::handle_timeout); drain packets with
/// [`poll_transmit`](Self::poll_transmit) and events with
/// [`poll_event`](Self::poll_event) or messages with [`receive`](Self::receive);
/// call `handle_timeout` again at [`next_deadline`](Self::next_deadline).
#[derive(Debug)]
pub struct GroupMember {
    cfg: Config,
    port: u64,
    /// The group's secret check (the random part of its owner capability).
    secret: Check,
    /// What a joiner shows the sequencer: its capability's private part.
    credential: Private,
    /// What this member may do, from the capability it joined with.
    rights: Rights,
    me: u64,
    my_id: u32,
    state: State,
    inc: u32,
    seq_id: u32,
    seq_addr: u64,
    /// Membership as of the received prefix (protocol view).
    members: BTreeMap<u32, u64>,
    /// Membership before the last change in `members` (views in the group
    /// differ by at most that one change).
    prev_members: BTreeMap<u32, u64>,
    /// Accepted mark when we stopped being the sequencer to reset.
    seq_accepted: Option<u64>,
    /// Entries below this do not change `members` (installed by a reset or welcome).
    members_base: u64,
    /// Membership as of the delivered prefix (application view).
    view: BTreeMap<u32, u64>,
    history: BTreeMap<u64, Entry>,
    next_deliver: u64,
    recv_upto: u64,
    known_next: u64,
    accepted: u64,
    stable: u64,
    last_change: u64,
    delivered_last_id: BTreeMap<u32, u32>,
    bb_pending: VecDeque<(u32, u32, Vec<u8>)>,
    next_msg_id: u32,
    send_queue: VecDeque<OutMsg>,
    last_from_seq: u64,
    last_gap_req: Option<u64>,
    gap_attempts: u32,
    last_ack_sent: u64,
    seqr: Option<SeqState>,
    reset: Option<ResetState>,
    promised: Ballot,
    max_round: u32,
    accepted_val: Option<(Ballot, View)>,
    decided: Option<View>,
    last_forward: BTreeMap<u64, u64>,
    blocked: bool,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    now: u64,
}

fn quorum(cfg: &Config, n: usize) -> usize {
    match cfg.min_reset_members {
        Some(m) => (m as usize).clamp(1, n.max(1)),
        None => n / 2 + 1,
    }
}

/// The memberships a reset may draw its majorities from.
#[derive(Clone, Debug)]
struct Quorum {
    cur: BTreeMap<u32, u64>,
    prev: Option<BTreeMap<u32, u64>>,
}

impl Quorum {
    fn contains(&self, id: u32, addr: u64) -> bool {
        self.cur.get(&id) == Some(&addr) || self.prev.as_ref().is_some_and(|p| p.get(&id) == Some(&addr))
    }
    fn has_id(&self, id: u32) -> bool {
        self.cur.contains_key(&id) || self.prev.as_ref().is_some_and(|p| p.contains_key(&id))
    }
    fn satisfied(&self, cfg: &Config, ids: &BTreeSet<u32>) -> bool {
        let enough =
            |m: &BTreeMap<u32, u64>| m.keys().filter(|k| ids.contains(k)).count() >= quorum(cfg, m.len());
        enough(&self.cur) || self.prev.as_ref().is_some_and(enough)
    }
}

fn ranges_contain(r: &[(u64, u64)], s: u64) -> bool {
    r.iter().any(|&(a, b)| a <= s && s < b)
}

impl GroupMember {
    fn blank(cfg: Config, port: u64, me: u64, now: u64) -> Self {
        GroupMember {
            cfg,
            port: port & PORT_MASK,
            secret: Check([0; 6]),
            credential: Private { object: 0, rights: Rights::NONE, check: Check([0; 6]) },
            rights: Rights::NONE,
            me,
            my_id: NO_MEMBER,
            state: State::Gone,
            inc: 0,
            seq_id: NO_MEMBER,
            seq_addr: 0,
            members: BTreeMap::new(),
            prev_members: BTreeMap::new(),
            seq_accepted: None,
            members_base: 0,
            view: BTreeMap::new(),
            history: BTreeMap::new(),
            next_deliver: 0,
            recv_upto: 0,
            known_next: 0,
            accepted: 0,
            stable: 0,
            last_change: 0,
            delivered_last_id: BTreeMap::new(),
            bb_pending: VecDeque::new(),
            next_msg_id: 1,
            send_queue: VecDeque::new(),
            last_from_seq: now,
            last_gap_req: None,
            gap_attempts: 0,
            last_ack_sent: 0,
            seqr: None,
            reset: None,
            promised: Ballot::default(),
            max_round: 0,
            accepted_val: None,
            decided: None,
            last_forward: BTreeMap::new(),
            blocked: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            now,
        }
    }

    /// CreateGroup: a new group on `port` (48 bits) whose only member, and
    /// sequencer, is this process at address `me`. The creator's join is
    /// entry 0 of the order. `secret` is the random check of the group's
    /// owner capability (see [`GroupMember::owner_capability`]): joiners must
    /// show a capability that verifies against it.
    pub fn create_group(cfg: Config, port: u64, secret: Check, me: u64, now: u64) -> Self {
        let mut m = Self::blank(cfg, port, me, now);
        m.secret = secret;
        m.rights = Rights::ALL;
        m.my_id = 0;
        m.seq_id = 0;
        m.seq_addr = me;
        m.state = State::Active;
        m.members.insert(0, me);
        m.view.insert(0, me);
        m.history.insert(0, Entry { sender: 0, msg_id: 0, body: EntryBody::Join { addr: me } });
        m.next_deliver = 1;
        m.recv_upto = 1;
        m.known_next = 1;
        m.accepted = 1;
        m.stable = 1;
        m.members_base = 1;
        m.seqr = Some(SeqState {
            next_seq: 1,
            acks: BTreeMap::new(),
            joined: BTreeMap::new(),
            departing: BTreeMap::new(),
            last_heard: BTreeMap::new(),
            last_id: BTreeMap::new(),
            welcomes: BTreeMap::new(),
            next_member_id: 1,
            last_bcast: now,
            last_sync_req: None,
            last_sync_bcast: now,
            leaving: false,
            blocked_dead_since: None,
            next_dead_check: 0,
        });
        m.events.push_back(Event::Joined { member_id: 0, seq: 0 });
        m
    }

    /// JoinGroup: ask the group on `port` to admit this process (address `me`).
    /// The join request is broadcast on the group port and retransmitted until
    /// the sequencer's welcome arrives ([`Event::Joined`]) or `join_timeout_us`
    /// passes ([`GroupError::JoinTimeout`]).
    ///
    /// The group is the one `capability` names; the sequencer admits the
    /// joiner only if the capability verifies and carries [`RIGHT_RECEIVE`],
    /// and the member may send only if it also carries [`RIGHT_SEND`].
    pub fn join_group(cfg: Config, capability: &Capability, me: u64, now: u64) -> Self {
        let mut m = Self::blank(cfg, capability.port.to_u64(), me, now);
        m.credential = capability.private();
        m.rights = capability.private().rights;
        m.state = State::Joining { since: now, last_tx: now };
        m.bcast(Body::JoinReq { credential: m.credential.encode() });
        m
    }

    /// The owner capability of the group (all rights), for handing out
    /// (restricted with [`Capability::restrict`]) to processes that may join.
    pub fn owner_capability(&self) -> Capability {
        Capability::owner(Port::from_u64(self.port), 0, self.secret)
    }

    /// Whether `credential`, shown for this group, lets its holder join.
    fn admits(&self, credential: &[u8; 10]) -> bool {
        let capability = Capability::from_parts(Port::from_u64(self.port), Private::decode(credential));
        capability.private().object == 0
            && verify(&self.secret, &capability).is_ok_and(|rights| rights.contains(RIGHT_RECEIVE))
    }

    // ------------------------------------------------------------ public API

    /// LeaveGroup: queue a leave behind the messages already queued. The
    /// member is out when [`Event::Left`] comes. Leaving a group whose only
    /// member we are ends it at once.
    pub fn leave_group(&mut self, now: u64) -> Result<(), SendError> {
        self.now = now;
        if self.state != State::Active && self.state != State::Resetting {
            return Err(SendError::NotMember);
        }
        if self.send_queue.iter().any(|m| m.leave) {
            return Ok(());
        }
        let msg_id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        self.send_queue.push_back(OutMsg {
            msg_id,
            leave: true,
            payload: Vec::new(),
            stamped: None,
            last_tx: None,
        });
        self.pump_send();
        Ok(())
    }

    /// SendToGroup: queue `payload` for totally ordered delivery to every
    /// member (including this one). Returns the sender-local message id.
    /// The message is retransmitted until it is delivered here; at most one
    /// message per member is in flight, the rest wait in the queue.
    pub fn send_to_group(&mut self, now: u64, payload: &[u8]) -> Result<u32, SendError> {
        self.now = now;
        if self.state != State::Active && self.state != State::Resetting {
            return Err(SendError::NotMember);
        }
        if self.send_queue.iter().any(|m| m.leave) {
            return Err(SendError::NotMember);
        }
        if !self.rights.contains(RIGHT_SEND) {
            return Err(SendError::NotPermitted);
        }
        if payload.len() > self.cfg.max_message_size as usize {
            return Err(SendError::TooLarge);
        }
        if self.send_queue.len() >= self.cfg.max_send_queue.max(1) {
            return Err(SendError::WouldBlock);
        }
        let msg_id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        self.send_queue.push_back(OutMsg {
            msg_id,
            leave: false,
            payload: payload.to_vec(),
            stamped: None,
            last_tx: None,
        });
        self.pump_send();
        Ok(msg_id)
    }

    /// ReceiveFromGroup: the next delivered message, and whether more are
    /// pending. Other events stay queued for [`poll_event`](Self::poll_event).
    pub fn receive(&mut self) -> Option<(Message, bool)> {
        let i = self.events.iter().position(|e| matches!(e, Event::Delivered { .. }))?;
        let Some(Event::Delivered { seq, sender, payload }) = self.events.remove(i) else {
            return None;
        };
        let more = self.events.iter().skip(i).any(|e| matches!(e, Event::Delivered { .. }));
        Some((Message { seq, sender, payload }, more))
    }

    /// ResetGroup: start electing a new sequencer and rebuilding the group
    /// from the members that answer (at least `min_reset_members`, by default a
    /// majority). Called by itself on sequencer failure when `auto_reset` is set.
    pub fn reset_group(&mut self, now: u64) {
        self.now = now;
        if matches!(self.state, State::Active | State::Resetting) {
            self.enter_reset();
        }
    }

    /// GetInfoGroup.
    pub fn get_info(&self) -> GroupInfo {
        GroupInfo {
            expected_seq: self.next_deliver,
            next_seq: self.known_next,
            unstable: self.known_next.saturating_sub(self.stable),
            member_id: self.my_id,
            sequencer_id: self.seq_id,
            incarnation: self.inc,
            members: self.view.iter().map(|(a, b)| (*a, *b)).collect(),
            send_queue: self.send_queue.len(),
        }
    }

    /// This member's address.
    pub fn address(&self) -> u64 {
        self.me
    }

    /// Our member id, if we are a member.
    pub fn member_id(&self) -> Option<u32> {
        (self.my_id != NO_MEMBER && matches!(self.state, State::Active | State::Resetting))
            .then_some(self.my_id)
    }

    /// Whether this member currently acts as sequencer.
    pub fn is_sequencer(&self) -> bool {
        self.seqr.is_some() && self.state == State::Active
    }

    /// Whether the member is in the group (active or resetting).
    pub fn is_member(&self) -> bool {
        matches!(self.state, State::Active | State::Resetting)
    }

    /// Whether the member is resetting the group.
    pub fn is_resetting(&self) -> bool {
        self.state == State::Resetting
    }

    /// Whether the member has left, was expelled or failed to join, and is idle.
    pub fn is_gone(&self) -> bool {
        self.state == State::Gone
    }

    /// Next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn next_deadline(&self) -> Option<u64> {
        let c = &self.cfg;
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |x: u64| x.min(t)));
        match self.state {
            State::Gone => return None,
            State::Joining { since, last_tx } => {
                at(last_tx + c.retransmit_us);
                at(since + c.join_timeout_us);
                return d;
            }
            State::Retiring { since, .. } => {
                at(since + c.member_timeout_us);
                if let Some(s) = &self.seqr {
                    at(s.last_bcast + c.heartbeat_us);
                }
                return d;
            }
            State::Active | State::Resetting => {}
        }
        if let Some(s) = &self.seqr {
            at(s.last_bcast + c.heartbeat_us);
            if let Some(t) = s.last_heard.values().min() {
                at((t + c.member_timeout_us).max(s.next_dead_check));
            }
            if let Some(quiet) = self.listener_sync_due() {
                at(quiet.max(s.last_sync_bcast + c.heartbeat_us));
            }
            if let Some(t) = s.blocked_dead_since {
                at(t + c.member_timeout_us);
            }
        } else if self.state == State::Active {
            at(self.last_from_seq + c.sequencer_timeout_us);
        }
        if let Some(m) = self.send_queue.front()
            && m.stamped.is_none()
            && self.state == State::Active
        {
            at(m.last_tx.map_or(self.now, |t| t + c.retransmit_us));
        }
        if self.state == State::Active && self.recv_upto < self.known_next {
            at(self.last_gap_req.map_or(self.now, |t| t + c.retransmit_us));
        }
        if let Some(r) = &self.reset {
            let rt = self.round_timeout();
            match &r.phase {
                Phase::Waiting { until, .. } => at(*until),
                Phase::Follower { since } => at(since + rt),
                Phase::Preparing { started, last_tx, .. }
                | Phase::Fetching { started, last_tx, .. }
                | Phase::Accepting { started, last_tx, .. } => {
                    at(last_tx + c.retransmit_us);
                    at(started + rt);
                }
            }
        }
        d
    }

    /// Processes timers. Call at (or after) `next_deadline()`; calling more
    /// often is harmless.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = self.now.max(now);
        let now = self.now;
        let c = self.cfg.clone();
        match self.state {
            State::Gone => return,
            State::Joining { since, last_tx } => {
                if now >= since + c.join_timeout_us {
                    self.state = State::Gone;
                    self.events.push_back(Event::Error(GroupError::JoinTimeout));
                } else if now >= last_tx + c.retransmit_us {
                    self.state = State::Joining { since, last_tx: now };
                    self.bcast(Body::JoinReq { credential: self.credential.encode() });
                }
                return;
            }
            State::Retiring { since, leave_seq } => {
                let done = self.seqr.as_ref().is_none_or(|s| s.acks.values().all(|&a| a > leave_seq));
                if done || now >= since + c.member_timeout_us {
                    self.state = State::Gone;
                    self.seqr = None;
                } else if self.seqr.as_ref().is_some_and(|s| now >= s.last_bcast + c.heartbeat_us) {
                    self.bcast_status(FLAG_SYNC);
                }
                return;
            }
            State::Active | State::Resetting => {}
        }
        if self.state == State::Active {
            if self.seqr.is_some() {
                self.seq_timers();
            } else if now >= self.last_from_seq + c.sequencer_timeout_us {
                self.events.push_back(Event::Error(GroupError::SequencerFailed));
                if c.auto_reset {
                    self.enter_reset();
                } else {
                    // Report again after another timeout.
                    self.last_from_seq = now;
                }
            }
        }
        if self.state == State::Active {
            self.gap_repair();
            self.pump_send();
        }
        if self.state == State::Resetting {
            self.reset_timers();
        }
    }

    /// Processes one packet received from address `from`. Packets for other
    /// ports are ignored; malformed packets return an error and change nothing.
    pub fn handle_packet(&mut self, now: u64, from: u64, bytes: &[u8]) -> Result<(), DecodeError> {
        let pkt = Packet::decode(bytes)?;
        self.now = self.now.max(now);
        if pkt.header.port != self.port || from == self.me {
            return Ok(());
        }
        self.on_packet(from, pkt.header, pkt.body);
        Ok(())
    }

    // ------------------------------------------------------------ output helpers

    fn hdr(&self) -> Header {
        Header { port: self.port, inc: self.inc, src: self.my_id }
    }

    fn send_to(&mut self, addr: u64, body: Body) {
        let bytes = Packet { header: self.hdr(), body }.encode();
        self.out.push_back(Transmit { dest: Dest::Member(addr), bytes });
    }

    fn bcast(&mut self, body: Body) {
        let bytes = Packet { header: self.hdr(), body }.encode();
        self.out.push_back(Transmit { dest: Dest::Group, bytes });
        if let Some(s) = &mut self.seqr {
            s.last_bcast = self.now;
        }
    }

    fn bcast_status(&mut self, flags: u8) {
        let Some(s) = &mut self.seqr else { return };
        if flags & FLAG_SYNC != 0 {
            s.last_sync_bcast = self.now;
        }
        let body = Body::Status { next_seq: s.next_seq, accepted: self.accepted, stable: self.stable, flags };
        self.bcast(body);
    }

    fn send_ack(&mut self) {
        if self.seqr.is_some() || self.seq_addr == self.me {
            return;
        }
        self.last_ack_sent = self.recv_upto;
        let a = self.seq_addr;
        self.send_to(a, Body::Ack { ack: self.recv_upto });
    }

    fn block(&mut self) {
        if !self.blocked {
            self.blocked = true;
            self.events.push_back(Event::Blocked);
        }
    }

    fn unblock(&mut self) {
        if self.blocked {
            self.blocked = false;
            self.events.push_back(Event::Unblocked);
        }
    }

    fn expel(&mut self) {
        if matches!(self.state, State::Active | State::Resetting) {
            self.events.push_back(Event::Error(GroupError::Expelled));
        }
        self.state = State::Gone;
        self.seqr = None;
        self.reset = None;
        self.send_queue.clear();
    }

    fn effective_r(&self) -> usize {
        (self.cfg.resilience as usize).min(self.members.len().saturating_sub(1))
    }

    fn history_full(&self) -> bool {
        let Some(s) = &self.seqr else { return false };
        let low = self.stable.min(self.next_deliver);
        s.next_seq.saturating_sub(low) >= self.cfg.history_size as u64
    }

    // ------------------------------------------------------------ packet dispatch

    fn on_packet(&mut self, from: u64, h: Header, body: Body) {
        match &body {
            Body::JoinReq { credential } => {
                if self.state == State::Active && self.seqr.is_some() {
                    if self.admits(credential) {
                        self.on_join_req(from);
                    } else {
                        self.send_to(from, Body::JoinDenied);
                    }
                }
                return;
            }
            Body::Welcome { .. } => {
                if matches!(self.state, State::Joining { .. }) {
                    self.on_welcome(from, h, body);
                }
                return;
            }
            Body::JoinDenied => {
                if matches!(self.state, State::Joining { .. }) {
                    self.state = State::Gone;
                    self.events.push_back(Event::Error(GroupError::JoinDenied));
                }
                return;
            }
            Body::Decided { view } => {
                let view = view.clone();
                self.on_decided(view);
                return;
            }
            _ => {}
        }
        if matches!(self.state, State::Joining { .. } | State::Gone) {
            return;
        }
        if h.inc != self.inc {
            self.on_other_inc(from, h);
            return;
        }
        if self.state == State::Active && self.seqr.is_some() && self.members.get(&h.src) != Some(&from) {
            // The sequencer knows the membership best: tell strangers.
            if h.src != NO_MEMBER && self.rate_ok(from) {
                self.send_to(from, Body::NotMember);
            }
            return;
        }
        if from == self.seq_addr && h.src == self.seq_id {
            self.last_from_seq = self.now;
        }
        if self.members.get(&h.src) == Some(&from)
            && let Some(s) = &mut self.seqr
            && let Some(t) = s.last_heard.get_mut(&h.src)
        {
            *t = self.now;
        }
        if let State::Retiring { .. } = self.state {
            match body {
                Body::Ack { ack } => self.on_ack(from, h.src, ack),
                Body::Retrans { from: a, to, .. } => self.serve_retrans(from, a, to),
                _ => {}
            }
            return;
        }
        match body {
            Body::Send { msg_id, ack, leave, payload } => {
                if self.seqr.is_some() && self.state == State::Active {
                    self.on_send(from, h.src, msg_id, ack, leave, payload, false);
                }
            }
            Body::BbData { msg_id, ack, payload } => {
                if self.seqr.is_some() && self.state == State::Active {
                    self.on_send(from, h.src, msg_id, ack, false, payload, true);
                } else if self.members.get(&h.src) == Some(&from) {
                    if self.bb_pending.iter().any(|(s, m, _)| *s == h.src && *m == msg_id) {
                        return;
                    }
                    if self.bb_pending.len() >= BB_PENDING_MAX {
                        self.bb_pending.pop_front();
                    }
                    self.bb_pending.push_back((h.src, msg_id, payload));
                }
            }
            Body::Data { seq, accepted, stable, flags, entry } => {
                let auth = from == self.seq_addr && h.src == self.seq_id;
                self.on_entry(seq, entry);
                if auth {
                    self.on_seq_info(seq + 1, accepted, stable, flags);
                }
                self.after_input();
            }
            Body::BbAccept { seq, accepted, stable, flags, sender, msg_id } => {
                let auth = from == self.seq_addr && h.src == self.seq_id;
                if let Some(i) = self.bb_pending.iter().position(|(s, m, _)| *s == sender && *m == msg_id)
                    && let Some((_, _, payload)) = self.bb_pending.remove(i)
                {
                    self.on_entry(seq, Entry { sender, msg_id, body: EntryBody::App(payload) });
                }
                self.known_next = self.known_next.max(seq + 1);
                if auth {
                    self.on_seq_info(seq + 1, accepted, stable, flags);
                }
                self.after_input();
            }
            Body::Status { next_seq, accepted, stable, flags } => {
                if from == self.seq_addr && h.src == self.seq_id {
                    self.on_seq_info(next_seq, accepted, stable, flags);
                    self.after_input();
                }
            }
            Body::Ack { ack } => {
                if self.seqr.is_some() {
                    self.on_ack(from, h.src, ack);
                }
            }
            Body::Retrans { from: a, to, any } => {
                if self.seqr.is_some() || any {
                    self.serve_retrans(from, a, to);
                } else if self.state == State::Resetting {
                    // Reset fetches are addressed to a holder directly.
                    self.serve_retrans(from, a, to);
                }
            }
            Body::NotMember => {
                // Only an active sequencer says this, and it knows the
                // membership of this incarnation best (it may be a successor
                // we have not heard of yet).
                if self.known_member(h.src, from) {
                    self.expel();
                }
            }
            Body::ResetStatus { recv_upto } => self.on_reset_status(from, h.src, recv_upto),
            Body::Prepare { ballot } => self.on_prepare(from, h.src, ballot),
            Body::Promise { ballot, delivered, recv_upto, held, accepted, seq_accepted } => self.on_promise(
                h.src,
                ballot,
                PromiseInfo { addr: from, seq_accepted, delivered, recv_upto, held, accepted },
            ),
            Body::Nack { ballot } => self.on_nack(ballot),
            Body::Accept { ballot, view } => self.on_accept(from, h.src, ballot, view),
            Body::Accepted { ballot } => self.on_accepted(h.src, ballot),
            Body::JoinReq { .. } | Body::Welcome { .. } | Body::JoinDenied | Body::Decided { .. } => {}
        }
    }

    /// Rate limit for unsolicited answers to one address.
    fn rate_ok(&mut self, from: u64) -> bool {
        let now = self.now;
        let ok = self.last_forward.get(&from).is_none_or(|&t| now >= t + self.cfg.retransmit_us);
        if ok {
            if self.last_forward.len() > 256 {
                self.last_forward.clear();
            }
            self.last_forward.insert(from, now);
        }
        ok
    }

    fn on_other_inc(&mut self, from: u64, h: Header) {
        if h.src == NO_MEMBER || !self.rate_ok(from) {
            return;
        }
        if h.inc < self.inc {
            // A straggler of an older incarnation: tell it how the reset went.
            if let Some(v) = self.decided.clone() {
                self.send_to(from, Body::Decided { view: v });
            }
        } else {
            // We are behind: make the sender tell us.
            let b = Body::ResetStatus { recv_upto: self.recv_upto };
            self.send_to(from, b);
        }
    }

    // ------------------------------------------------------------ receiving entries

    /// Stores an entry in the history (any state but joining).
    fn on_entry(&mut self, seq: u64, entry: Entry) {
        if seq < self.next_deliver || self.history.contains_key(&seq) {
            return;
        }
        if self.history.len() as u64 > 4 * self.cfg.history_size as u64 + 64
            && seq > self.recv_upto + 4 * self.cfg.history_size as u64
        {
            // Far beyond what we can use; drop it rather than grow without bound.
            return;
        }
        if entry.sender == self.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
        {
            m.stamped = Some(seq);
        }
        self.history.insert(seq, entry);
        self.known_next = self.known_next.max(seq + 1);
        self.advance_recv();
    }

    fn advance_recv(&mut self) {
        let before = self.recv_upto;
        while let Some(e) = self.history.get(&self.recv_upto) {
            if self.recv_upto >= self.members_base {
                let e = e.clone();
                self.apply_members(self.recv_upto, &e);
            }
            self.recv_upto += 1;
        }
        if self.recv_upto > before {
            self.gap_attempts = 0;
        }
    }

    /// Applies a membership change to the protocol view (at receive time).
    fn apply_members(&mut self, seq: u64, e: &Entry) {
        let now = self.now;
        if !matches!(e.body, EntryBody::App(_)) {
            self.prev_members = self.members.clone();
        }
        match &e.body {
            EntryBody::App(_) => {}
            EntryBody::Join { addr } => {
                self.members.insert(e.sender, *addr);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    s.acks.insert(e.sender, seq);
                    s.joined.insert(e.sender, seq);
                    // A fresh member numbers its messages from 1 (ids of
                    // departed members may be reused after a reset).
                    s.last_id.insert(e.sender, 0);
                    s.departing.remove(&e.sender);
                    s.last_heard.insert(e.sender, now);
                    s.next_member_id = s.next_member_id.max(e.sender.saturating_add(1));
                }
            }
            EntryBody::Leave { .. } => {
                self.members.remove(&e.sender);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    if let Some(a) = s.acks.remove(&e.sender) {
                        s.departing.insert(e.sender, (seq, a));
                    }
                    s.joined.remove(&e.sender);
                    s.last_heard.remove(&e.sender);
                }
            }
            EntryBody::Remove { member } => {
                self.members.remove(member);
                self.last_change = seq;
                if let Some(s) = &mut self.seqr {
                    if let Some(a) = s.acks.remove(member) {
                        s.departing.insert(*member, (seq, a));
                    }
                    s.joined.remove(member);
                    s.last_heard.remove(member);
                }
            }
            EntryBody::Reset { .. } => {
                self.last_change = seq;
            }
        }
    }

    /// Accept/stable/next information from the sequencer.
    fn on_seq_info(&mut self, next: u64, accepted: u64, stable: u64, flags: u8) {
        if self.state != State::Active {
            return;
        }
        self.known_next = self.known_next.max(next);
        // Never accept beyond what the sequencer has stamped in this incarnation.
        self.accepted = self.accepted.max(accepted.min(self.known_next));
        self.stable = self.stable.max(stable.min(self.recv_upto));
        if flags & (FLAG_NEED_ACK | FLAG_SYNC) != 0 {
            self.send_ack();
        }
    }

    /// Delivery, acks, trimming after new input.
    fn after_input(&mut self) {
        if self.state != State::Active {
            return;
        }
        if self.seqr.is_none()
            && self.recv_upto >= self.last_ack_sent + (self.cfg.history_size as u64 / 4).max(1)
        {
            self.send_ack();
        }
        self.deliver();
        self.trim();
        self.pump_send();
    }

    fn trim(&mut self) {
        let low = self.stable.min(self.next_deliver);
        while let Some((&s, _)) = self.history.first_key_value() {
            if s >= low {
                break;
            }
            self.history.remove(&s);
        }
    }

    fn deliver(&mut self) {
        while self.state == State::Active && self.next_deliver < self.accepted {
            let s = self.next_deliver;
            let Some(e) = self.history.get(&s).cloned() else {
                break;
            };
            self.next_deliver += 1;
            self.deliver_entry(s, e);
        }
    }

    fn deliver_entry(&mut self, seq: u64, e: Entry) {
        match e.body {
            EntryBody::App(payload) => {
                let last = self.delivered_last_id.entry(e.sender).or_insert(0);
                *last = (*last).max(e.msg_id);
                self.events.push_back(Event::Delivered { seq, sender: e.sender, payload });
                if e.sender == self.my_id && self.send_queue.front().is_some_and(|m| m.msg_id == e.msg_id) {
                    self.send_queue.pop_front();
                }
            }
            EntryBody::Join { addr } => {
                self.view.insert(e.sender, addr);
                self.delivered_last_id.insert(e.sender, 0);
                if e.sender != self.my_id {
                    self.events.push_back(Event::MemberJoined { seq, member: e.sender, addr });
                }
            }
            EntryBody::Leave { successor } => {
                let addr = self.view.remove(&e.sender).unwrap_or(0);
                self.delivered_last_id.remove(&e.sender);
                self.events.push_back(Event::MemberLeft {
                    seq,
                    member: e.sender,
                    addr,
                    reason: LeaveReason::Left,
                });
                if e.sender == self.my_id {
                    self.events.push_back(Event::Left);
                    self.send_queue.clear();
                    if self.seqr.is_some() {
                        self.state = State::Retiring { since: self.now, leave_seq: seq };
                    } else {
                        self.state = State::Gone;
                    }
                    return;
                }
                if e.sender == self.seq_id && successor != NO_MEMBER {
                    self.sequencer_handoff(seq, successor);
                }
            }
            EntryBody::Remove { member } => {
                let addr = self.view.remove(&member).unwrap_or(0);
                self.delivered_last_id.remove(&member);
                self.events.push_back(Event::MemberLeft { seq, member, addr, reason: LeaveReason::Failed });
                if member == self.my_id {
                    self.expel();
                }
            }
            EntryBody::Reset { new_inc, removed } => {
                for (id, _) in &removed {
                    self.view.remove(id);
                    self.delivered_last_id.remove(id);
                }
                self.events.push_back(Event::GroupReset { seq, incarnation: new_inc, removed });
            }
        }
    }

    fn sequencer_handoff(&mut self, leave_seq: u64, successor: u32) {
        let Some(&addr) = self.members.get(&successor).or(self.view.get(&successor)) else {
            return;
        };
        // Let the old sequencer know we are past its leave, so it can go.
        self.send_ack();
        self.seq_id = successor;
        self.seq_addr = addr;
        self.last_from_seq = self.now;
        self.events.push_back(Event::SequencerChanged { member: successor, addr });
        if successor == self.my_id {
            let now = self.now;
            let members: Vec<u32> = self.members.keys().copied().collect();
            let next_member_id = self.max_known_id().saturating_add(1);
            let mut s = SeqState {
                next_seq: leave_seq + 1,
                acks: BTreeMap::new(),
                joined: BTreeMap::new(),
                departing: BTreeMap::new(),
                last_heard: BTreeMap::new(),
                last_id: self.delivered_last_id.clone(),
                welcomes: BTreeMap::new(),
                next_member_id,
                last_bcast: now,
                last_sync_req: None,
                last_sync_bcast: now,
                leaving: false,
                blocked_dead_since: None,
                next_dead_check: 0,
            };
            for id in members {
                if id != self.my_id {
                    s.acks.insert(id, self.stable.min(leave_seq));
                    s.joined.insert(id, 0);
                    s.last_heard.insert(id, now);
                }
            }
            self.history.retain(|&k, _| k <= leave_seq);
            self.known_next = leave_seq + 1;
            self.recv_upto = self.recv_upto.min(leave_seq + 1);
            self.accepted = leave_seq + 1;
            self.seqr = Some(s);
            self.bcast_status(FLAG_SYNC);
        } else {
            self.send_ack();
            // Resend our message to the new sequencer promptly.
            if let Some(m) = self.send_queue.front_mut()
                && m.stamped.is_none()
            {
                m.last_tx = None;
            }
        }
    }

    fn max_known_id(&self) -> u32 {
        let mut m = 0;
        for id in self.members.keys().chain(self.view.keys()) {
            m = m.max(*id);
        }
        for e in self.history.values() {
            if let EntryBody::Join { .. } = e.body {
                m = m.max(e.sender);
            }
        }
        m
    }

    fn gap_repair(&mut self) {
        if self.recv_upto >= self.known_next {
            return;
        }
        let now = self.now;
        if self.last_gap_req.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        self.last_gap_req = Some(now);
        let from = self.recv_upto;
        let to = self.known_next.min(from + RETRANS_BATCH);
        self.gap_attempts += 1;
        if self.seqr.is_some() {
            // A new sequencer missing entries asks everyone.
            self.bcast(Body::Retrans { from, to, any: true });
        } else if self.gap_attempts.is_multiple_of(3) {
            self.bcast(Body::Retrans { from, to, any: true });
        } else {
            let a = self.seq_addr;
            self.send_to(a, Body::Retrans { from, to, any: false });
        }
    }

    fn serve_retrans(&mut self, to_addr: u64, from: u64, to: u64) {
        let end = to.min(from.saturating_add(RETRANS_BATCH));
        let is_seq = self.seqr.is_some();
        let (accepted, stable) = (self.accepted, self.stable);
        let mut s = from;
        while s < end {
            if let Some(e) = self.history.get(&s).cloned() {
                let body = if is_seq {
                    Body::Data {
                        seq: s,
                        accepted,
                        stable,
                        flags: FLAG_RETRANS | self.need_ack_flag(),
                        entry: e,
                    }
                } else {
                    // Non-sequencers only pass on the entry, not accept info.
                    Body::Data { seq: s, accepted: 0, stable: 0, flags: FLAG_RETRANS, entry: e }
                };
                self.send_to(to_addr, body);
            }
            s += 1;
        }
    }

    fn need_ack_flag(&self) -> u8 {
        if self.effective_r() > 0 { FLAG_NEED_ACK } else { 0 }
    }

    // ------------------------------------------------------------ sending

    fn pump_send(&mut self) {
        if self.state != State::Active {
            return;
        }
        let now = self.now;
        let retrans = self.cfg.retransmit_us;
        let bb_threshold = self.cfg.bb_threshold as usize;
        let Some(m) = self.send_queue.front() else {
            return;
        };
        if m.stamped.is_some() {
            return;
        }
        if self.seqr.is_some() {
            // The sequencer stamps its own messages directly.
            while self.state == State::Active && self.seqr.is_some() {
                let Some(m) = self.send_queue.front() else {
                    break;
                };
                if m.stamped.is_some() {
                    break;
                }
                let (msg_id, leave, payload) = (m.msg_id, m.leave, m.payload.clone());
                let me = self.my_id;
                self.seq_submit(me, msg_id, leave, payload, false);
                if let Some(m) = self.send_queue.front_mut()
                    && m.msg_id == msg_id
                    && m.stamped.is_none()
                {
                    // Not possible now (history full, change pending): retry
                    // on progress or after the retransmission interval.
                    m.last_tx = Some(self.now);
                    break;
                }
                self.seq_settle();
            }
            return;
        }
        if m.last_tx.is_some_and(|t| now < t + retrans) {
            return;
        }
        let (msg_id, leave, payload) = (m.msg_id, m.leave, m.payload.clone());
        if let Some(m) = self.send_queue.front_mut() {
            m.last_tx = Some(now);
        }
        let ack = self.recv_upto;
        self.last_ack_sent = ack;
        if !leave && payload.len() > bb_threshold {
            let me = self.my_id;
            if !self.bb_pending.iter().any(|(s, m, _)| *s == me && *m == msg_id) {
                if self.bb_pending.len() >= BB_PENDING_MAX {
                    self.bb_pending.pop_front();
                }
                self.bb_pending.push_back((me, msg_id, payload.clone()));
            }
            self.bcast(Body::BbData { msg_id, ack, payload });
        } else {
            let a = self.seq_addr;
            self.send_to(a, Body::Send { msg_id, ack, leave, payload });
        }
    }

    // ------------------------------------------------------------ sequencer

    fn on_ack(&mut self, from: u64, src: u32, ack: u64) {
        if self.members.get(&src) != Some(&from) {
            if self.state == State::Active && self.seqr.is_some() {
                self.send_to(from, Body::NotMember);
            }
            return;
        }
        let now = self.now;
        let Some(s) = &mut self.seqr else { return };
        let next = s.next_seq;
        if let Some(a) = s.acks.get_mut(&src) {
            *a = (*a).max(ack.min(next));
        }
        s.last_heard.insert(src, now);
        if self.state == State::Active {
            self.seq_progress();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_send(
        &mut self,
        from: u64,
        src: u32,
        msg_id: u32,
        ack: u64,
        leave: bool,
        payload: Vec<u8>,
        bb: bool,
    ) {
        if self.members.get(&src) != Some(&from) {
            self.send_to(from, Body::NotMember);
            return;
        }
        let now = self.now;
        if let Some(s) = &mut self.seqr {
            let next = s.next_seq;
            if let Some(a) = s.acks.get_mut(&src) {
                *a = (*a).max(ack.min(next));
            }
            s.last_heard.insert(src, now);
        }
        if payload.len() > self.cfg.max_message_size as usize {
            return;
        }
        self.seq_submit(src, msg_id, leave, payload, bb);
        self.seq_progress();
    }

    /// The sequencer considers sequencing (src, msg_id).
    fn seq_submit(&mut self, src: u32, msg_id: u32, leave: bool, payload: Vec<u8>, bb: bool) {
        let Some(s) = &self.seqr else { return };
        let last = s.last_id.get(&src).copied().unwrap_or(0);
        if msg_id <= last {
            // Retransmission of something already sequenced: resend it to the sender.
            if src != self.my_id
                && let Some((&seq, e)) =
                    self.history.iter().rev().find(|(_, e)| e.sender == src && e.msg_id == msg_id)
            {
                let body = Body::Data {
                    seq,
                    accepted: self.accepted,
                    stable: self.stable,
                    flags: FLAG_RETRANS | self.need_ack_flag(),
                    entry: e.clone(),
                };
                let addr = self.members.get(&src).copied().unwrap_or(0);
                self.send_to(addr, body);
            }
            return;
        }
        if s.leaving {
            return;
        }
        if self.history_full() {
            self.request_sync();
            return;
        }
        let body = if leave {
            if !self.change_allowed() {
                return;
            }
            let successor = if src == self.my_id { self.pick_successor() } else { NO_MEMBER };
            EntryBody::Leave { successor }
        } else {
            EntryBody::App(payload)
        };
        let bb = bb && matches!(&body, EntryBody::App(p) if p.len() > self.cfg.bb_threshold as usize);
        if let Some(s) = &mut self.seqr {
            s.last_id.insert(src, msg_id);
            if leave && src == self.my_id {
                s.leaving = true;
            }
        }
        self.stamp(Entry { sender: src, msg_id, body }, bb);
    }

    fn pick_successor(&self) -> u32 {
        let Some(s) = &self.seqr else {
            return NO_MEMBER;
        };
        let now = self.now;
        let mut best: Option<(u64, u32)> = None;
        for (&id, &ack) in &s.acks {
            if id == self.my_id {
                continue;
            }
            let alive = s.last_heard.get(&id).is_some_and(|&t| now < t + self.cfg.member_timeout_us / 2);
            if !alive {
                continue;
            }
            if best.is_none_or(|(a, i)| ack > a || (ack == a && id < i)) {
                best = Some((ack, id));
            }
        }
        best.map_or(NO_MEMBER, |(_, id)| id)
    }

    /// May the sequencer stamp a membership change now? Only one change may be
    /// unacknowledged at a time, so members' views differ by at most one step.
    fn change_allowed(&self) -> bool {
        let Some(s) = &self.seqr else { return false };
        s.acks.iter().all(|(&id, &a)| id == self.my_id || a > self.last_change)
    }

    fn request_sync(&mut self) {
        let now = self.now;
        let Some(s) = &mut self.seqr else { return };
        if s.last_sync_req.is_some_and(|t| now < t + self.cfg.retransmit_us) {
            return;
        }
        s.last_sync_req = Some(now);
        self.bcast_status(FLAG_SYNC);
    }

    /// Gives the next sequence number to `entry` and broadcasts it.
    fn stamp(&mut self, entry: Entry, bb: bool) -> u64 {
        let Some(s) = &mut self.seqr else { return 0 };
        let seq = s.next_seq;
        s.next_seq += 1;
        self.history.insert(seq, entry.clone());
        self.known_next = seq + 1;
        self.advance_recv();
        if entry.sender == self.my_id
            && let Some(m) = self.send_queue.front_mut()
            && m.msg_id == entry.msg_id
            && !matches!(entry.body, EntryBody::Join { .. } | EntryBody::Remove { .. })
        {
            m.stamped = Some(seq);
        }
        self.recompute_accepted();
        let flags = self.need_ack_flag();
        let body = if bb {
            Body::BbAccept {
                seq,
                accepted: self.accepted,
                stable: self.stable,
                flags,
                sender: entry.sender,
                msg_id: entry.msg_id,
            }
        } else {
            Body::Data { seq, accepted: self.accepted, stable: self.stable, flags, entry }
        };
        self.bcast(body);
        seq
    }

    fn recompute_accepted(&mut self) {
        let r = self.cfg.resilience as usize;
        let me = self.my_id;
        let Some(s) = &self.seqr else { return };
        let next = s.next_seq;
        let mut acc = self.accepted;
        while acc < next {
            // Members that joined before entry `acc` can hold it; r is capped
            // by how many there are.
            let mut eligible = 0;
            let mut holders = 0;
            for (id, a) in &s.acks {
                if *id == me || s.joined.get(id).is_some_and(|&j| j >= acc) {
                    continue;
                }
                eligible += 1;
                if *a > acc {
                    holders += 1;
                }
            }
            if holders < r.min(eligible) {
                break;
            }
            acc += 1;
        }
        let stable = s
            .acks
            .values()
            .chain(s.departing.values().filter(|(at, _)| *at >= acc).map(|(_, a)| a))
            .copied()
            .min()
            .unwrap_or(next)
            .min(next);
        self.accepted = acc;
        self.stable = self.stable.max(stable);
        if let Some(s) = &mut self.seqr {
            s.departing.retain(|_, (at, _)| *at >= acc);
        }
    }

    /// After acks or stamps: accept, deliver, trim, welcome, announce.
    fn seq_progress(&mut self) {
        self.seq_settle();
        self.pump_send();
    }

    fn seq_settle(&mut self) {
        let before = self.accepted;
        self.recompute_accepted();
        if self.accepted > before && self.effective_r() > 0 {
            self.bcast_status(0);
        }
        self.deliver();
        self.trim();
        self.send_welcomes(None);
    }

    /// Sends welcomes whose join entry is accepted: once when it becomes
    /// accepted, and again whenever the joiner repeats its request.
    fn send_welcomes(&mut self, only: Option<u32>) {
        let accepted = self.accepted;
        let Some(s) = &mut self.seqr else { return };
        let acks = &s.acks;
        // Forget welcomes the joiner evidently received (it acknowledged).
        s.welcomes.retain(|id, w| acks.get(id).is_some_and(|&a| a <= w.join_seq));
        let mut list = Vec::new();
        for (id, w) in s.welcomes.iter_mut() {
            if w.join_seq < accepted && (only == Some(*id) || (only.is_none() && !w.sent)) {
                w.sent = true;
                list.push((*id, w.clone()));
            }
        }
        for (id, w) in list {
            let body = Body::Welcome {
                member_id: id,
                join_seq: w.join_seq,
                sequencer: self.my_id,
                accepted: self.accepted,
                stable: self.stable,
                params: self.cfg.params(),
                members: w.members,
                secret: self.secret.0,
            };
            self.send_to(w.addr, body);
        }
    }

    fn on_join_req(&mut self, from: u64) {
        if let Some((&id, _)) = self.members.iter().find(|(_, a)| **a == from) {
            self.send_welcomes(Some(id));
            return;
        }
        if self.seqr.as_ref().is_some_and(|s| s.leaving) {
            return;
        }
        if self.members.len() >= self.cfg.max_members as usize {
            self.send_to(from, Body::JoinDenied);
            return;
        }
        if !self.change_allowed() || self.history_full() {
            return;
        }
        let Some(s) = &mut self.seqr else { return };
        let id = s.next_member_id;
        s.next_member_id += 1;
        let seq = self.stamp(Entry { sender: id, msg_id: 0, body: EntryBody::Join { addr: from } }, false);
        let Some(s) = &mut self.seqr else { return };
        let members = self
            .members
            .iter()
            .map(|(&i, &a)| WelcomeMember {
                id: i,
                addr: a,
                last_msg_id: s.last_id.get(&i).copied().unwrap_or(0),
            })
            .collect();
        s.welcomes.insert(id, PendingWelcome { join_seq: seq, addr: from, members, sent: false });
        self.seq_progress();
    }

    fn seq_timers(&mut self) {
        let now = self.now;
        let c = self.cfg.clone();
        let Some(s) = &self.seqr else { return };
        // Dead members.
        let dead: Vec<u32> = s
            .last_heard
            .iter()
            .filter(|(id, t)| **id != self.my_id && now >= **t + c.member_timeout_us)
            .map(|(id, _)| *id)
            .collect();
        let leaving = s.leaving;
        if !dead.is_empty() {
            let alive = self.members.len() - dead.len();
            if alive < quorum(&c, self.members.len()) {
                // We no longer hear from enough members to speak for the
                // group (we may be on the small side of a partition): stop
                // sequencing and let a reset sort it out.
                self.enter_reset();
                return;
            }
        }
        if !dead.is_empty() && leaving {
            if let Some(s) = &mut self.seqr {
                s.next_dead_check = now + c.retransmit_us;
            }
        } else if !dead.is_empty() {
            let mut removed = false;
            for id in &dead {
                if self.change_allowed() && !self.history_full() {
                    self.stamp(
                        Entry { sender: self.my_id, msg_id: 0, body: EntryBody::Remove { member: *id } },
                        false,
                    );
                    removed = true;
                    break;
                }
            }
            if let Some(s) = &mut self.seqr {
                if removed {
                    s.blocked_dead_since = None;
                } else {
                    s.next_dead_check = now + c.retransmit_us;
                    let since = *s.blocked_dead_since.get_or_insert(now);
                    if now >= since + c.member_timeout_us {
                        // Several dead members block each other's removal:
                        // a reset removes them all at once.
                        s.blocked_dead_since = None;
                        self.enter_reset();
                        return;
                    }
                }
            }
            self.seq_progress();
        } else if let Some(s) = &mut self.seqr {
            s.blocked_dead_since = None;
        }
        let Some(s) = &self.seqr else { return };
        // Members that only listen speak when asked. Data broadcasts hold
        // the heartbeat back, so while data flows, ask them anyway once one
        // has been quiet for half the member timeout (at the heartbeat's
        // pace), or it would soon count as dead.
        let quiet_due =
            now >= s.last_sync_bcast + c.heartbeat_us && self.listener_sync_due().is_some_and(|t| now >= t);
        if now >= s.last_bcast + c.heartbeat_us || quiet_due {
            self.bcast_status(FLAG_SYNC);
        }
        if self.history_full() {
            self.request_sync();
        }
        self.pump_send();
    }

    /// When the member heard from longest ago has been quiet for half the
    /// member timeout (and should be asked to answer).
    fn listener_sync_due(&self) -> Option<u64> {
        let s = self.seqr.as_ref()?;
        let oldest = s.last_heard.iter().filter(|(id, _)| **id != self.my_id).map(|(_, t)| *t).min()?;
        Some(oldest + self.cfg.member_timeout_us / 2)
    }

    // ------------------------------------------------------------ joining

    fn on_welcome(&mut self, from: u64, h: Header, body: Body) {
        let Body::Welcome { member_id, join_seq, sequencer, accepted, stable, params, members, secret } =
            body
        else {
            return;
        };
        if !members.iter().any(|m| m.id == member_id && m.addr == self.me)
            || !members.iter().any(|m| m.id == sequencer && m.addr == from && h.src == sequencer)
        {
            return;
        }
        self.cfg.set_params(&params);
        self.secret = Check(secret);
        self.my_id = member_id;
        self.inc = h.inc;
        self.seq_id = sequencer;
        self.seq_addr = from;
        self.members = members.iter().map(|m| (m.id, m.addr)).collect();
        self.prev_members = self.members.clone();
        self.view = self.members.clone();
        self.delivered_last_id = members.iter().map(|m| (m.id, m.last_msg_id)).collect();
        self.members_base = join_seq + 1;
        self.next_deliver = join_seq + 1;
        self.recv_upto = join_seq + 1;
        self.known_next = join_seq + 1;
        self.accepted = accepted.max(join_seq + 1);
        self.stable = stable.min(join_seq + 1);
        self.last_change = join_seq;
        self.state = State::Active;
        self.last_from_seq = self.now;
        self.events.push_back(Event::Joined { member_id, seq: join_seq });
        self.send_ack();
    }

    // ------------------------------------------------------------ reset

    fn round_timeout(&self) -> u64 {
        (self.cfg.retransmit_us * 25).max(self.cfg.heartbeat_us * 4)
    }

    fn settle(&self) -> u64 {
        self.cfg.retransmit_us * 2
    }

    fn enter_reset(&mut self) {
        let now = self.now;
        if self.state == State::Active {
            self.state = State::Resetting;
            if self.seqr.take().is_some() {
                self.seq_accepted = Some(self.accepted);
            }
            self.block();
        }
        if self.state != State::Resetting {
            return;
        }
        let mut candidates = BTreeMap::new();
        candidates.insert(self.my_id, self.recv_upto);
        let mut failed_rounds = 0;
        if let Some(r) = &self.reset {
            for (k, v) in &r.candidates {
                candidates.insert(*k, *v);
            }
            failed_rounds = r.failed_rounds;
            if matches!(r.phase, Phase::Preparing { .. } | Phase::Fetching { .. } | Phase::Accepting { .. }) {
                failed_rounds += 1;
            }
        }
        let until = now + self.settle() * (1 + 4 * failed_rounds.min(8) as u64);
        self.reset =
            Some(ResetState { failed_rounds, phase: Phase::Waiting { until, ranked: false }, candidates });
        let b = Body::ResetStatus { recv_upto: self.recv_upto };
        self.bcast(b);
    }

    fn become_follower(&mut self) {
        let now = self.now;
        if self.state == State::Active {
            self.state = State::Resetting;
            if self.seqr.take().is_some() {
                self.seq_accepted = Some(self.accepted);
            }
            self.block();
        }
        match &mut self.reset {
            Some(r) => r.phase = Phase::Follower { since: now },
            None => {
                let mut candidates = BTreeMap::new();
                candidates.insert(self.my_id, self.recv_upto);
                self.reset =
                    Some(ResetState { failed_rounds: 0, phase: Phase::Follower { since: now }, candidates })
            }
        }
    }

    fn on_reset_status(&mut self, from: u64, src: u32, recv_upto: u64) {
        if !self.members.contains_key(&src) {
            return;
        }
        let Some(r) = &mut self.reset else { return };
        let new = r.candidates.insert(src, recv_upto).is_none();
        if new && self.state == State::Resetting {
            let b = Body::ResetStatus { recv_upto: self.recv_upto };
            self.send_to(from, b);
        }
    }

    fn my_rank(&self) -> usize {
        let Some(r) = &self.reset else { return 0 };
        let mine = (core::cmp::Reverse(self.recv_upto), self.my_id);
        r.candidates
            .iter()
            .filter(|(id, up)| **id != self.my_id && (core::cmp::Reverse(**up), **id) < mine)
            .count()
    }

    fn reset_timers(&mut self) {
        let now = self.now;
        let rt = self.round_timeout();
        let retrans = self.cfg.retransmit_us;
        let settle = self.settle();
        let Some(r) = &self.reset else { return };
        match &r.phase {
            Phase::Waiting { until, ranked } => {
                if now < *until {
                    return;
                }
                if !*ranked {
                    let rank = self.my_rank() as u64;
                    if rank > 0 {
                        let entered = *until;
                        if let Some(r) = &mut self.reset {
                            r.phase =
                                Phase::Waiting { until: entered + settle * (1 + 3 * rank), ranked: true };
                        }
                        if now < entered + settle * (1 + 3 * rank) {
                            return;
                        }
                    }
                }
                self.start_prepare();
            }
            Phase::Follower { since } => {
                if now >= since + rt {
                    self.enter_reset();
                }
            }
            Phase::Preparing { started, last_tx, .. }
            | Phase::Fetching { started, last_tx, .. }
            | Phase::Accepting { started, last_tx, .. } => {
                if now >= started + rt {
                    self.enter_reset();
                    return;
                }
                if now >= last_tx + retrans {
                    self.reset_retransmit();
                }
                self.reset_progress();
            }
        }
    }

    fn start_prepare(&mut self) {
        let now = self.now;
        let round = self.max_round.max(self.promised.round) + 1;
        self.max_round = round;
        let ballot = Ballot { round, id: self.my_id };
        self.promised = ballot;
        let mut promises = BTreeMap::new();
        promises.insert(self.my_id, self.own_promise());
        // Our view, and the one before our last membership change if no later
        // change can have been made yet (we made it as sequencer, or have not
        // acknowledged it): the group's views differ by at most one change,
        // and majorities of two such views always intersect.
        let prev = (self.prev_members != self.members
            && (self.seq_accepted.is_some() || self.last_ack_sent <= self.last_change))
            .then(|| self.prev_members.clone());
        let quorum_members = Quorum { cur: self.members.clone(), prev };
        if let Some(r) = &mut self.reset {
            r.phase = Phase::Preparing { ballot, quorum_members, promises, started: now, last_tx: now };
        }
        self.bcast(Body::Prepare { ballot });
        self.reset_progress();
    }

    fn own_promise(&self) -> PromiseInfo {
        PromiseInfo {
            addr: self.me,
            seq_accepted: self.seq_accepted,
            delivered: self.next_deliver,
            recv_upto: self.recv_upto,
            held: self.held_ranges(),
            accepted: self.accepted_val.clone(),
        }
    }

    fn held_ranges(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = Vec::new();
        for &s in self.history.keys() {
            match v.last_mut() {
                Some((_, b)) if *b == s => *b = s + 1,
                _ => {
                    if v.len() >= 1000 {
                        break;
                    }
                    v.push((s, s + 1));
                }
            }
        }
        v
    }

    fn reset_retransmit(&mut self) {
        let now = self.now;
        let Some(r) = &mut self.reset else { return };
        let mut sends: Vec<(u64, Body)> = Vec::new();
        let mut bcast: Option<Body> = None;
        match &mut r.phase {
            Phase::Preparing { ballot, last_tx, .. } => {
                *last_tx = now;
                bcast = Some(Body::Prepare { ballot: *ballot });
            }
            Phase::Fetching { promises, base, last_tx, .. } => {
                *last_tx = now;
                let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
                let mut s = min_d;
                let mut asked = 0;
                while s < *base && asked < 4 * RETRANS_BATCH {
                    if !self.history.contains_key(&s) {
                        // Ask a holder other than us, rotating by time.
                        let holders: Vec<u64> = promises
                            .values()
                            .filter(|p| p.addr != self.me && ranges_contain(&p.held, s))
                            .map(|p| p.addr)
                            .collect();
                        if !holders.is_empty() {
                            let h = holders[(now / 7 + s) as usize % holders.len()];
                            sends.push((h, Body::Retrans { from: s, to: s + 1, any: true }));
                        }
                        asked += 1;
                    }
                    s += 1;
                }
            }
            Phase::Accepting { ballot, view, last_tx, .. } => {
                *last_tx = now;
                bcast = Some(Body::Accept { ballot: *ballot, view: view.clone() });
            }
            _ => {}
        }
        if let Some(b) = bcast {
            self.bcast(b);
        }
        for (a, b) in sends {
            self.send_to(a, b);
        }
    }

    /// Whether `src` at `from` is a member in our view or the one before it.
    fn known_member(&self, src: u32, from: u64) -> bool {
        self.members.get(&src) == Some(&from) || self.prev_members.get(&src) == Some(&from)
    }

    /// An active member that hears its sequencer does not join resets.
    fn healthy(&self) -> bool {
        self.state == State::Active
            && (self.seqr.is_some() || self.now < self.last_from_seq + self.cfg.sequencer_timeout_us / 2)
    }

    fn on_prepare(&mut self, from: u64, src: u32, ballot: Ballot) {
        if !matches!(self.state, State::Active | State::Resetting) || self.healthy() {
            return;
        }
        if !self.known_member(src, from) || ballot.id != src {
            return;
        }
        self.max_round = self.max_round.max(ballot.round);
        if ballot > self.promised {
            self.promised = ballot;
            self.become_follower();
        } else if ballot < self.promised {
            let b = Body::Nack { ballot: self.promised };
            self.send_to(from, b);
            return;
        }
        let p = self.own_promise();
        self.send_to(
            from,
            Body::Promise {
                ballot,
                delivered: p.delivered,
                recv_upto: p.recv_upto,
                held: p.held,
                accepted: p.accepted,
                seq_accepted: p.seq_accepted,
            },
        );
    }

    fn on_promise(&mut self, src: u32, ballot: Ballot, info: PromiseInfo) {
        let Some(r) = &mut self.reset else { return };
        r.candidates.insert(src, info.recv_upto);
        if let Phase::Preparing { ballot: b, quorum_members, promises, .. } = &mut r.phase
            && *b == ballot
            && quorum_members.contains(src, info.addr)
        {
            promises.insert(src, info);
            self.reset_progress();
        }
    }

    fn on_nack(&mut self, ballot: Ballot) {
        self.max_round = self.max_round.max(ballot.round);
        let Some(r) = &self.reset else { return };
        let mine = match &r.phase {
            Phase::Preparing { ballot, .. }
            | Phase::Fetching { ballot, .. }
            | Phase::Accepting { ballot, .. } => *ballot,
            _ => return,
        };
        if ballot > mine {
            // Someone else coordinates a higher round; wait for it.
            self.become_follower();
        }
    }

    fn on_accept(&mut self, from: u64, src: u32, ballot: Ballot, view: View) {
        if !matches!(self.state, State::Active | State::Resetting) || self.healthy() {
            return;
        }
        if !self.known_member(src, from) || ballot.id != src || view.old_inc != self.inc {
            return;
        }
        self.max_round = self.max_round.max(ballot.round);
        if ballot < self.promised {
            let b = Body::Nack { ballot: self.promised };
            self.send_to(from, b);
            return;
        }
        if ballot > self.promised || self.state == State::Active {
            self.promised = ballot;
            self.become_follower();
        }
        if let Some(r) = &mut self.reset
            && let Phase::Follower { since } = &mut r.phase
        {
            *since = self.now;
        }
        self.accepted_val = Some((ballot, view));
        self.send_to(from, Body::Accepted { ballot });
    }

    fn on_accepted(&mut self, src: u32, ballot: Ballot) {
        let Some(r) = &mut self.reset else { return };
        if let Phase::Accepting { ballot: b, accepted_by, quorum_members, .. } = &mut r.phase
            && *b == ballot
            && quorum_members.has_id(src)
        {
            accepted_by.insert(src);
            self.reset_progress();
        }
    }

    /// Moves the coordinator's phases forward when it can.
    fn reset_progress(&mut self) {
        let now = self.now;
        let gather = self.cfg.retransmit_us * 3;
        let Some(r) = &self.reset else { return };
        match &r.phase {
            Phase::Preparing { ballot, quorum_members, promises, started, .. } => {
                let ids: BTreeSet<u32> = promises.keys().copied().collect();
                let ok = quorum_members.satisfied(&self.cfg, &ids);
                let all = quorum_members.cur.keys().all(|k| ids.contains(k));
                if !ok || (!all && now < started + gather) {
                    return;
                }
                let ballot = *ballot;
                let quorum_members = quorum_members.clone();
                let promises = promises.clone();
                let started = *started;
                // Adopt the highest accepted view, if any (Paxos rule).
                if let Some((_, v)) =
                    promises.values().filter_map(|p| p.accepted.clone()).max_by_key(|(b, _)| *b)
                {
                    self.start_accepting(ballot, quorum_members, v, started);
                    return;
                }
                let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
                let max_d = promises.values().map(|p| p.delivered).max().unwrap_or(0);
                let mut base = min_d;
                while promises.values().any(|p| ranges_contain(&p.held, base)) {
                    base += 1;
                }
                // If the old sequencer is among us, what it had not accepted
                // was delivered nowhere and may be dropped.
                if let Some(a) = promises.values().filter_map(|p| p.seq_accepted).max() {
                    base = base.min(a.max(max_d));
                }
                let base = base.max(max_d);
                if let Some(r) = &mut self.reset {
                    r.phase = Phase::Fetching { ballot, quorum_members, promises, base, started, last_tx: 0 };
                }
                self.reset_progress();
            }
            Phase::Fetching { ballot, quorum_members, promises, base, started, .. } => {
                let min_d = promises.values().map(|p| p.delivered).min().unwrap_or(0);
                let base = *base;
                if (min_d..base).any(|s| !self.history.contains_key(&s) && s >= self.next_deliver) {
                    if now >= self.reset_last_tx() + self.cfg.retransmit_us {
                        self.reset_retransmit();
                    }
                    return;
                }
                let (ballot, quorum_members, promises, started) =
                    (*ballot, quorum_members.clone(), promises.clone(), *started);
                let Some(view) = self.build_view(ballot, &promises, min_d, base) else {
                    // We are not in the group at `base` (our leave is ordered);
                    // let someone else coordinate.
                    self.become_follower();
                    return;
                };
                self.start_accepting(ballot, quorum_members, view, started);
            }
            Phase::Accepting { quorum_members, view, accepted_by, .. } => {
                if !quorum_members.satisfied(&self.cfg, accepted_by) {
                    return;
                }
                let view = view.clone();
                self.bcast(Body::Decided { view: view.clone() });
                self.on_decided(view);
            }
            _ => {}
        }
    }

    fn reset_last_tx(&self) -> u64 {
        match self.reset.as_ref().map(|r| &r.phase) {
            Some(
                Phase::Preparing { last_tx, .. }
                | Phase::Fetching { last_tx, .. }
                | Phase::Accepting { last_tx, .. },
            ) => *last_tx,
            _ => 0,
        }
    }

    fn start_accepting(&mut self, ballot: Ballot, quorum_members: Quorum, view: View, started: u64) {
        let now = self.now;
        self.accepted_val = Some((ballot, view.clone()));
        let mut accepted_by = BTreeSet::new();
        accepted_by.insert(self.my_id);
        if let Some(r) = &mut self.reset {
            r.phase = Phase::Accepting {
                ballot,
                quorum_members,
                view: view.clone(),
                accepted_by,
                started,
                last_tx: now,
            };
        }
        self.bcast(Body::Accept { ballot, view });
        self.reset_progress();
    }

    /// The coordinator's proposal, from the promises and the entries it holds.
    fn build_view(
        &self,
        _ballot: Ballot,
        promises: &BTreeMap<u32, PromiseInfo>,
        min_d: u64,
        base: u64,
    ) -> Option<View> {
        // Membership at `base`: our delivered view plus the entries up to base.
        let mut m = self.view.clone();
        for s in self.next_deliver..base {
            let e = self.history.get(&s)?;
            match &e.body {
                EntryBody::Join { addr } => {
                    m.insert(e.sender, *addr);
                }
                EntryBody::Leave { .. } => {
                    m.remove(&e.sender);
                }
                EntryBody::Remove { member } => {
                    m.remove(member);
                }
                EntryBody::Reset { removed, .. } => {
                    for (id, _) in removed {
                        m.remove(id);
                    }
                }
                EntryBody::App(_) => {}
            }
        }
        if !m.contains_key(&self.my_id) {
            return None;
        }
        let max_d = promises.values().map(|p| p.delivered).max().unwrap_or(0);
        let mut members = Vec::new();
        let mut removed = Vec::new();
        for (&id, &addr) in &m {
            match promises.get(&id) {
                Some(p) if p.addr == addr => {
                    members.push(ViewMember { id, addr, ack: p.recv_upto.min(base) })
                }
                _ => removed.push((id, addr)),
            }
        }
        Some(View {
            old_inc: self.inc,
            new_inc: self.inc.wrapping_add(1),
            sequencer: self.my_id,
            min_d,
            floor: max_d.min(base),
            base,
            members,
            removed,
        })
    }

    fn on_decided(&mut self, v: View) {
        if !matches!(self.state, State::Active | State::Resetting) {
            return;
        }
        if v.old_inc != self.inc {
            if v.old_inc.wrapping_sub(self.inc) < u32::MAX / 2 && v.old_inc != self.inc {
                // A newer incarnation we took no part in: we are out.
                self.expel();
            }
            return;
        }
        if !v.members.iter().any(|m| m.id == self.my_id && m.addr == self.me) {
            self.expel();
            return;
        }
        self.install(v);
    }

    fn install(&mut self, v: View) {
        let now = self.now;
        self.inc = v.new_inc;
        self.members = v.members.iter().map(|m| (m.id, m.addr)).collect();
        self.prev_members = self.members.clone();
        self.seq_accepted = None;
        self.members_base = v.base;
        self.history.retain(|&k, _| k < v.base);
        self.recv_upto = self.recv_upto.min(v.base);
        self.advance_recv();
        self.known_next = v.base + 1;
        self.accepted = self.accepted.max(v.floor).min(v.base);
        self.stable = self.stable.min(v.base);
        self.last_change = v.base;
        self.bb_pending.clear();
        if let Some(m) = self.send_queue.front_mut() {
            if m.stamped.is_some_and(|s| s >= v.base) {
                m.stamped = None;
            }
            m.last_tx = None;
        }
        self.promised = Ballot::default();
        self.accepted_val = None;
        self.reset = None;
        self.state = State::Active;
        self.last_from_seq = now;
        self.last_gap_req = None;
        let old_seq = self.seq_id;
        self.seq_id = v.sequencer;
        self.seq_addr = self.members.get(&v.sequencer).copied().unwrap_or(0);
        if old_seq != v.sequencer {
            self.events.push_back(Event::SequencerChanged { member: v.sequencer, addr: self.seq_addr });
        }
        self.unblock();
        let removed = v.removed.clone();
        let base = v.base;
        let new_inc = v.new_inc;
        let is_seq = v.sequencer == self.my_id;
        let acks: Vec<(u32, u64)> =
            v.members.iter().filter(|m| m.id != self.my_id).map(|m| (m.id, m.ack)).collect();
        self.decided = Some(v);
        if is_seq {
            let mut last_id = self.delivered_last_id.clone();
            for e in self.history.values() {
                if matches!(e.body, EntryBody::App(_) | EntryBody::Leave { .. }) {
                    let l = last_id.entry(e.sender).or_insert(0);
                    *l = (*l).max(e.msg_id);
                }
            }
            let next_member_id = self.max_known_id().saturating_add(1);
            self.seqr = Some(SeqState {
                next_seq: base,
                acks: acks.iter().copied().collect(),
                joined: acks.iter().map(|(id, _)| (*id, 0)).collect(),
                departing: BTreeMap::new(),
                last_heard: acks.iter().map(|(id, _)| (*id, now)).collect(),
                last_id,
                welcomes: BTreeMap::new(),
                next_member_id,
                last_bcast: now,
                last_sync_req: None,
                last_sync_bcast: now,
                leaving: false,
                blocked_dead_since: None,
                next_dead_check: 0,
            });
            self.stamp(
                Entry { sender: self.my_id, msg_id: 0, body: EntryBody::Reset { new_inc, removed } },
                false,
            );
            self.seq_progress();
            self.bcast_status(FLAG_SYNC);
        } else {
            self.seqr = None;
            self.send_ack();
            self.gap_repair();
        }
        self.pump_send();
    }
}
