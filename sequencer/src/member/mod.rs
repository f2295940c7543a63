//! The group member state machine: its state, the public API, timers and
//! packet dispatch. The protocol's parts live in the submodules.

mod receive;
mod reset;
mod send;
mod sequencing;

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, Port, Rights};

use crate::auth::{self, Key};
use crate::{RIGHT_RECEIVE, RIGHT_SEND};

use crate::wire::{
    Ballot, Body, Challenge, DATA_OVERHEAD, DecodeError, Entry, EntryBody, FLAG_NEED_ACK, FLAG_RETRANS,
    FLAG_SYNC, GroupParams, Header, Item, NO_MEMBER, PORT_MASK, Packet, View, ViewMember, WelcomeMember,
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
/// Most addresses the rate limit for unsolicited answers remembers.
const RATE_LIMIT_ADDRESSES: usize = 256;

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
    /// The group is full, the capability lacks [`RIGHT_RECEIVE`], or (once
    /// `join_timeout_us` has passed) the group answered only for another
    /// capability: this one does not verify.
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

/// A message offered to the sequencer (a member's `Send` or `BbData`, or
/// its own), and, while it cannot be stamped yet (history full, or a
/// membership change waiting for the previous one to settle), what waits.
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
    /// The joiner's capability key and nonce: the welcome is tagged and its
    /// secret encrypted for that join attempt alone.
    key: Key,
    nonce: u64,
}

/// A join in progress: what the joiner proves and how.
#[derive(Clone, Debug)]
struct JoinAttempt {
    /// The key of the capability it joins with ([`auth::capability_key`]).
    key: Key,
    /// This attempt's number, repeated in the sequencer's answers.
    nonce: u64,
    /// The capability's object number.
    object: u32,
    /// The sequencer's latest challenge, once one came.
    challenge: Option<Challenge>,
    /// An answer for this attempt came whose tag our capability's key does
    /// not give: the group does not know the capability (or someone forged
    /// the answer). If nothing better comes, the join fails as denied.
    unverified: bool,
}

#[derive(Clone, Debug)]
struct SequencerRole {
    /// The sequence number the next entry gets.
    next_seq: u64,
    /// What each member (but us) acknowledged holding: every entry below.
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
    /// When each member last showed it was at work (a send or an ack).
    last_heard: BTreeMap<u32, u64>,
    /// When each quiet member was last probed.
    last_probe: BTreeMap<u32, u64>,
    /// The highest message id stamped of each member (a retransmitted send
    /// gets its entry again instead of a second one).
    last_id: BTreeMap<u32, u32>,
    /// Welcomes for joins stamped but not yet known received, by member id.
    welcomes: BTreeMap<u32, PendingWelcome>,
    /// Submissions that wait for room in the history or for the last
    /// membership change to settle (at most `WAITING_MAX`).
    waiting: VecDeque<Submission>,
    /// The id the next joiner gets.
    next_member_id: u32,
    /// When we last broadcast (the heartbeat is due `heartbeat_us` after).
    last_bcast: u64,
    /// When we last asked every member for an ack.
    last_sync_req: Option<u64>,
    /// Our own leave is stamped: we stamp nothing more.
    leaving: bool,
    /// Since when removing dead members has been blocked.
    blocked_dead_since: Option<u64>,
    /// Not before this do we look at dead members again.
    next_dead_check: u64,
}

impl SequencerRole {
    /// A sequencer's state starting at `next_seq`, hearing from `members`
    /// (with what each is known to hold) as of `now`.
    fn new(next_seq: u64, now: u64, next_member_id: u32, members: &[(u32, u64)]) -> Self {
        SequencerRole {
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
    /// Our configuration (the group parameters replaced by the group's).
    cfg: Config,
    /// The group's port (48 bits).
    port: u64,
    /// The group's secret check (the random part of its owner capability).
    secret: Check,
    /// The key members tag their packets with (from `secret`).
    key: Key,
    /// The join handshake, while joining.
    join: Option<JoinAttempt>,
    /// Our address.
    me: u64,
    /// Joining, active, resetting, retiring or gone.
    state: State,
    /// Who is in the group, as we know it.
    membership: Membership,
    /// The order as we receive and deliver it.
    delivery: Delivery,
    /// The sequencer's state, while we are the sequencer.
    sequencer: Option<SequencerRole>,
    /// Our part in resets: the round we take part in and what we promised.
    round: ResetRound,
    /// When we last heard or asked whom.
    timers: Timers,
    /// The number our next message gets.
    next_msg_id: u32,
    /// Our messages not yet delivered back to us (the first in flight).
    send_queue: VecDeque<OutMsg>,
    /// Entries we stamped that go out together at the next poll.
    batch: Option<Batch>,
    /// Whether we told the user the group is blocked (a reset runs).
    blocked: bool,
    /// Packets dropped for a wrong tag.
    rejected: u64,
    /// Sends the sequencer refused: the member lacks [`RIGHT_SEND`].
    refused_sends: u64,
    /// Packets to send.
    out: VecDeque<Transmit>,
    /// Events for the user.
    events: VecDeque<Event>,
    /// The latest time we were given.
    now: u64,
}

/// Who is in the group, as this member knows it.
#[derive(Debug, Default)]
struct Membership {
    /// Our member id ([`NO_MEMBER`] until we are in).
    my_id: u32,
    /// What we may do, from the capability we joined with.
    rights: Rights,
    /// The rights each member (of `members`, `prev_members` and `view`)
    /// joined with: the sequencer stamps sends only of those with
    /// [`RIGHT_SEND`].
    member_rights: BTreeMap<u32, Rights>,
    /// The group's incarnation (bumped by every completed reset).
    incarnation: u32,
    /// The sequencer's member id.
    sequencer_id: u32,
    /// The sequencer's address.
    sequencer_addr: u64,
    /// Membership as of the received prefix (protocol view): id → address.
    members: BTreeMap<u32, u64>,
    /// Membership before the last change in `members` (views in the group
    /// differ by at most that one change).
    prev_members: BTreeMap<u32, u64>,
    /// Entries below this do not change `members` (installed by a reset or welcome).
    members_base: u64,
    /// Membership as of the delivered prefix (application view).
    view: BTreeMap<u32, u64>,
    /// Sequence number of the last membership change we received.
    last_change: u64,
    /// Sequence number of our join (0 for the creator).
    joined_at: u64,
    /// Highest member id ever seen in a join (see `max_known_id`).
    max_id_seen: u32,
    /// The highest stable mark we reported to the sequencer in this
    /// incarnation: until it passes `last_change`, no later change can have
    /// been stamped (see `change_allowed`).
    stable_reported: u64,
}

/// The order as this member receives and delivers it.
#[derive(Debug, Default)]
struct Delivery {
    /// Entries we hold by sequence number, from the delivery point (or the
    /// stable mark) up to the receive window's end.
    history: BTreeMap<u64, Entry>,
    /// The next sequence number to deliver.
    next_deliver: u64,
    /// We hold every entry below this (the contiguously received prefix).
    received_upto: u64,
    /// One past the highest sequence number we know is stamped.
    known_end: u64,
    /// Entries below this are accepted (deliverable).
    accepted: u64,
    /// Entries below this are held by every member.
    stable: u64,
    /// The highest message id delivered of each member (duplicate
    /// suppression across sequencers).
    delivered_last_id: BTreeMap<u32, u32>,
    /// BB payloads whose accept has not come yet: (sender, msg_id, payload).
    bb_pending: VecDeque<(u32, u32, Vec<u8>)>,
    /// BB accepts whose payload has not come yet: seq → (sender, msg_id,
    /// digest of the payload).
    bb_awaiting: BTreeMap<u64, (u32, u32, [u8; 8])>,
    /// When we last asked for missing entries.
    last_gap_request: Option<u64>,
    /// Requests for the same gap so far (every third goes to everyone).
    gap_attempts: u32,
    /// What we last acknowledged to the sequencer.
    last_ack_sent: u64,
}

/// This member's part in resets (a single-decree Paxos per incarnation).
#[derive(Debug, Default)]
struct ResetRound {
    /// The reset we take part in, if one runs.
    reset: Option<ResetState>,
    /// Our accepted mark when we stopped being the sequencer to reset.
    accepted_as_sequencer: Option<u64>,
    /// The highest ballot we promised.
    promised: Ballot,
    /// The highest round number we have seen.
    highest_round: u32,
    /// The view we accepted in this reset, with its ballot.
    accepted_view: Option<(Ballot, View)>,
    /// The view the last reset decided (told to stragglers).
    last_decided: Option<View>,
}

/// When this member last heard or asked whom.
#[derive(Debug, Default)]
struct Timers {
    /// When the sequencer's own work (entries, statuses) last reached us.
    last_heard_sequencer: u64,
    /// When we last probed a quiet sequencer.
    last_sequencer_probe: Option<u64>,
    /// When we last answered each address unasked (rate limit; at most
    /// `RATE_LIMIT_ADDRESSES` remembered).
    last_unsolicited: BTreeMap<u64, u64>,
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
            key: Key::NONE,
            join: None,
            me,
            state: State::Gone,
            membership: Membership {
                my_id: NO_MEMBER,
                sequencer_id: NO_MEMBER,
                rights: Rights::NONE,
                ..Membership::default()
            },
            delivery: Delivery::default(),
            sequencer: None,
            round: ResetRound::default(),
            timers: Timers { last_heard_sequencer: now, ..Timers::default() },
            next_msg_id: 1,
            send_queue: VecDeque::new(),
            batch: None,
            blocked: false,
            rejected: 0,
            refused_sends: 0,
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
        m.key = auth::group_key(m.port, &secret);
        m.membership.rights = Rights::ALL;
        m.membership.member_rights.insert(0, Rights::ALL);
        m.membership.my_id = 0;
        m.membership.sequencer_id = 0;
        m.membership.sequencer_addr = me;
        m.state = State::Active;
        m.membership.members.insert(0, me);
        m.membership.view.insert(0, me);
        m.delivery
            .history
            .insert(0, Entry { sender: 0, msg_id: 0, body: EntryBody::Join { addr: me, rights: 0xff } });
        m.delivery.next_deliver = 1;
        m.delivery.received_upto = 1;
        m.delivery.known_end = 1;
        m.delivery.accepted = 1;
        m.delivery.stable = 1;
        m.membership.members_base = 1;
        m.sequencer = Some(SequencerRole::new(1, now, 1, &[]));
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
    /// and the member may send only if it also carries [`RIGHT_SEND`]. The
    /// capability's check field never goes on the wire: the joiner answers
    /// the sequencer's challenge with a tag keyed by it.
    ///
    /// This join attempt's number comes from `now` and `me`: a driver that
    /// may join again from the same address at the same clock reading (a
    /// clock that starts at 0 in every run) should use
    /// [`join_group_with_nonce`](Self::join_group_with_nonce) with a random
    /// number instead.
    pub fn join_group(cfg: Config, capability: &Capability, me: u64, now: u64) -> Self {
        let nonce = now.rotate_left(17) ^ me ^ 0x6a6f_696e_6e6f_6e63;
        Self::join_group_with_nonce(cfg, capability, me, now, nonce)
    }

    /// JoinGroup with this join attempt's number given: a random `nonce`
    /// keeps a recorded answer to an earlier attempt from passing for an
    /// answer to this one.
    pub fn join_group_with_nonce(
        cfg: Config,
        capability: &Capability,
        me: u64,
        now: u64,
        nonce: u64,
    ) -> Self {
        let mut m = Self::blank(cfg, capability.port.to_u64(), me, now);
        m.membership.rights = capability.rights;
        m.join = Some(JoinAttempt {
            key: auth::capability_key(m.port, &capability.check),
            nonce,
            object: capability.object,
            challenge: None,
            unverified: false,
        });
        m.state = State::Joining { since: now, last_tx: now };
        m.send_join_request();
        m
    }

    /// Broadcasts a join request: the answer to the latest challenge, or
    /// (before one came) a request for one.
    fn send_join_request(&mut self) {
        let Some(j) = &self.join else { return };
        let body = Body::JoinReq {
            nonce: j.nonce,
            object: j.object,
            rights: self.membership.rights.0,
            challenge: j.challenge,
        };
        let key = j.key;
        let bytes = auth::seal(&key, self.me, &Packet { header: self.hdr(0), body });
        self.out.push_back(Transmit { dest: Dest::Group, bytes });
    }

    /// The owner capability of the group (all rights), for handing out
    /// (restricted with [`Capability::restrict`]) to processes that may join.
    pub fn owner_capability(&self) -> Capability {
        Capability::owner(Port::from_u64(self.port), 0, self.secret)
    }

    /// The challenge a joiner must answer now: it changes with every
    /// membership change (the joiner's own join among them).
    fn current_challenge(&self) -> Challenge {
        Challenge { inc: self.membership.incarnation, last_change: self.membership.last_change }
    }

    /// The key of the capability for this group with `rights` (object 0):
    /// what its holder tags its proof with.
    fn capability_key(&self, rights: Rights) -> Key {
        let capability = self.owner_capability().restrict(rights).unwrap_or(Capability::NULL);
        auth::capability_key(self.port, &capability.check)
    }

    /// A join request, at the sequencer: a challenge for a first request
    /// (or one answering an old challenge), the join for a proof that
    /// verifies. A stranger learns nothing from either: the challenge is
    /// tagged with the key of the capability it claims to hold.
    fn on_join_request(&mut self, from: u64, bytes: &[u8], body: Body) {
        let Body::JoinReq { nonce, object, rights, challenge } = body else { return };
        if let Some((&id, _)) = self.membership.members.iter().find(|(_, a)| **a == from) {
            // Already in (its welcome was lost): only a pending welcome is
            // sent again, and it is of use to the joiner alone.
            if self.rate_ok(from) {
                self.send_welcomes(Some(id));
            }
            return;
        }
        let rights = Rights(rights);
        let key = self.capability_key(rights);
        if challenge.is_some_and(|c| c == self.current_challenge()) && auth::verify(&key, from, bytes) {
            if object != 0 || !rights.contains(RIGHT_RECEIVE) {
                self.send_sealed(&key, from, Body::JoinDenied { nonce });
            } else {
                self.on_join_req(from, rights, nonce, key);
            }
        } else if self.rate_ok(from) {
            let body = Body::Challenge { nonce, challenge: self.current_challenge() };
            self.send_sealed(&key, from, body);
        }
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
        if !self.membership.rights.contains(RIGHT_SEND) {
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
            expected_seq: self.delivery.next_deliver,
            next_seq: self.delivery.known_end,
            unstable: self.delivery.known_end.saturating_sub(self.delivery.stable),
            member_id: self.membership.my_id,
            sequencer_id: self.membership.sequencer_id,
            incarnation: self.membership.incarnation,
            members: self.membership.view.iter().map(|(a, b)| (*a, *b)).collect(),
            send_queue: self.send_queue.len(),
        }
    }

    /// This member's address.
    pub fn address(&self) -> u64 {
        self.me
    }

    /// Our member id, if we are a member.
    pub fn member_id(&self) -> Option<u32> {
        (self.membership.my_id != NO_MEMBER && matches!(self.state, State::Active | State::Resetting))
            .then_some(self.membership.my_id)
    }

    /// Whether this member currently acts as sequencer.
    pub fn is_sequencer(&self) -> bool {
        self.sequencer.is_some() && self.state == State::Active
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
                if let Some(s) = &self.sequencer {
                    at(s.last_bcast + c.heartbeat_us);
                }
                return d;
            }
            State::Active | State::Resetting => {}
        }
        if let Some(s) = &self.sequencer {
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
            at(self.timers.last_heard_sequencer + c.sequencer_timeout_us);
            at(self.next_sequencer_probe());
        }
        if let Some(m) = self.send_queue.front()
            && m.stamped.is_none()
            && self.state == State::Active
        {
            at(m.last_tx.map_or(self.now, |t| t + self.send_interval(m)));
        }
        if self.state == State::Active && self.delivery.received_upto < self.delivery.known_end {
            at(self.delivery.last_gap_request.map_or(self.now, |t| t + c.retransmit_us));
        }
        if let Some(r) = &self.round.reset {
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
                    // Answered only with challenges our key cannot check: the
                    // capability is not one for this group.
                    let denied = self.join.as_ref().is_some_and(|j| j.unverified && j.challenge.is_none());
                    self.go();
                    let error = if denied { GroupError::JoinDenied } else { GroupError::JoinTimeout };
                    self.events.push_back(Event::Error(error));
                } else if now >= last_tx + c.retransmit_us {
                    self.state = State::Joining { since, last_tx: now };
                    self.send_join_request();
                }
                return;
            }
            State::Retiring { since, leave_seq } => {
                // Everyone must hold our leave and know it is accepted (it
                // reported the stable mark past it), or it cannot deliver it.
                let done = self.sequencer.as_ref().is_none_or(|s| {
                    s.acks.iter().all(|(id, &a)| {
                        a > leave_seq && s.stable_seen.get(id).is_some_and(|&st| st > leave_seq)
                    })
                });
                if done || now >= since + c.member_timeout_us {
                    self.go();
                } else if self.sequencer.as_ref().is_some_and(|s| now >= s.last_bcast + c.heartbeat_us) {
                    self.bcast_status(FLAG_SYNC);
                }
                return;
            }
            State::Active | State::Resetting => {}
        }
        if self.state == State::Active {
            if self.sequencer.is_some() {
                self.seq_timers();
            } else if now >= self.timers.last_heard_sequencer + c.sequencer_timeout_us {
                self.events.push_back(Event::Error(GroupError::SequencerFailed));
                if c.auto_reset {
                    self.enter_reset();
                } else {
                    // Report again after another timeout.
                    self.timers.last_heard_sequencer = now;
                }
            } else if now >= self.next_sequencer_probe() {
                // Quiet for a while: ask it to answer before giving up on it.
                self.timers.last_sequencer_probe = Some(now);
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
    ///
    /// Every packet must carry the tag of the key its kind calls for (see
    /// the crate docs, "Protection"); one that does not is dropped here and
    /// changes nothing, as is one addressed to another member.
    pub fn handle_packet(&mut self, now: u64, from: u64, bytes: &[u8]) -> Result<(), DecodeError> {
        let pkt = Packet::decode(bytes)?;
        self.now = self.now.max(now);
        let h = pkt.header;
        if h.port != self.port || from == self.me || (h.to != 0 && h.to != self.me) {
            return Ok(());
        }
        match pkt.body {
            Body::JoinReq { .. } => {
                if self.state == State::Active && self.sequencer.is_some() {
                    self.on_join_request(from, bytes, pkt.body);
                }
            }
            Body::Challenge { nonce, .. } | Body::Welcome { nonce, .. } | Body::JoinDenied { nonce } => {
                let Some(j) = &mut self.join else { return Ok(()) };
                if h.to != self.me || nonce != j.nonce {
                    return Ok(());
                }
                if auth::verify(&j.key, from, bytes) {
                    self.on_join_answer(from, h, pkt.body);
                } else {
                    j.unverified = true;
                }
            }
            body => {
                if auth::verify(&self.key, from, bytes) {
                    self.on_packet(from, h, body);
                } else {
                    self.rejected = self.rejected.saturating_add(1);
                }
            }
        }
        Ok(())
    }

    /// How many packets failed their tag (forged, or from a station that
    /// does not hold the group's key).
    pub fn rejected_packets(&self) -> u64 {
        self.rejected
    }

    /// How many sends this member, as sequencer, refused because the
    /// sending member's capability lacks [`RIGHT_SEND`].
    pub fn refused_sends(&self) -> u64 {
        self.refused_sends
    }

    // ------------------------------------------------------------ output helpers

    /// Our header for a packet to `to` (0: the whole group).
    fn hdr(&self, to: u64) -> Header {
        Header { port: self.port, inc: self.membership.incarnation, src: self.membership.my_id, to }
    }

    /// Encodes and tags a packet of ours with the group key.
    fn seal(&self, to: u64, body: Body) -> Vec<u8> {
        auth::seal(&self.key, self.me, &Packet { header: self.hdr(to), body })
    }

    /// Sends a packet to one address, tagged with `key` (a joiner's
    /// capability key) instead of the group key.
    fn send_sealed(&mut self, key: &Key, addr: u64, body: Body) {
        self.flush_batch();
        let bytes = auth::seal(key, self.me, &Packet { header: self.hdr(addr), body });
        self.out.push_back(Transmit { dest: Dest::Member(addr), bytes });
    }

    fn send_to(&mut self, addr: u64, body: Body) {
        self.flush_batch();
        let bytes = self.seal(addr, body);
        self.out.push_back(Transmit { dest: Dest::Member(addr), bytes });
    }

    fn bcast(&mut self, body: Body) {
        self.flush_batch();
        let bytes = self.seal(0, body);
        self.out.push_back(Transmit { dest: Dest::Group, bytes });
        if let Some(s) = &mut self.sequencer {
            s.last_bcast = self.now;
        }
    }

    fn status(&self, flags: u8) -> Option<Body> {
        let s = self.sequencer.as_ref()?;
        Some(Body::Status {
            next_seq: s.next_seq,
            accepted: self.delivery.accepted,
            stable: self.delivery.stable,
            flags,
        })
    }

    fn bcast_status(&mut self, flags: u8) {
        if let Some(body) = self.status(flags) {
            self.bcast(body);
        }
    }

    /// Tells the sequencer what we hold and know to be stable; `flags`
    /// [`FLAG_SYNC`] asks it to answer.
    fn send_ack(&mut self, flags: u8) {
        if self.sequencer.is_some() || self.membership.sequencer_addr == self.me {
            return;
        }
        self.delivery.last_ack_sent = self.delivery.received_upto;
        self.membership.stable_reported = self.membership.stable_reported.max(self.delivery.stable);
        let a = self.membership.sequencer_addr;
        self.send_to(a, Body::Ack { ack: self.delivery.received_upto, stable: self.delivery.stable, flags });
    }

    /// When a member not hearing its sequencer next asks it for a sign of life.
    fn next_sequencer_probe(&self) -> u64 {
        let quiet = self.timers.last_heard_sequencer + self.cfg.probe_after(self.cfg.sequencer_timeout_us);
        quiet.max(self.timers.last_sequencer_probe.map_or(0, |t| t + self.cfg.retransmit_us))
    }

    /// Puts the stamped entries not yet sent on the wire, as one packet.
    fn flush_batch(&mut self) {
        let Some(b) = self.batch.take() else { return };
        let body = Body::Data {
            seq: b.seq,
            accepted: self.delivery.accepted,
            stable: self.delivery.stable,
            flags: self.need_ack_flag(),
            items: b.items,
        };
        let bytes = self.seal(0, body);
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
        self.go();
        self.round.reset = None;
        self.send_queue.clear();
    }

    /// Out of the group for good: nothing more is sent or taken, and the
    /// group's secrets are forgotten (see "Protection" in the crate docs).
    fn go(&mut self) {
        self.state = State::Gone;
        self.sequencer = None;
        self.secret = Check([0; 6]);
        self.key = Key::NONE;
        self.join = None;
    }

    fn effective_r(&self) -> usize {
        (self.cfg.resilience as usize).min(self.membership.members.len().saturating_sub(1))
    }

    fn history_full(&self) -> bool {
        let Some(s) = &self.sequencer else { return false };
        let low = self.delivery.stable.min(self.delivery.next_deliver);
        s.next_seq.saturating_sub(low) >= self.cfg.history_size as u64
    }

    // ------------------------------------------------------------ packet dispatch

    /// An answer of the sequencer to our join request (its tag checked).
    fn on_join_answer(&mut self, from: u64, h: Header, body: Body) {
        let (State::Joining { .. }, Some(j)) = (self.state, &mut self.join) else { return };
        match body {
            Body::Challenge { nonce, challenge } if nonce == j.nonce && j.challenge != Some(challenge) => {
                j.challenge = Some(challenge);
                self.send_join_request();
            }
            Body::Welcome { nonce, .. } if nonce == j.nonce => self.on_welcome(from, h, body),
            Body::JoinDenied { nonce } if nonce == j.nonce => {
                self.go();
                self.events.push_back(Event::Error(GroupError::JoinDenied));
            }
            _ => {}
        }
    }

    fn on_packet(&mut self, from: u64, h: Header, body: Body) {
        if let Body::Decided { view } = &body {
            let view = view.clone();
            self.on_decided(view);
            return;
        }
        if matches!(self.state, State::Joining { .. } | State::Gone) {
            return;
        }
        if h.inc != self.membership.incarnation {
            self.on_other_inc(from, h, &body);
            return;
        }
        if self.state == State::Active
            && self.sequencer.is_some()
            && self.membership.members.get(&h.src) != Some(&from)
        {
            if self.serve_leaver(from, h.src, &body) {
                return;
            }
            // The sequencer knows the membership best: tell strangers.
            if h.src != NO_MEMBER && self.rate_ok(from) {
                self.send_to(from, Body::NotMember { member: h.src });
            }
            return;
        }
        let from_sequencer = from == self.membership.sequencer_addr && h.src == self.membership.sequencer_id;
        if from_sequencer && matches!(body, Body::Data { .. } | Body::Status { .. }) {
            // Only the sequencer's own work shows it alive: a sequencer that
            // stepped down still sends reset traffic.
            self.timers.last_heard_sequencer = self.now;
        }
        if self.membership.members.get(&h.src) == Some(&from)
            && matches!(body, Body::Send { .. } | Body::BbData { .. } | Body::Ack { .. })
            && let Some(s) = &mut self.sequencer
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
                if self.sequencer.is_some() && self.state == State::Active {
                    self.on_send(from, ack, Submission { src: h.src, msg_id, leave, payload, bb: false });
                }
            }
            Body::BbData { msg_id, ack, payload } => {
                if self.sequencer.is_some() && self.state == State::Active {
                    self.on_send(
                        from,
                        ack,
                        Submission { src: h.src, msg_id, leave: false, payload, bb: true },
                    );
                } else if self.membership.members.get(&h.src) == Some(&from) {
                    self.on_bb_payload(h.src, msg_id, payload);
                    self.after_input();
                }
            }
            Body::Data { seq, accepted, stable, flags, items } => {
                // Entries come from the sequencer, or, answering a request
                // for them, from a member (or a joiner we have not heard of).
                let relay = flags & FLAG_RETRANS != 0 && self.may_relay(h.src, from);
                if !from_sequencer && !relay {
                    return;
                }
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
                if self.sequencer.is_some() {
                    self.on_ack(from, h.src, ack, stable, flags);
                }
            }
            Body::Retrans { from: a, to, any } => {
                if self.sequencer.is_some() || any {
                    self.serve_retrans(from, a, to);
                } else if self.state == State::Resetting {
                    // Reset fetches are addressed to a holder directly.
                    self.serve_retrans(from, a, to);
                }
            }
            Body::NotMember { member } => {
                // Only an active sequencer says this, and it knows the
                // membership of this incarnation best (it may be a successor
                // we have not heard of yet). It names the id it refuses: an
                // answer to an earlier membership of ours does not count.
                if member == self.membership.my_id && self.known_member(h.src, from) {
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
            Body::Nack { ballot } => self.on_nack(from, h.src, ballot),
            Body::Accept { ballot, view } => self.on_accept(from, h.src, ballot, view),
            Body::Accepted { ballot } => self.on_accepted(from, h.src, ballot),
            Body::JoinReq { .. }
            | Body::Challenge { .. }
            | Body::Welcome { .. }
            | Body::JoinDenied { .. }
            | Body::Decided { .. } => {}
        }
    }

    /// Rate limit for unsolicited answers to one address.
    fn rate_ok(&mut self, from: u64) -> bool {
        let now = self.now;
        let ok = self.timers.last_unsolicited.get(&from).is_none_or(|&t| now >= t + self.cfg.retransmit_us);
        if ok {
            if self.timers.last_unsolicited.len() >= RATE_LIMIT_ADDRESSES {
                self.timers.last_unsolicited.clear();
            }
            self.timers.last_unsolicited.insert(from, now);
        }
        ok
    }

    fn on_other_inc(&mut self, from: u64, h: Header, body: &Body) {
        if matches!(body, Body::NotMember { member } if *member == self.membership.my_id)
            && newer(h.inc, self.membership.incarnation)
        {
            // A member of a later incarnation does not count us in it: we
            // were left out of a reset (or removed since).
            self.expel();
            return;
        }
        if h.src == NO_MEMBER || !self.rate_ok(from) {
            return;
        }
        if newer(self.membership.incarnation, h.inc) {
            // A straggler of an older incarnation: tell it how the reset
            // went, or, if we cannot (we joined since), that it is out.
            match self.round.last_decided.clone() {
                Some(v) if v.old_inc == h.inc => self.send_to(from, Body::Decided { view: v }),
                _ if self.membership.members.get(&h.src) != Some(&from) => {
                    self.send_to(from, Body::NotMember { member: h.src })
                }
                _ => {}
            }
        } else {
            // We are behind: make the sender tell us.
            let b = Body::ResetStatus { recv_upto: self.delivery.received_upto };
            self.send_to(from, b);
        }
    }

    // ------------------------------------------------------------ joining

    fn on_welcome(&mut self, from: u64, h: Header, body: Body) {
        let Body::Welcome {
            nonce,
            member_id,
            join_seq,
            sequencer,
            accepted,
            stable,
            params,
            members,
            secret,
        } = body
        else {
            return;
        };
        let Some(j) = self.join.take_if(|j| j.nonce == nonce) else { return };
        if !members.iter().any(|m| m.id == member_id && m.addr == self.me)
            || !members.iter().any(|m| m.id == sequencer && m.addr == from && h.src == sequencer)
        {
            self.join = Some(j);
            return;
        }
        self.cfg.set_params(&params);
        let pad = auth::welcome_pad(&j.key, nonce, self.me);
        let mut plain = secret;
        plain.iter_mut().zip(pad).for_each(|(b, p)| *b ^= p);
        self.secret = Check(plain);
        self.key = auth::group_key(self.port, &self.secret);
        self.membership.member_rights = members.iter().map(|m| (m.id, Rights(m.rights))).collect();
        self.membership.member_rights.insert(member_id, self.membership.rights);
        self.membership.my_id = member_id;
        self.membership.incarnation = h.inc;
        self.membership.sequencer_id = sequencer;
        self.membership.sequencer_addr = from;
        self.membership.members = members.iter().map(|m| (m.id, m.addr)).collect();
        // Before our join: nobody can have reported it stable yet, so a
        // reset may count on that membership too (see `change_allowed`).
        self.membership.prev_members = self
            .membership
            .members
            .iter()
            .filter(|&(&id, _)| id != member_id)
            .map(|(&a, &b)| (a, b))
            .collect();
        // Our own join entry, which we can tell exactly: a reset may need it
        // from us if the sequencer dies before the others have it.
        self.delivery.history.insert(
            join_seq,
            Entry {
                sender: member_id,
                msg_id: 0,
                body: EntryBody::Join { addr: self.me, rights: self.membership.rights.0 },
            },
        );
        self.membership.view = self.membership.members.clone();
        self.delivery.delivered_last_id = members.iter().map(|m| (m.id, m.last_msg_id)).collect();
        self.membership.members_base = join_seq + 1;
        self.delivery.next_deliver = join_seq + 1;
        self.delivery.received_upto = join_seq + 1;
        self.delivery.known_end = join_seq + 1;
        self.delivery.accepted = accepted.max(join_seq + 1);
        self.delivery.stable = stable.min(join_seq + 1);
        self.membership.last_change = join_seq;
        self.membership.joined_at = join_seq;
        self.membership.max_id_seen = members.iter().map(|m| m.id).max().unwrap_or(member_id);
        self.state = State::Active;
        self.timers.last_heard_sequencer = self.now;
        self.events.push_back(Event::Joined { member_id, seq: join_seq });
        self.send_ack(0);
    }
}
