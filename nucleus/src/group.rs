//! The kernel side of group communication: a `sequencer::GroupMember` per
//! group a process belongs to, driven by the network thread (frames,
//! timeouts) and by the group system calls. The protocol itself (ordering,
//! history, resilience, reset) lives in the host-tested `sequencer` crate.
//!
//! On the wire, group packets travel as `sequencer::ethernet` frames; a
//! member's address is its board's MAC and a per-board handle.
//!
//! Groups are named like services: the creator knows a private get-port G,
//! the group lives on P = F(G), and the creator gets the group's owner
//! capability. Joining takes a capability for the group that verifies
//! (with the receive right); sending also takes the send right.

#![forbid(unsafe_code)]

use crate::process::outcome::{AfterWake, Outcome};
use crate::process::thread::{Pid, Tid, Wait};
use crate::process::user_memory::UserRange;
use crate::process::{Core, Event, Subscriber};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use amoeba_abi::syscall::{
    GROUP_MEMBER_JOINED, GROUP_MEMBER_LEFT, GROUP_MESSAGE, GROUP_RESET, GroupMessageInfo, error,
};
use amoeba_abi::{Capability, GetPort, Port, Status};
use sequencer::ethernet;
use sequencer::{Config, GroupError, GroupMember, SendError};

pub use sequencer::ethernet::ETHERTYPE_GROUP;
/// The largest message a group carries (one frame, for now).
pub const MAX_MESSAGE: usize = 1024;
/// Most entries delivered to a member and not yet received by its process.
/// A process that falls further behind is taken out of the group (its
/// receive says `NoSpace`) rather than let the nucleus heap run out.
pub const MAX_UNRECEIVED: usize = 4096;
/// Most groups one process may be a member of at once.
pub const MAX_GROUPS_PER_PROCESS: usize = 16;
/// Heap a new member must find free (its history, its queues), besides the
/// nucleus's reserve.
const MEMBER_BUDGET: usize = 256 << 10;
/// Messages longer than this go by the BB method unless the creator chose
/// otherwise: the sender broadcasts, the sequencer only a short accept.
pub const DEFAULT_BB_THRESHOLD: u32 = 512;
/// Length of the [`GroupMessageInfo`] `group_receive` writes.
const MESSAGE_INFO_LEN: u64 = 16;

pub use nucleus::call_types::{GroupCreateArgs, GroupReceiveArgs};

struct Receiver {
    tid: Tid,
    buffer: UserRange,
    info_out: u64,
}

/// One entry of the order as the process receives it: a message or a
/// membership change (`GroupMessageInfo::kind`).
struct Delivered {
    sequence: u64,
    sender: u32,
    kind: u8,
    /// Members right after this entry.
    members: u16,
    data: Vec<u8>,
}

struct GroupSlot {
    /// The member's process (`Pid::MAX` once that process has ended).
    pid: Pid,
    member: GroupMember,
    /// Entries delivered but not yet received.
    delivered: VecDeque<Delivered>,
    joiner: Option<Tid>,
    /// A joining thread a signal interrupted: its retried join, with the
    /// same capability, takes this member over instead of making another.
    interrupted_joiner: Option<(Tid, Capability)>,
    /// Whether the group has let this member in.
    joined: bool,
    /// The capability the member joined with (for a creator, the owner's).
    capability: Capability,
    receiver: Option<Receiver>,
    /// Set when the member can no longer take part (expelled, join failed).
    failed: Option<Status>,
}

impl GroupSlot {
    fn new(pid: Pid, member: GroupMember, capability: Capability, joiner: Option<Tid>) -> Self {
        Self {
            pid,
            member,
            delivered: VecDeque::new(),
            joined: joiner.is_none(),
            joiner,
            interrupted_joiner: None,
            capability,
            receiver: None,
            failed: None,
        }
    }
}

pub struct Groups {
    slots: BTreeMap<u16, GroupSlot>,
    next_handle: u16,
    /// The board's MAC: members' addresses are made from it.
    mac: [u8; 6],
}

fn config(resilience: u16, bb_threshold: u32) -> Config {
    Config { resilience, max_message_size: MAX_MESSAGE as u32, bb_threshold, ..Config::default() }
}

/// A creator's configuration: `config` and the reset quorum it chose (it
/// travels to joiners in their welcome).
fn creator_config(args: &GroupCreateArgs, bb_threshold: u32) -> Config {
    let min_reset_members = (args.min_reset_members > 0).then_some(args.min_reset_members);
    Config { min_reset_members, ..config(args.resilience, bb_threshold) }
}

fn send_status(error: SendError) -> Status {
    match error {
        SendError::WouldBlock => Status::NotNow,
        SendError::TooLarge => Status::ArgBad,
        SendError::NotMember => Status::NotFound,
        SendError::NotPermitted => Status::Denied,
    }
}

impl Groups {
    pub fn new(mac: [u8; 6]) -> Self {
        Self { slots: BTreeMap::new(), next_handle: 0, mac }
    }

    fn board_address(&self, handle: u16) -> u64 {
        ethernet::member_address(self.mac, handle)
    }

    fn new_handle(&mut self) -> Result<u16, Status> {
        for _ in 0..u16::MAX {
            self.next_handle = self.next_handle.wrapping_add(1).max(1);
            if !self.slots.contains_key(&self.next_handle) {
                return Ok(self.next_handle);
            }
        }
        Err(Status::NoSpace)
    }

    fn slot_of(&mut self, pid: Pid, handle: u16) -> Result<&mut GroupSlot, Status> {
        let slot = self.slots.get_mut(&handle).filter(|s| s.pid == pid).ok_or(Status::NotFound)?;
        match slot.failed {
            Some(status) => Err(status),
            None => Ok(slot),
        }
    }

    /// When the members next want [`Groups::timeout`] (µs since boot).
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots.values().filter_map(|s| s.member.next_deadline()).min()
    }

    /// group_create: a new group with the caller as its only member and
    /// sequencer; returns the handle, the owner capability goes to `cap_out`.
    pub fn create(&mut self, core: &mut Core, now: u64, args: &GroupCreateArgs) -> Outcome {
        Outcome::from(self.create_group(core, now, args))
    }

    fn create_group(&mut self, core: &mut Core, now: u64, args: &GroupCreateArgs) -> Result<u64, Status> {
        let pid = core.current_pid().ok_or(Status::SysErr)?;
        core.check_capability_out(pid, args.cap_out)?;
        self.admit_member(pid)?;
        let port = GetPort(Port::from_u64(args.get_port)).put_port();
        let bb_threshold = if args.bb_threshold == 0 { DEFAULT_BB_THRESHOLD } else { args.bb_threshold };
        let secret = core.random_check();
        let handle = self.new_handle()?;
        let member = GroupMember::create_group(
            creator_config(args, bb_threshold),
            port.to_u64(),
            secret,
            self.board_address(handle),
            now,
        );
        let capability = member.owner_capability();
        core.copy_to_user(pid, args.cap_out, &capability.encode())?;
        self.slots.insert(handle, GroupSlot::new(pid, member, capability, None));
        self.pump(core, now, handle);
        Ok(handle as u64)
    }

    /// group_join(capability): blocks until the group the capability names
    /// lets us in (or refuses the capability: `CapBad`).
    pub fn join(&mut self, core: &mut Core, now: u64, cap_ptr: u64) -> Outcome {
        match self.start_join(core, now, cap_ptr) {
            Ok(outcome) => outcome,
            Err(status) => Outcome::Error(status),
        }
    }

    fn start_join(&mut self, core: &mut Core, now: u64, cap_ptr: u64) -> Result<Outcome, Status> {
        let pid = core.current_pid().ok_or(Status::SysErr)?;
        let bytes = core.copy_from_user(pid, cap_ptr, Capability::LEN as u64)?;
        let capability = Capability::from_slice(&bytes).ok_or(Status::ArgBad)?;
        if capability.port.is_null() {
            return Err(Status::ArgBad);
        }
        let tid = core.current();
        if let Some(handle) = self.interrupted_join(pid, tid, &capability) {
            return self.resume_join(core, handle, tid);
        }
        self.admit_member(pid)?;
        let handle = self.new_handle()?;
        // The group's parameters come with the welcome.
        let config = config(0, DEFAULT_BB_THRESHOLD);
        // A random number for this join attempt: a recorded answer to an
        // earlier one cannot pass for an answer to it.
        let nonce = core.random_check().0.iter().fold(now, |n, b| n.rotate_left(8) ^ u64::from(*b));
        let member =
            GroupMember::join_group_with_nonce(config, &capability, self.board_address(handle), now, nonce);
        self.slots.insert(handle, GroupSlot::new(pid, member, capability, Some(tid)));
        let parked = core.block_current(Wait::Group(handle), AfterWake::ReturnWakeResult);
        self.pump(core, now, handle);
        Ok(Outcome::Blocked(parked))
    }

    /// The member whose join `tid` started with `capability` before a signal
    /// interrupted it.
    fn interrupted_join(&self, pid: Pid, tid: Tid, capability: &Capability) -> Option<u16> {
        self.slots.iter().find_map(|(&handle, slot)| {
            (slot.pid == pid && slot.interrupted_joiner == Some((tid, *capability))).then_some(handle)
        })
    }

    /// A retried join: the interrupted one's outcome, or wait for it again.
    fn resume_join(&mut self, core: &mut Core, handle: u16, tid: Tid) -> Result<Outcome, Status> {
        let slot = self.slots.get_mut(&handle).ok_or(Status::SysErr)?;
        slot.interrupted_joiner = None;
        if let Some(status) = slot.failed {
            self.slots.remove(&handle);
            return Err(status);
        }
        if slot.joined {
            return Ok(Outcome::Done(handle as u64));
        }
        slot.joiner = Some(tid);
        Ok(Outcome::Blocked(core.block_current(Wait::Group(handle), AfterWake::ReturnWakeResult)))
    }

    pub fn send(&mut self, core: &mut Core, now: u64, handle: u16, message: UserRange) -> Outcome {
        let result = (|| {
            let pid = core.current_pid().ok_or(Status::SysErr)?;
            if message.len > MAX_MESSAGE as u64 {
                return Err(Status::ArgBad);
            }
            let payload = core.copy_from_user(pid, message.va, message.len)?;
            let slot = self.slot_of(pid, handle)?;
            let id = slot.member.send_to_group(now, &payload).map_err(send_status)?;
            self.pump(core, now, handle);
            Ok(id as u64)
        })();
        Outcome::from(result)
    }

    /// group_receive: the next entry at once, or once one comes.
    pub fn receive(&mut self, core: &mut Core, args: &GroupReceiveArgs) -> Outcome {
        match self.start_receive(core, args) {
            Ok(outcome) => outcome,
            Err(status) => Outcome::Error(status),
        }
    }

    fn start_receive(&mut self, core: &mut Core, args: &GroupReceiveArgs) -> Result<Outcome, Status> {
        let pid = core.current_pid().ok_or(Status::SysErr)?;
        core.check_user(pid, args.info_out, MESSAGE_INFO_LEN, true)?;
        if args.buffer.len > 0 {
            core.check_user(pid, args.buffer.va, args.buffer.len, true)?;
        }
        let tid = core.current();
        let slot = self.slot_of(pid, args.handle)?;
        if slot.receiver.is_some() {
            return Err(Status::NotNow); // one receiving thread per member
        }
        slot.receiver = Some(Receiver { tid, buffer: args.buffer, info_out: args.info_out });
        if let Some(value) = self.deliver_next(core, args.handle) {
            return Ok(Outcome::from_raw(value));
        }
        Ok(Outcome::Blocked(core.block_current(Wait::Group(args.handle), AfterWake::ReturnWakeResult)))
    }

    pub fn leave(&mut self, core: &mut Core, now: u64, handle: u16) -> Outcome {
        let result = (|| {
            let pid = core.current_pid().ok_or(Status::SysErr)?;
            let slot = self.slot_of(pid, handle)?;
            let _ = slot.member.leave_group(now);
            self.pump(core, now, handle);
            Ok(0)
        })();
        Outcome::from(result)
    }

    pub fn info(&mut self, core: &mut Core, handle: u16, out: u64) -> Outcome {
        let result = (|| {
            let pid = core.current_pid().ok_or(Status::SysErr)?;
            let info = self.slot_of(pid, handle)?.member.get_info();
            let mut bytes = Vec::with_capacity(24);
            bytes.extend_from_slice(&info.expected_seq.to_le_bytes());
            bytes.extend_from_slice(&info.member_id.to_le_bytes());
            bytes.extend_from_slice(&info.sequencer_id.to_le_bytes());
            bytes.extend_from_slice(&(info.members.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&info.incarnation.to_le_bytes());
            core.copy_to_user(pid, out, &bytes)?;
            Ok(0)
        })();
        Outcome::from(result)
    }

    /// Hands the next delivered entry to a waiting receiver; its result.
    fn deliver_next(&mut self, core: &mut Core, handle: u16) -> Option<i64> {
        let slot = self.slots.get_mut(&handle)?;
        slot.receiver.as_ref()?;
        let entry = slot.delivered.pop_front()?;
        let more = !slot.delivered.is_empty();
        let receiver = slot.receiver.take()?;
        let pid = slot.pid;
        let len = entry.data.len().min(receiver.buffer.len as usize);
        let info = GroupMessageInfo {
            sequence: entry.sequence,
            sender: entry.sender,
            more: more as u8,
            kind: entry.kind,
            members: entry.members,
        };
        let copied = core
            .copy_to_user(pid, receiver.buffer.va, &entry.data[..len])
            .and_then(|_| core.copy_to_user(pid, receiver.info_out, &info.encode()));
        Some(match copied {
            Ok(()) => len as i64,
            Err(status) => error(status),
        })
    }

    /// How many entries member `handle` may hold unreceived: what its
    /// process's quota leaves beside its other groups, and never more than
    /// [`MAX_UNRECEIVED`].
    fn unreceived_limit(&self, core: &Core, handle: u16) -> usize {
        let Some(pid) = self.slots.get(&handle).map(|slot| slot.pid) else {
            return MAX_UNRECEIVED;
        };
        let quota = core.processes.get(&pid).map_or(MAX_UNRECEIVED, |p| p.quotas.group_messages as usize);
        let others: usize = self
            .slots
            .iter()
            .filter(|(other, slot)| **other != handle && slot.pid == pid)
            .map(|(_, slot)| slot.delivered.len())
            .sum();
        quota.saturating_sub(others).min(MAX_UNRECEIVED)
    }

    /// Whether process `pid` may be in one more group (and the heap has room
    /// for a member's state).
    fn admit_member(&self, pid: Pid) -> Result<(), Status> {
        if self.slots.values().filter(|slot| slot.pid == pid).count() >= MAX_GROUPS_PER_PROCESS {
            return Err(Status::NoSpace);
        }
        crate::heap::admit(MEMBER_BUDGET)
    }

    /// Sends what a member wants sent and reports its events to its threads.
    fn pump(&mut self, core: &mut Core, now: u64, handle: u16) {
        let me = self.board_address(handle);
        let own_mac = self.mac;
        let limit = self.unreceived_limit(core, handle);
        let Some(slot) = self.slots.get_mut(&handle) else { return };
        while let Some(transmit) = slot.member.poll_transmit() {
            let frame = ethernet::encode_frame(own_mac, me, transmit.dest, &transmit.bytes);
            crate::drivers::net::send_or_count(&frame, "group");
        }
        let (joined, mut failed) = take_events(slot, handle);
        if failed.is_none() && slot.delivered.len() > limit {
            crate::println!(
                "nucleus: group member {handle}: its process fell {} entries behind; it leaves the group",
                slot.delivered.len()
            );
            slot.delivered.clear();
            let _ = slot.member.leave_group(now);
            failed = Some(Status::NoSpace);
        }
        slot.joined |= joined;
        let joiner = if joined || failed.is_some() { slot.joiner.take() } else { None };
        if let Some(status) = failed {
            slot.failed = Some(status);
        }
        let receiver = if failed.is_some() { slot.receiver.take().map(|r| r.tid) } else { None };
        if let Some(tid) = joiner {
            let value = failed.map_or(handle as i64, error);
            core.wake_waiter(tid, Wait::Group(handle), value);
        }
        if let (Some(tid), Some(status)) = (receiver, failed) {
            core.wake_waiter(tid, Wait::Group(handle), error(status));
        }
        let waiting = self.slots.get(&handle).and_then(|s| s.receiver.as_ref().map(|r| r.tid));
        if let Some(tid) = waiting
            && let Some(value) = self.deliver_next(core, handle)
        {
            core.wake_waiter(tid, Wait::Group(handle), value);
        }
    }

    /// Network thread: a group frame came in.
    pub fn frame(&mut self, core: &mut Core, now: u64, frame: &[u8]) {
        let Some((to, from, packet)) = ethernet::parse_frame(frame) else { return };
        let handles: Vec<u16> =
            self.slots.keys().copied().filter(|&h| to == 0 || self.board_address(h) == to).collect();
        for handle in handles {
            if let Some(slot) = self.slots.get_mut(&handle) {
                let _ = slot.member.handle_packet(now, from, packet);
            }
            self.pump(core, now, handle);
        }
    }

    /// Network thread: time passed.
    pub fn timeout(&mut self, core: &mut Core, now: u64) {
        let handles: Vec<u16> = self.slots.keys().copied().collect();
        for handle in handles {
            if let Some(slot) = self.slots.get_mut(&handle) {
                slot.member.handle_timeout(now);
            }
            self.pump(core, now, handle);
        }
        // Members of ended processes go once they are out of their group.
        self.slots
            .retain(|_, slot| slot.pid != Pid::MAX || !(slot.member.is_gone() || slot.failed.is_some()));
    }

    /// A signal interrupted `tid`'s wait: a receive stops (the next entry
    /// stays queued for the retry), a join goes on without the thread until
    /// the runtime's retry takes it over.
    fn cancel_wait(&mut self, tid: Tid, wait: Wait) {
        let Wait::Group(handle) = wait else { return };
        let Some(slot) = self.slots.get_mut(&handle) else { return };
        if slot.receiver.as_ref().is_some_and(|r| r.tid == tid) {
            slot.receiver = None;
        }
        if slot.joiner == Some(tid) {
            slot.joiner = None;
            slot.interrupted_joiner = Some((tid, slot.capability));
        }
    }

    /// A process ended: its members leave their groups. The nucleus keeps
    /// each member until its leave is through (a leaving sequencer hands
    /// the group over first), so the others need not detect a failure.
    fn forget_process(&mut self, core: &mut Core, now: u64, pid: Pid) {
        let handles: Vec<u16> = self.slots.iter().filter(|(_, s)| s.pid == pid).map(|(&h, _)| h).collect();
        for handle in handles {
            if let Some(slot) = self.slots.get_mut(&handle) {
                slot.pid = Pid::MAX; // nobody's any more
                slot.receiver = None;
                slot.joiner = None;
                slot.interrupted_joiner = None;
                if slot.failed.is_some() || slot.member.leave_group(now).is_err() {
                    self.slots.remove(&handle);
                    continue;
                }
            }
            self.pump(core, now, handle);
        }
    }
}

impl Subscriber for Groups {
    fn notify(&mut self, core: &mut Core, event: &Event, now: u64) {
        match event {
            Event::ProcessExited { pid, .. } => self.forget_process(core, now, *pid),
            Event::WaitInterrupted { tid, wait } => self.cancel_wait(*tid, *wait),
        }
    }
}

/// Moves a member's events into its queue of delivered entries; whether it
/// joined, and why it can no longer take part, if so.
fn take_events(slot: &mut GroupSlot, handle: u16) -> (bool, Option<Status>) {
    let mut joined = false;
    let mut failed = None;
    let events: Vec<sequencer::Event> = core::iter::from_fn(|| slot.member.poll_event()).collect();
    // The member's view is as of the last event; walk back to know the
    // group's size right after each entry.
    let mut members = slot.member.get_info().members.len();
    let mut members_after = Vec::with_capacity(events.len());
    for event in events.iter().rev() {
        members_after.push(members.min(u16::MAX as usize) as u16);
        match event {
            sequencer::Event::MemberJoined { .. } => members = members.saturating_sub(1),
            sequencer::Event::MemberLeft { .. } => members += 1,
            sequencer::Event::GroupReset { removed, .. } => members += removed.len(),
            _ => {}
        }
    }
    members_after.reverse();
    for (event, members) in events.into_iter().zip(members_after) {
        let entry = |sequence, sender, kind, data| Delivered { sequence, sender, kind, members, data };
        match event {
            sequencer::Event::Joined { .. } => joined = true,
            sequencer::Event::Delivered { seq, sender, payload } => {
                slot.delivered.push_back(entry(seq, sender, GROUP_MESSAGE, payload))
            }
            sequencer::Event::MemberJoined { seq, member, .. } => {
                slot.delivered.push_back(entry(seq, member, GROUP_MEMBER_JOINED, Vec::new()))
            }
            sequencer::Event::MemberLeft { seq, member, .. } => {
                slot.delivered.push_back(entry(seq, member, GROUP_MEMBER_LEFT, Vec::new()))
            }
            sequencer::Event::GroupReset { seq, removed, .. } => {
                let sequencer = slot.member.get_info().sequencer_id;
                let data = removed.iter().flat_map(|(id, _)| id.to_le_bytes()).collect();
                slot.delivered.push_back(entry(seq, sequencer, GROUP_RESET, data))
            }
            // The member resets the group by itself; only these end it.
            sequencer::Event::Error(GroupError::JoinDenied) => {
                crate::println!("nucleus: group member {handle}: join denied");
                failed = Some(Status::CapBad);
            }
            sequencer::Event::Error(error @ (GroupError::Expelled | GroupError::JoinTimeout)) => {
                crate::println!("nucleus: group member {handle}: {error:?}");
                failed = Some(Status::RpcFailure);
            }
            sequencer::Event::Error(error) => {
                crate::println!("nucleus: group member {handle}: {error:?}, resetting")
            }
            _ => {}
        }
    }
    (joined, failed)
}
