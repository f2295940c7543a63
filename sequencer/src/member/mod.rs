//! The group member state machine: its state, the public API, timers and
//! packet dispatch. The protocol's parts live in the submodules.

mod receive;
mod reset;
mod send;
mod sequencing;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, Port, Private, Rights, verify};

use crate::{RIGHT_RECEIVE, RIGHT_SEND};

use crate::wire::{
    Ballot, Body, DATA_OVERHEAD, DecodeError, Entry, EntryBody, FLAG_NEED_ACK, FLAG_RETRANS, FLAG_SYNC,
    GroupParams, Header, Item, NO_MEMBER, PORT_MASK, Packet, View, ViewMember, WelcomeMember,
};

/// Most entries sent in answer to one retransmission request.
const RETRANS_BATCH: u64 = 16;
/// Most BB payloads kept while waiting for their accept, and most BB
/// accepts kept while waiting for their payload.
const BB_PENDING_MAX: usize = 64;
/// A sender's retransmission interval doubles with each try up to this
/// many times (`retransmit_us << MAX_BACKOFF_SHIFT` at most).
const MAX_BACKOFF_SHIFT: u32 = 3;
/// Most submissions the sequencer keeps while it cannot stamp them yet.
const WAITING_MAX: usize = 64;

/// Configuration of one member. The group parameters (`resilience`,
/// `max_members`, `history_size`, `max_message_size`, `bb_threshold`,
/// `min_reset_members`) are taken from the creator; a joiner's values are
/// replaced by the group's.
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
    /// Members needed to complete a reset (a group parameter). `None` means a
    /// majority of the current membership, which rules out two groups
    /// forming on both sides of a partition. A smaller number lets a
    /// minority continue, at that risk: see the crate docs.
    pub min_reset_members: Option<u16>,
    /// Start `reset_group` by itself when the sequencer is found dead.
    pub auto_reset: bool,
    /// The sequencer packs consecutive stamped entries (and retransmissions)
    /// into one packet up to this many bytes; keep it within a frame.
    pub max_batch_bytes: u32,
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
            max_batch_bytes: 1400,
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
            min_reset_members: self.min_reset_members.unwrap_or(0),
        }
    }
    fn set_params(&mut self, p: &GroupParams) {
        self.resilience = p.resilience;
        self.max_members = p.max_members;
        self.history_size = p.history_size.max(2);
        self.max_message_size = p.max_message_size;
        self.bb_threshold = p.bb_threshold;
        self.min_reset_members = (p.min_reset_members > 0).then_some(p.min_reset_members);
    }
    /// Silence after which the sequencer probes a member, and a member its
    /// sequencer, once per retransmission interval, before giving up on it.
    fn probe_after(&self, timeout: u64) -> u64 {
        (timeout / 4).max(2 * self.heartbeat_us).min(timeout / 2)
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
    /// Transmissions to the current sequencer (backoff; a BB message is
    /// broadcast on the first and sent to the sequencer alone after).
    tries: u32,
}

impl OutMsg {
    fn new(msg_id: u32, leave: bool, payload: Vec<u8>) -> Self {
        OutMsg { msg_id, leave, payload, stamped: None, last_tx: None, tries: 0 }
    }
}

/// A member that left, until it has everything up to its leave.
#[derive(Clone, Copy, Debug)]
struct Leaver {
    addr: u64,
    /// Sequence number of its leave.
    seq: u64,
    /// It holds every entry below this.
    ack: u64,
    since: u64,
}

/// A message the sequencer could not stamp yet (history full, or a
/// membership change waiting for the previous one to settle).
#[derive(Clone, Debug)]
struct Submission {
    src: u32,
    msg_id: u32,
    leave: bool,
    payload: Vec<u8>,
    bb: bool,
}

/// Stamped entries not yet put on the wire: consecutive ones go out in
/// one packet.
#[derive(Clone, Debug)]
struct Batch {
    seq: u64,
    items: Vec<Item>,
    bytes: usize,
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
    /// Members whose leave is stamped and that may still need entries up
    /// to it (they hold back stability until they have them, or for a
    /// member timeout).
    leavers: BTreeMap<u32, Leaver>,
    /// What each member last said it knows to be stable: a membership
    /// change waits until every member knows the previous one is held by
    /// all (see `change_allowed`).
    stable_seen: BTreeMap<u32, u64>,
    last_heard: BTreeMap<u32, u64>,
    /// When each quiet member was last probed.
    last_probe: BTreeMap<u32, u64>,
    last_id: BTreeMap<u32, u32>,
    welcomes: BTreeMap<u32, PendingWelcome>,
    waiting: VecDeque<Submission>,
    next_member_id: u32,
    last_bcast: u64,
    last_sync_req: Option<u64>,
    leaving: bool,
    blocked_dead_since: Option<u64>,
    next_dead_check: u64,
}

impl SeqState {
    /// A sequencer's state starting at `next_seq`, hearing from `members`
    /// (with what each is known to hold) as of `now`.
    fn new(next_seq: u64, now: u64, next_member_id: u32, members: &[(u32, u64)]) -> Self {
        SeqState {
            next_seq,
            acks: members.iter().copied().collect(),
            joined: members.iter().map(|&(id, _)| (id, 0)).collect(),
            departing: BTreeMap::new(),
            stable_seen: BTreeMap::new(),
            leavers: BTreeMap::new(),
            last_heard: members.iter().map(|&(id, _)| (id, now)).collect(),
            last_probe: BTreeMap::new(),
            last_id: BTreeMap::new(),
            welcomes: BTreeMap::new(),
            waiting: VecDeque::new(),
            next_member_id,
            last_bcast: now,
            last_sync_req: None,
            leaving: false,
            blocked_dead_since: None,
            next_dead_check: 0,
        }
    }

    /// Member `id` left or was removed by the entry at `seq`.
    fn depart(&mut self, id: u32, seq: u64) {
        if let Some(a) = self.acks.remove(&id) {
            self.departing.insert(id, (seq, a));
        }
        self.joined.remove(&id);
        self.last_heard.remove(&id);
        self.last_probe.remove(&id);
        self.stable_seen.remove(&id);
        self.waiting.retain(|w| w.src != id);
    }
}

#[derive(Clone, Debug)]
struct PromiseInfo {
    addr: u64,
    seq_accepted: Option<u64>,
    delivered: u64,
    joined: u64,
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
    /// A round of ours found us outside the new incarnation: only follow.
    abstain: bool,
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
    /// Sequence number of our join (0 for the creator).
    joined_at: u64,
    /// Highest member id ever seen in a join (see `max_known_id`).
    max_id_seen: u32,
    /// The highest stable mark we reported to the sequencer in this
    /// incarnation: until it passes `last_change`, no later change can have
    /// been stamped (see `change_allowed`).
    stable_reported: u64,
    delivered_last_id: BTreeMap<u32, u32>,
    /// BB payloads whose accept has not come yet: (sender, msg_id, payload).
    bb_pending: VecDeque<(u32, u32, Vec<u8>)>,
    /// BB accepts whose payload has not come yet: seq → (sender, msg_id).
    bb_awaiting: BTreeMap<u64, (u32, u32)>,
    next_msg_id: u32,
    send_queue: VecDeque<OutMsg>,
    last_from_seq: u64,
    /// When we last probed a quiet sequencer.
    last_seq_probe: Option<u64>,
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
    batch: Option<Batch>,
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
/// Memberships that differ by one change at most; a majority of any of
/// them will do (majorities of two such memberships always intersect).
struct Quorum {
    views: Vec<BTreeMap<u32, u64>>,
}

impl Quorum {
    fn contains(&self, id: u32, addr: u64) -> bool {
        self.views.iter().any(|v| v.get(&id) == Some(&addr))
    }
    fn has_id(&self, id: u32) -> bool {
        self.views.iter().any(|v| v.contains_key(&id))
    }
    fn satisfied(&self, cfg: &Config, ids: &BTreeSet<u32>) -> bool {
        let enough =
            |m: &BTreeMap<u32, u64>| m.keys().filter(|k| ids.contains(k)).count() >= quorum(cfg, m.len());
        self.views.iter().any(enough)
    }
    fn contains_addr(&self, addr: u64) -> bool {
        self.views.iter().any(|v| v.values().any(|&a| a == addr))
    }
    /// Adds the memberships of `other` not yet among ours.
    fn add(&mut self, other: Quorum) {
        for v in other.views {
            if !self.views.contains(&v) {
                self.views.push(v);
            }
        }
    }
    /// Whether everyone in any of the memberships is in `ids`.
    fn all_in(&self, ids: &BTreeSet<u32>) -> bool {
        self.views.iter().all(|v| v.keys().all(|k| ids.contains(k)))
    }
}

/// Whether incarnation `a` comes after `b` (incarnations wrap around).
fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < u32::MAX / 2
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
            joined_at: 0,
            max_id_seen: 0,
            stable_reported: 0,
            delivered_last_id: BTreeMap::new(),
            bb_pending: VecDeque::new(),
            bb_awaiting: BTreeMap::new(),
            next_msg_id: 1,
            send_queue: VecDeque::new(),
            last_from_seq: now,
            last_seq_probe: None,
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
            batch: None,
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
        m.seqr = Some(SeqState::new(1, now, 1, &[]));
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
    /// member is out when [`Event::Left`] comes (or, while still joining, when
    /// the join fails). Leaving a group whose only member we are ends it at
    /// once. Keep driving the member until [`is_gone`](Self::is_gone): the
    /// leave is retransmitted until it is in the order, so the others do not
    /// have to detect a failure.
    pub fn leave_group(&mut self, now: u64) -> Result<(), SendError> {
        self.now = now;
        if !matches!(self.state, State::Active | State::Resetting | State::Joining { .. }) {
            return Err(SendError::NotMember);
        }
        if self.send_queue.iter().any(|m| m.leave) {
            return Ok(());
        }
        let msg_id = self.next_msg_id;
        self.next_msg_id = self.next_msg_id.wrapping_add(1);
        self.send_queue.push_back(OutMsg::new(msg_id, true, Vec::new()));
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
        self.send_queue.push_back(OutMsg::new(msg_id, false, payload.to_vec()));
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

    /// Next packet to send. Entries stamped since the last call go out
    /// together: hand over all packets that have arrived before draining.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.flush_batch();
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
            if let Some(t) = self.next_member_probe() {
                at(t);
            }
            if let Some(t) = s.blocked_dead_since {
                at(t + c.member_timeout_us);
            }
            if let Some(t) = s.leavers.values().map(|l| l.since).min() {
                at(t + c.member_timeout_us);
            }
        } else if self.state == State::Active {
            at(self.last_from_seq + c.sequencer_timeout_us);
            at(self.next_sequencer_probe());
        }
        if let Some(m) = self.send_queue.front()
            && m.stamped.is_none()
            && self.state == State::Active
        {
            at(m.last_tx.map_or(self.now, |t| t + self.send_interval(m)));
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
                // Everyone must hold our leave and know it is accepted (it
                // reported the stable mark past it), or it cannot deliver it.
                let done = self.seqr.as_ref().is_none_or(|s| {
                    s.acks.iter().all(|(id, &a)| {
                        a > leave_seq && s.stable_seen.get(id).is_some_and(|&st| st > leave_seq)
                    })
                });
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
            } else if now >= self.next_sequencer_probe() {
                // Quiet for a while: ask it to answer before giving up on it.
                self.last_seq_probe = Some(now);
                self.send_ack(FLAG_SYNC);
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
        self.flush_batch();
        let bytes = Packet { header: self.hdr(), body }.encode();
        self.out.push_back(Transmit { dest: Dest::Member(addr), bytes });
    }

    fn bcast(&mut self, body: Body) {
        self.flush_batch();
        let bytes = Packet { header: self.hdr(), body }.encode();
        self.out.push_back(Transmit { dest: Dest::Group, bytes });
        if let Some(s) = &mut self.seqr {
            s.last_bcast = self.now;
        }
    }

    fn status(&self, flags: u8) -> Option<Body> {
        let s = self.seqr.as_ref()?;
        Some(Body::Status { next_seq: s.next_seq, accepted: self.accepted, stable: self.stable, flags })
    }

    fn bcast_status(&mut self, flags: u8) {
        if let Some(body) = self.status(flags) {
            self.bcast(body);
        }
    }

    /// Tells the sequencer what we hold and know to be stable; `flags`
    /// [`FLAG_SYNC`] asks it to answer.
    fn send_ack(&mut self, flags: u8) {
        if self.seqr.is_some() || self.seq_addr == self.me {
            return;
        }
        self.last_ack_sent = self.recv_upto;
        self.stable_reported = self.stable_reported.max(self.stable);
        let a = self.seq_addr;
        self.send_to(a, Body::Ack { ack: self.recv_upto, stable: self.stable, flags });
    }

    /// When a member not hearing its sequencer next asks it for a sign of life.
    fn next_sequencer_probe(&self) -> u64 {
        let quiet = self.last_from_seq + self.cfg.probe_after(self.cfg.sequencer_timeout_us);
        quiet.max(self.last_seq_probe.map_or(0, |t| t + self.cfg.retransmit_us))
    }

    /// Puts the stamped entries not yet sent on the wire, as one packet.
    fn flush_batch(&mut self) {
        let Some(b) = self.batch.take() else { return };
        let body = Body::Data {
            seq: b.seq,
            accepted: self.accepted,
            stable: self.stable,
            flags: self.need_ack_flag(),
            items: b.items,
        };
        let bytes = Packet { header: self.hdr(), body }.encode();
        self.out.push_back(Transmit { dest: Dest::Group, bytes });
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
        self.batch = None;
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
            self.on_other_inc(from, h, &body);
            return;
        }
        if self.state == State::Active && self.seqr.is_some() && self.members.get(&h.src) != Some(&from) {
            if self.serve_leaver(from, h.src, &body) {
                return;
            }
            // The sequencer knows the membership best: tell strangers.
            if h.src != NO_MEMBER && self.rate_ok(from) {
                self.send_to(from, Body::NotMember);
            }
            return;
        }
        let from_sequencer = from == self.seq_addr && h.src == self.seq_id;
        if from_sequencer && matches!(body, Body::Data { .. } | Body::Status { .. }) {
            // Only the sequencer's own work shows it alive: a sequencer that
            // stepped down still sends reset traffic.
            self.last_from_seq = self.now;
        }
        if self.members.get(&h.src) == Some(&from)
            && matches!(body, Body::Send { .. } | Body::BbData { .. } | Body::Ack { .. })
            && let Some(s) = &mut self.seqr
            && let Some(t) = s.last_heard.get_mut(&h.src)
        {
            // Only a member at work counts as alive: one stuck in a reset
            // the group does not join must be removed (or reset with).
            *t = self.now;
        }
        if let State::Retiring { .. } = self.state {
            match body {
                Body::Ack { ack, stable, flags } => self.on_ack(from, h.src, ack, stable, flags),
                Body::Retrans { from: a, to, .. } => self.serve_retrans(from, a, to),
                _ => {}
            }
            return;
        }
        self.dispatch(from, h, body, from_sequencer);
    }

    /// A packet of our incarnation from a member, to its handler.
    fn dispatch(&mut self, from: u64, h: Header, body: Body, from_sequencer: bool) {
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
                    self.on_bb_payload(h.src, msg_id, payload);
                    self.after_input();
                }
            }
            Body::Data { seq, accepted, stable, flags, items } => {
                let next = seq + items.len() as u64;
                for (seq, item) in (seq..).zip(items) {
                    self.on_item(seq, item);
                }
                if from_sequencer {
                    self.on_seq_info(next, accepted, stable, flags);
                }
                self.after_input();
            }
            Body::Status { next_seq, accepted, stable, flags } => {
                if from_sequencer {
                    self.maybe_abort_reset();
                    self.on_seq_info(next_seq, accepted, stable, flags);
                    self.after_input();
                }
            }
            Body::Ack { ack, stable, flags } => {
                if self.seqr.is_some() {
                    self.on_ack(from, h.src, ack, stable, flags);
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
            Body::Promise { ballot, delivered, joined, recv_upto, held, accepted, seq_accepted } => self
                .on_promise(
                    h.src,
                    ballot,
                    PromiseInfo { addr: from, seq_accepted, delivered, joined, recv_upto, held, accepted },
                ),
            Body::Nack { ballot } => self.on_nack(h.src, ballot),
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

    fn on_other_inc(&mut self, from: u64, h: Header, body: &Body) {
        if matches!(body, Body::NotMember) && newer(h.inc, self.inc) {
            // A member of a later incarnation does not count us in it: we
            // were left out of a reset (or removed since).
            self.expel();
            return;
        }
        if h.src == NO_MEMBER || !self.rate_ok(from) {
            return;
        }
        if newer(self.inc, h.inc) {
            // A straggler of an older incarnation: tell it how the reset
            // went, or, if we cannot (we joined since), that it is out.
            match self.decided.clone() {
                Some(v) if v.old_inc == h.inc => self.send_to(from, Body::Decided { view: v }),
                _ if self.members.get(&h.src) != Some(&from) => self.send_to(from, Body::NotMember),
                _ => {}
            }
        } else {
            // We are behind: make the sender tell us.
            let b = Body::ResetStatus { recv_upto: self.recv_upto };
            self.send_to(from, b);
        }
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
        // Before our join: nobody can have reported it stable yet, so a
        // reset may count on that membership too (see `change_allowed`).
        self.prev_members =
            self.members.iter().filter(|&(&id, _)| id != member_id).map(|(&a, &b)| (a, b)).collect();
        // Our own join entry, which we can tell exactly: a reset may need it
        // from us if the sequencer dies before the others have it.
        self.history.insert(
            join_seq,
            Entry { sender: member_id, msg_id: 0, body: EntryBody::Join { addr: self.me } },
        );
        self.view = self.members.clone();
        self.delivered_last_id = members.iter().map(|m| (m.id, m.last_msg_id)).collect();
        self.members_base = join_seq + 1;
        self.next_deliver = join_seq + 1;
        self.recv_upto = join_seq + 1;
        self.known_next = join_seq + 1;
        self.accepted = accepted.max(join_seq + 1);
        self.stable = stable.min(join_seq + 1);
        self.last_change = join_seq;
        self.joined_at = join_seq;
        self.max_id_seen = members.iter().map(|m| m.id).max().unwrap_or(member_id);
        self.state = State::Active;
        self.last_from_seq = self.now;
        self.events.push_back(Event::Joined { member_id, seq: join_seq });
        self.send_ack(0);
    }
}
