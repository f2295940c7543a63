#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
//! Sequencer-based totally ordered group communication, after Kaashoek's
//! protocol as Amoeba used it, as a sans-IO state machine.
//!
//! One [`GroupMember`] per member per group. It never touches the network or a
//! clock: feed it received packets ([`GroupMember::handle_packet`]) and time
//! ([`GroupMember::handle_timeout`], at [`GroupMember::next_deadline`]), and
//! drain what it wants sent ([`GroupMember::poll_transmit`], to one member's
//! address or to the whole group) and what it reports
//! ([`GroupMember::poll_event`] / [`GroupMember::receive`]). Members are named
//! by opaque `u64` addresses (in the system, FLIP addresses); the group by a
//! 48-bit port. Time is a monotonic `u64` in microseconds.
//!
//! # Primitives
//!
//! | Amoeba | here |
//! |---|---|
//! | CreateGroup(port, r, max members, buffers, max size) | [`GroupMember::create_group`] with a [`Config`] |
//! | JoinGroup | [`GroupMember::join_group`] → [`Event::Joined`] |
//! | LeaveGroup | [`GroupMember::leave_group`] → [`Event::Left`] |
//! | SendToGroup | [`GroupMember::send_to_group`] (queued; `WouldBlock` when full) |
//! | ReceiveFromGroup | [`GroupMember::receive`] (message, more pending) |
//! | ResetGroup | [`GroupMember::reset_group`] (automatic by default) |
//! | GetInfoGroup | [`GroupMember::get_info`] |
//!
//! # Protocol
//!
//! * **Ordering.** One member is the sequencer. A member sends its message
//!   point-to-point to the sequencer (PB); messages longer than
//!   `bb_threshold` are broadcast by the sender and the sequencer broadcasts
//!   only a short accept carrying the sequence number (BB). The sequencer
//!   stamps the next sequence number and broadcasts. Members deliver strictly
//!   in sequence order, detect gaps (from later entries and from the
//!   sequencer's status broadcasts) and ask the sequencer, or after a few
//!   tries anyone, for retransmission.
//! * **No duplicates.** Each member numbers its messages; the sequencer stamps
//!   a (member, number) once and answers a retransmitted send with the entry
//!   it already stamped. A sender retransmits until it delivers its own message.
//! * **History.** The sequencer keeps stamped entries until every member has
//!   acknowledged them (acks ride on sends, on answers to the sequencer's
//!   periodic sync/alive broadcast, and every `history_size / 4` entries). When
//!   the history is full it stops stamping and asks for acks; senders are held
//!   back and `send_to_group` says `WouldBlock` once the local queue is full.
//! * **Resilience r.** With r > 0 the sequencer broadcasts the stamped entry as
//!   a request; members acknowledge; once r members other than the sequencer
//!   hold it the sequencer broadcasts an accept, and only accepted entries are
//!   delivered. So r crashes lose nothing that was delivered anywhere.
//! * **Membership.** Joins, leaves and removals of silent members are entries
//!   of the order, so every member sees them at the same point. Only one
//!   membership change is unacknowledged at a time. A leaving sequencer names a
//!   successor in its leave entry and stays until everyone has it.
//! * **Failures and reset.** Members that hear nothing from the sequencer for
//!   `sequencer_timeout_us` (it sends a status at least every `heartbeat_us`)
//!   reset the group; the sequencer removes members silent for
//!   `member_timeout_us`, and steps down if it no longer hears a majority.
//!   A reset is a single-decree Paxos among the members of the current
//!   incarnation: candidates are ranked by how much of the order they hold
//!   (ties by lowest id); the coordinator gathers promises from a majority
//!   (and from everyone who answers within a short window), learns what each
//!   holds, fetches the entries it lacks, and proposes a new incarnation:
//!   itself as sequencer, the members that answered, and a cut point. Every
//!   entry held by any answering member below the first gap is kept (what the
//!   old sequencer had not accepted may be dropped if it answered). Once a
//!   majority accepts, the view is decided and installed; the new sequencer
//!   stamps a reset entry ([`Event::GroupReset`]) and the group resumes.
//!   Members left out learn of it and report [`GroupError::Expelled`].
//!
//! # Example: driving two members by hand
//!
//! ```
//! use sequencer::{Config, Dest, Event, GroupMember};
//!
//! const PORT: u64 = 0x1234;
//! let secret = amoeba::Check([7, 1, 4, 2, 8, 5]); // random in real use
//! let (a_addr, b_addr) = (1, 2);
//! let mut now = 0;
//! let mut a = GroupMember::create_group(Config::default(), PORT, secret, a_addr, now);
//! // Joining takes a capability for the group: here the owner's.
//! let capability = a.owner_capability();
//! let mut b = GroupMember::join_group(Config::default(), &capability, b_addr, now);
//!
//! // A perfect network: hand every packet to its destination.
//! fn pump(now: u64, a: &mut GroupMember, b: &mut GroupMember) {
//!     loop {
//!         let mut moved = false;
//!         while let Some(t) = a.poll_transmit() {
//!             if matches!(t.dest, Dest::Group | Dest::Member(2)) {
//!                 b.handle_packet(now, a.address(), &t.bytes).unwrap();
//!             }
//!             moved = true;
//!         }
//!         while let Some(t) = b.poll_transmit() {
//!             if matches!(t.dest, Dest::Group | Dest::Member(1)) {
//!                 a.handle_packet(now, b.address(), &t.bytes).unwrap();
//!             }
//!             moved = true;
//!         }
//!         if !moved {
//!             break;
//!         }
//!     }
//! }
//!
//! pump(now, &mut a, &mut b);
//! assert!(b.is_member());
//!
//! now += 1_000;
//! a.send_to_group(now, b"hello").unwrap();
//! b.send_to_group(now, b"world").unwrap();
//! pump(now, &mut a, &mut b);
//! // Let timers run (retransmissions, heartbeats) for a while.
//! for _ in 0..10 {
//!     now += 10_000;
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//!     pump(now, &mut a, &mut b);
//! }
//!
//! // Both deliver the same messages in the same order.
//! let mut got_a = Vec::new();
//! while let Some((m, _more)) = a.receive() {
//!     got_a.push((m.seq, m.payload));
//! }
//! let mut got_b = Vec::new();
//! while let Some((m, _more)) = b.receive() {
//!     got_b.push((m.seq, m.payload));
//! }
//! assert_eq!(got_a.len(), 2);
//! assert_eq!(got_a, got_b);
//! // Membership events stay queued for poll_event.
//! assert!(matches!(a.poll_event(), Some(Event::Joined { .. })));
//! ```
//!
//! # Limitations
//!
//! * A reset needs a majority of the current membership (or
//!   `min_reset_members`): a two-member group does not survive a crash unless
//!   `min_reset_members = Some(1)`, which gives up partition safety.
//! * At most one message per member is in flight; more wait in its queue.
//! * A join sequenced but not yet accepted counts in the membership, so a
//!   crash during a join can leave the group short of a majority.

extern crate alloc;

pub mod ethernet;
mod member;
pub mod wire;

pub use member::{
    Config, Dest, Event, GroupError, GroupInfo, GroupMember, LeaveReason, Message, SendError, Transmit,
};
pub use wire::{DecodeError, NO_MEMBER};

use amoeba::Rights;
use amoeba::syscall::{GROUP_RIGHT_RECEIVE, GROUP_RIGHT_SEND};

/// The right a capability for a group needs to join it (and receive).
pub const RIGHT_RECEIVE: Rights = Rights(GROUP_RIGHT_RECEIVE);
/// The right a member's capability needs to send to the group.
pub const RIGHT_SEND: Rights = Rights(GROUP_RIGHT_SEND);
