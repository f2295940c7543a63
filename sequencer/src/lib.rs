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
//! 48-bit port. Time is a monotonic `u64` in microseconds. A driver that
//! hands over every packet that has arrived before draining
//! `poll_transmit` lets the sequencer batch what it stamps meanwhile.
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
//!   only a short accept naming it (BB) — the sequencer's own long messages
//!   too. The sequencer stamps the next sequence number and broadcasts.
//!   Entries stamped before the driver next polls for output go out in one
//!   packet (up to `max_batch_bytes`): several PB messages, several BB
//!   accepts, and the accept mark ride together. Members deliver strictly in
//!   sequence order, take a BB payload and its accept in either order, detect
//!   gaps (from later entries and from the sequencer's status broadcasts)
//!   and ask the sequencer, or after a few tries anyone, for retransmission
//!   (answered with runs of entries in one packet).
//! * **No duplicates.** Each member numbers its messages; the sequencer stamps
//!   a (member, number) once and answers a retransmitted send with the entry
//!   it already stamped. A sender retransmits until it delivers its own
//!   message, backing off exponentially (`retransmit_us` doubling up to 8×);
//!   a BB message is broadcast once and then sent to the sequencer alone.
//! * **History.** The sequencer keeps stamped entries until every member has
//!   acknowledged them (acks ride on sends, on answers to the sequencer's
//!   periodic sync/alive broadcast, and every `history_size / 4` entries). When
//!   the history is full it stops stamping, keeps what arrives (one message
//!   per member at most) and asks for acks; it stamps what waited as soon as
//!   there is room. `send_to_group` says `WouldBlock` once the local queue is
//!   full.
//! * **Resilience r.** With r > 0 the sequencer broadcasts the stamped entry as
//!   a request; members acknowledge; once r members other than the sequencer
//!   hold it the sequencer broadcasts an accept, and only accepted entries are
//!   delivered. So r crashes lose nothing that was delivered anywhere.
//! * **Membership.** Joins, leaves and removals of silent members are entries
//!   of the order, so every member sees them at the same point. A change
//!   settles in two steps: every member holds it, then every member has
//!   seen the stable mark pass it and said so in an ack; only then may the
//!   next change be stamped. So the members' views differ by one change at
//!   most, and a member that has not yet reported the last change stable
//!   knows no later change exists. A member that left is served until it has
//!   everything up to its leave. A leaving sequencer names a successor in its
//!   leave entry and stays until everyone has it.
//! * **Failures.** The sequencer sends a status at least every
//!   `heartbeat_us`; a member quiet for a quarter of `member_timeout_us` (at
//!   least two heartbeats) is asked on its own once per `retransmit_us`,
//!   and a member that has not heard its sequencer for a quarter of
//!   `sequencer_timeout_us` asks it likewise, so loss alone does not make a
//!   live member look dead (the simulation asserts that no run up to 10 %
//!   loss, and at most 1 in 10,000 at 20 %, counts a live member failed).
//!   Only the sequencer's own work (entries,
//!   statuses) shows it alive, and only a member's sends and acks show it
//!   alive. Members that hear nothing from the sequencer for
//!   `sequencer_timeout_us` reset the group; the sequencer removes members
//!   silent for `member_timeout_us`, and steps down if it no longer hears
//!   enough members (see below). A member that gave up on its sequencer too
//!   early goes back to work when it hears it, unless it is bound to
//!   someone else's reset round.
//! * **Reset.** A single-decree Paxos among the members of the current
//!   incarnation: candidates are ranked by how much of the order they hold
//!   (ties by lowest id); the coordinator gathers promises from a majority of
//!   its view — or of the view before its last change while that change is
//!   unsettled, or of the view after a change it holds past a gap (all
//!   these differ by one change, so their majorities intersect) — and from
//!   everyone who answers within a short window, learns what each holds,
//!   fetches the entries it lacks, and proposes a new incarnation: itself as
//!   sequencer, the members that answered, and a cut point. Every entry some
//!   answering member holds without a gap is kept, and everything a member
//!   delivered (what the old sequencer had not accepted may be dropped if it
//!   answered; a member that joined after entries nobody holds any more
//!   cannot stay). Once a majority accepts, the view is decided and
//!   installed; the new sequencer stamps a reset entry
//!   ([`Event::GroupReset`]) and the group resumes. Members left out, and
//!   members that delivered past the cut, learn of it and report
//!   [`GroupError::Expelled`].
//!
//! # Minimum reset size: availability against partition safety
//!
//! By default a reset needs a majority of the membership, and a sequencer
//! that no longer hears a majority stops. Two majorities always share a
//! member, so at most one side of a partition can go on: the group can never
//! split into two groups with different orders. The price is that a group
//! that loses half its members stops — in particular a two-member group
//! cannot survive the death of either member, since the survivor cannot
//! tell a dead peer from a cut cable.
//!
//! Like Amoeba's ResetGroup, the application may instead name the members a
//! reset needs: [`Config::min_reset_members`], a group parameter fixed by
//! the creator and handed to joiners. With `Some(1)` a two-member group goes
//! on alone after its peer dies. But if the peer was only cut off, it goes
//! on alone too: two groups then order messages independently, and when the
//! network heals the members of the older incarnation learn that they were
//! left out ([`GroupError::Expelled`]) — what they delivered meanwhile is
//! not in the other side's order. Choose a smaller number only where
//! partitions cannot happen or where the application can reconcile.

//! # Example: driving two members by hand
//!
//! ```
//! use sequencer::{Config, Dest, Event, GroupMember};
//!
//! const PORT: u64 = 0x1234;
//! let secret = amoeba_abi::Check([7, 1, 4, 2, 8, 5]); // random in real use
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
//! * A reset needs a majority of the membership unless the group asked for
//!   less (see above): by default a two-member group does not survive a
//!   crash.
//! * At most one message per member is in flight; more wait in its queue.
//! * With r = 0 a sequencer crash may lose what only it delivered; members
//!   that joined after lost entries are then dropped from the group.

extern crate alloc;

pub mod ethernet;
mod member;
pub mod wire;

pub use member::{
    Config, Dest, Event, GroupError, GroupInfo, GroupMember, LeaveReason, Message, SendError, Transmit,
};
pub use wire::{DecodeError, NO_MEMBER};

use amoeba_abi::Rights;
use amoeba_abi::syscall::{GROUP_RIGHT_RECEIVE, GROUP_RIGHT_SEND};

/// The right a capability for a group needs to join it (and receive).
pub const RIGHT_RECEIVE: Rights = Rights(GROUP_RIGHT_RECEIVE);
/// The right a member's capability needs to send to the group.
pub const RIGHT_SEND: Rights = Rights(GROUP_RIGHT_SEND);
