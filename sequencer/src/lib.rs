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
//! # Protection
//!
//! Every station on the segment sees the group's broadcasts and may send
//! any packet under any source address; the members must still deliver one
//! order, lose nothing, and deliver nothing a station outside the group
//! made up. Three secrets, all 48 or 256 bits:
//!
//! * the group's **secret** S, the check field of its owner capability;
//!   a capability with rights R carries check F(S ⊕ R) (Amoeba's rule);
//! * the **group key** K = SHA-256(label, port, S) ([`auth::group_key`]);
//! * one **capability key** per capability, SHA-256(label, port, check)
//!   ([`auth::capability_key`]).
//!
//! **Every packet is tagged** with 8 bytes of SHA-256(key, sender's
//! address, the whole packet) ([`auth::seal`]); its header names the one
//! member it is for (or 0 for the group), so the tag binds sender,
//! addressee, group, incarnation, claimed member id and body. Members' packets use K.
//! On the pool's Ethernet a frame's sender address must also be on the
//! frame's source MAC ([`ethernet::parse_frame`]), which the switch vouches
//! for: so a station holding K can still tag packets only as a member on its
//! own station, never as the sequencer or as another member.
//! A packet whose tag does not verify is dropped before it touches any
//! state ([`GroupMember::rejected_packets`] counts them). One hash over a
//! packet of at most `max_batch_bytes` (or one BB payload) per packet sent
//! and per packet received: no public-key cryptography per message.
//!
//! **Joining** without the credential on the wire. The joiner broadcasts a
//! request naming its capability's object and rights and a nonce for this
//! attempt (random from the nucleus and the host). The sequencer computes
//! the check those rights give (it knows S) and answers with a
//! **challenge** — the incarnation and the sequence number of the last
//! membership change — tagged with that capability's key, so only its
//! holder can use it. The joiner answers with the request again, carrying
//! the challenge and tagged with its capability key: that tag is the proof.
//! The sequencer stamps the join (with the joiner's rights, so every later
//! sequencer knows them) only for a proof that verifies against the
//! current challenge. A recorded request proves nothing from another
//! address (the tag binds the sender's address), and nothing once any
//! membership change — the join it asked for, first of all — is in the
//! order. The **welcome** is tagged with the capability key and repeats the
//! nonce; it carries S encrypted with a pad only that capability and nonce
//! give ([`auth::welcome_pad`]). Answers the joiner's key does not verify
//! are ignored (a joiner that hears only those until its join timeout
//! reports [`GroupError::JoinDenied`]: the group does not know its
//! capability).
//!
//! **Who may say what.** Entries, accept and stable marks, and statuses are
//! taken only from the current sequencer (by member id and address);
//! entries also from a member answering a retransmission request (it
//! passes on what the sequencer stamped). A BB accept names its payload by
//! digest ([`auth::digest`]), so no other payload can be paired with it.
//! The sequencer stamps a `Send` only from a member whose rights, from its
//! join entry, include [`RIGHT_SEND`] ([`GroupMember::refused_sends`]
//! counts the others): the check in the sender's own library is a
//! courtesy, this one is the rule. Every claim a packet makes about who
//! sent it (the header's member id) is checked against the membership at
//! that address: a reset vote ("accepted") counts only for the member at
//! its own address, promises and refusals only from members, "not a
//! member" only for the member id it names.
//!
//! **Replays** of packets members once sent do nothing: each is tied to an
//! incarnation, member ids are not given twice in one order, each member's
//! messages are numbered and stamped once, marks only grow, and the answers
//! to one member (welcome, challenge, refusal, "not a member") name that
//! member, its join attempt or its member id.
//!
//! **The rule for members that left or were expelled.** A station is
//! trusted with S and K while it is a member: any member may become the
//! sequencer, so every member must be able to check joiners, and a key
//! every member can check with is one every member could tag with. The
//! nucleus and the host library keep both out of reach of the process, and
//! forget both when the member is gone ([`GroupMember::is_gone`]). Once a
//! member is out, the others drop its packets (they name a member id no
//! longer in the membership) and the sequencer answers its sends with
//! "not a member"; it can come back only by joining again, in the order,
//! with a capability that verifies. What the protocol cannot do is make a
//! station *forget*: a hostile station that kept S after it left can make
//! capabilities and tag packets. Cutting such a station off takes a new
//! group (a new port and secret), as revoking a capability takes a new
//! check in Amoeba. The same holds for a member whose capability lacks
//! [`RIGHT_SEND`]: its nucleus enforces the right, the sequencer refuses
//! its sends, but its station holds K.
//!
//! **Bounded state under a hostile station.** Nothing an untagged or
//! forged packet does grows a member's state: it is dropped at the tag.
//! The only packets taken untagged are join requests, and the sequencer
//! answers one with one challenge, keeping nothing (the challenge is
//! recomputed, not stored); answers per address are rate-limited to one
//! per `retransmit_us`, remembered for at most 256 addresses. What members'
//! own packets can grow is bounded too: entries are kept only below
//! `recv_upto + 2 × history_size + 16` (the sequencer never stamps more
//! than one history ahead of what every member holds), and the highest
//! sequence number a member believes in (which drives its gap requests) is
//! capped the same way; gap requests ask for at most 16 entries per
//! `retransmit_us`; BB payloads and accepts waiting for each other, at
//! most 64 each; submissions waiting at the sequencer, at most 64; pending
//! welcomes, one per member being admitted (joins are stamped one at a
//! time); reset candidates and promises, at most `2 × max_members`.
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

pub mod auth;
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
