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

use crate::process::{Kernel, Pid, Tid, Wait};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use amoeba::syscall::{
    GROUP_MEMBER_JOINED, GROUP_MEMBER_LEFT, GROUP_MESSAGE, GROUP_RESET, GroupMessageInfo, error,
};
use amoeba::{Capability, GetPort, Port, Status};
use sequencer::ethernet;
use sequencer::{Config, Event, GroupError, GroupMember, SendError};

pub use sequencer::ethernet::ETHERTYPE_GROUP;
/// The largest message a group carries (one frame, for now).
pub const MAX_MESSAGE: usize = 1024;
/// Most entries delivered to a member and not yet received by its process.
/// A process that falls further behind is taken out of the group (its
/// receive says `NoSpace`) rather than let the nucleus heap run out.
pub const MAX_UNRECEIVED: usize = 4096;
/// Messages longer than this go by the BB method unless the creator chose
/// otherwise: the sender broadcasts, the sequencer only a short accept.
pub const DEFAULT_BB_THRESHOLD: u32 = 512;

struct Receiver {
    tid: Tid,
    buf: u64,
    capacity: u64,
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

pub struct GroupSlot {
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

#[derive(Default)]
pub struct Groups {
    slots: BTreeMap<u16, GroupSlot>,
    next_handle: u16,
}

fn now() -> u64 {
    crate::drivers::timer::uptime_micros()
}

fn config(resilience: u16, bb_threshold: u32) -> Config {
    Config { resilience, max_message_size: MAX_MESSAGE as u32, bb_threshold, ..Config::default() }
}

fn send_status(error: SendError) -> Status {
    match error {
        SendError::WouldBlock => Status::NotNow,
        SendError::TooLarge => Status::ArgBad,
        SendError::NotMember => Status::NotFound,
        SendError::NotPermitted => Status::Denied,
    }
}

impl Kernel {
    fn board_address(&self, handle: u16) -> u64 {
        ethernet::member_address(self.rpc.endpoint.mac().0, handle)
    }

    fn new_handle(&mut self) -> Result<u16, Status> {
        for _ in 0..u16::MAX {
            self.groups.next_handle = self.groups.next_handle.wrapping_add(1).max(1);
            if !self.groups.slots.contains_key(&self.groups.next_handle) {
                return Ok(self.groups.next_handle);
            }
        }
        Err(Status::NoSpace)
    }

    fn slot_of(&mut self, pid: Pid, handle: u64) -> Result<&mut GroupSlot, Status> {
        let handle = u16::try_from(handle).map_err(|_| Status::ArgBad)?;
        let slot = self.groups.slots.get_mut(&handle).filter(|s| s.pid == pid).ok_or(Status::NotFound)?;
        match slot.failed {
            Some(status) => Err(status),
            None => Ok(slot),
        }
    }

    /// group_create(get-port, resilience, capability out, BB threshold) ->
    /// handle. The group lives on F(get-port); the owner capability goes to
    /// `cap_out`. A threshold of 0 means [`DEFAULT_BB_THRESHOLD`].
    pub fn group_create(&mut self, pid: Pid, a: [u64; 6]) -> Result<i64, Status> {
        let (get_port, resilience, cap_out, bb_threshold) = (a[0], a[1], a[2], a[3]);
        if get_port == 0 || get_port >> 48 != 0 || resilience > 16 || bb_threshold > u32::MAX as u64 {
            return Err(Status::ArgBad);
        }
        self.check_user(pid, cap_out, Capability::LEN as u64, true)?;
        let port = GetPort(Port::from_u64(get_port)).put_port();
        let bb_threshold = if bb_threshold == 0 { DEFAULT_BB_THRESHOLD } else { bb_threshold as u32 };
        let secret = self.random_check();
        let handle = self.new_handle()?;
        let member = GroupMember::create_group(
            config(resilience as u16, bb_threshold),
            port.to_u64(),
            secret,
            self.board_address(handle),
            now(),
        );
        let capability = member.owner_capability();
        self.copy_to_user(pid, cap_out, &capability.encode())?;
        self.groups.slots.insert(
            handle,
            GroupSlot {
                pid,
                member,
                delivered: VecDeque::new(),
                joiner: None,
                interrupted_joiner: None,
                joined: true,
                capability,
                receiver: None,
                failed: None,
            },
        );
        self.group_pump(handle);
        Ok(handle as i64)
    }

    /// group_join(capability): blocks until the group the capability names
    /// lets us in (or refuses the capability: `CapBad`).
    pub fn group_join(&mut self, pid: Pid, cap_ptr: u64) -> Result<Option<i64>, Status> {
        let bytes = self.copy_from_user(pid, cap_ptr, Capability::LEN as u64)?;
        let capability = Capability::from_slice(&bytes).ok_or(Status::ArgBad)?;
        if capability.port.is_null() {
            return Err(Status::ArgBad);
        }
        let tid = self.current;
        if let Some(handle) = self.interrupted_join(pid, tid, &capability) {
            return self.resume_join(handle, tid);
        }
        let handle = self.new_handle()?;
        // The group's parameters come with the welcome.
        let config = config(0, DEFAULT_BB_THRESHOLD);
        let member = GroupMember::join_group(config, &capability, self.board_address(handle), now());
        self.groups.slots.insert(
            handle,
            GroupSlot {
                pid,
                member,
                delivered: VecDeque::new(),
                joiner: Some(tid),
                interrupted_joiner: None,
                joined: false,
                capability,
                receiver: None,
                failed: None,
            },
        );
        self.block_current(Wait::Group(handle));
        self.group_pump(handle);
        Ok(None)
    }

    /// The member whose join `tid` started with `capability` before a signal
    /// interrupted it.
    fn interrupted_join(&self, pid: Pid, tid: Tid, capability: &Capability) -> Option<u16> {
        self.groups.slots.iter().find_map(|(&handle, slot)| {
            (slot.pid == pid && slot.interrupted_joiner == Some((tid, *capability))).then_some(handle)
        })
    }

    /// A retried join: the interrupted one's outcome, or wait for it again.
    fn resume_join(&mut self, handle: u16, tid: Tid) -> Result<Option<i64>, Status> {
        let slot = self.groups.slots.get_mut(&handle).ok_or(Status::SysErr)?;
        slot.interrupted_joiner = None;
        if let Some(status) = slot.failed {
            self.groups.slots.remove(&handle);
            return Err(status);
        }
        if slot.joined {
            return Ok(Some(handle as i64));
        }
        slot.joiner = Some(tid);
        self.block_current(Wait::Group(handle));
        Ok(None)
    }

    /// A signal interrupted `tid`'s wait: a receive stops (the next entry
    /// stays queued for the retry), a join goes on without the thread until
    /// the runtime's retry takes it over.
    pub fn group_cancel_wait(&mut self, tid: Tid, wait: Wait) {
        let Wait::Group(handle) = wait else { return };
        let Some(slot) = self.groups.slots.get_mut(&handle) else { return };
        if slot.receiver.as_ref().is_some_and(|r| r.tid == tid) {
            slot.receiver = None;
        }
        if slot.joiner == Some(tid) {
            slot.joiner = None;
            slot.interrupted_joiner = Some((tid, slot.capability));
        }
    }

    pub fn group_send(&mut self, pid: Pid, handle: u64, buf: u64, len: u64) -> Result<i64, Status> {
        if len > MAX_MESSAGE as u64 {
            return Err(Status::ArgBad);
        }
        let payload = self.copy_from_user(pid, buf, len)?;
        let slot = self.slot_of(pid, handle)?;
        let id = slot.member.send_to_group(now(), &payload).map_err(send_status)?;
        self.group_pump(handle as u16);
        Ok(id as i64)
    }

    /// group_receive: returns a message at once, or blocks (`Ok(None)`).
    pub fn group_receive(&mut self, pid: Pid, a: [u64; 6]) -> Result<Option<i64>, Status> {
        let (handle, buf, capacity, info_out) = (a[0], a[1], a[2], a[3]);
        self.check_user(pid, info_out, 16, true)?;
        if capacity > 0 {
            self.check_user(pid, buf, capacity, true)?;
        }
        let tid = self.current;
        let slot = self.slot_of(pid, handle)?;
        if slot.receiver.is_some() {
            return Err(Status::NotNow); // one receiving thread per member
        }
        slot.receiver = Some(Receiver { tid, buf, capacity, info_out });
        let handle = handle as u16;
        if let Some(value) = self.deliver_next(handle) {
            return Ok(Some(value));
        }
        self.block_current(Wait::Group(handle));
        Ok(None)
    }

    pub fn group_leave(&mut self, pid: Pid, handle: u64) -> Result<i64, Status> {
        let slot = self.slot_of(pid, handle)?;
        let _ = slot.member.leave_group(now());
        self.group_pump(handle as u16);
        Ok(0)
    }

    pub fn group_info(&mut self, pid: Pid, handle: u64, out: u64) -> Result<i64, Status> {
        let info = self.slot_of(pid, handle)?.member.get_info();
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&info.expected_seq.to_le_bytes());
        bytes.extend_from_slice(&info.member_id.to_le_bytes());
        bytes.extend_from_slice(&info.sequencer_id.to_le_bytes());
        bytes.extend_from_slice(&(info.members.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&info.incarnation.to_le_bytes());
        self.copy_to_user(pid, out, &bytes)?;
        Ok(0)
    }

    /// Hands the next delivered message to a waiting receiver; its result.
    fn deliver_next(&mut self, handle: u16) -> Option<i64> {
        let slot = self.groups.slots.get_mut(&handle)?;
        slot.receiver.as_ref()?;
        let entry = slot.delivered.pop_front()?;
        let more = !slot.delivered.is_empty();
        let receiver = slot.receiver.take()?;
        let pid = slot.pid;
        let len = entry.data.len().min(receiver.capacity as usize);
        let info = GroupMessageInfo {
            sequence: entry.sequence,
            sender: entry.sender,
            more: more as u8,
            kind: entry.kind,
            members: entry.members,
        };
        let copied = self
            .copy_to_user(pid, receiver.buf, &entry.data[..len])
            .and_then(|_| self.copy_to_user(pid, receiver.info_out, &info.encode()));
        Some(match copied {
            Ok(()) => len as i64,
            Err(status) => error(status),
        })
    }

    /// Sends what a member wants sent and reports its events to its threads.
    pub fn group_pump(&mut self, handle: u16) {
        let me = self.board_address(handle);
        let own_mac = self.rpc.endpoint.mac().0;
        let Some(slot) = self.groups.slots.get_mut(&handle) else { return };
        while let Some(transmit) = slot.member.poll_transmit() {
            let frame = ethernet::encode_frame(own_mac, me, transmit.dest, &transmit.bytes);
            if let Err(error) = crate::net::send(&frame) {
                crate::println!("nucleus: group send failed: {error}");
            }
        }
        let mut joined = false;
        let mut failed = None;
        let events: Vec<Event> = core::iter::from_fn(|| slot.member.poll_event()).collect();
        // The member's view is as of the last event; walk back to know the
        // group's size right after each entry.
        let mut members = slot.member.get_info().members.len();
        let mut members_after = Vec::with_capacity(events.len());
        for event in events.iter().rev() {
            members_after.push(members.min(u16::MAX as usize) as u16);
            match event {
                Event::MemberJoined { .. } => members = members.saturating_sub(1),
                Event::MemberLeft { .. } => members += 1,
                Event::GroupReset { removed, .. } => members += removed.len(),
                _ => {}
            }
        }
        members_after.reverse();
        for (event, members) in events.into_iter().zip(members_after) {
            let entry = |sequence, sender, kind, data| Delivered { sequence, sender, kind, members, data };
            match event {
                Event::Joined { .. } => joined = true,
                Event::Delivered { seq, sender, payload } => {
                    slot.delivered.push_back(entry(seq, sender, GROUP_MESSAGE, payload))
                }
                Event::MemberJoined { seq, member, .. } => {
                    slot.delivered.push_back(entry(seq, member, GROUP_MEMBER_JOINED, Vec::new()))
                }
                Event::MemberLeft { seq, member, .. } => {
                    slot.delivered.push_back(entry(seq, member, GROUP_MEMBER_LEFT, Vec::new()))
                }
                Event::GroupReset { seq, removed, .. } => {
                    let sequencer = slot.member.get_info().sequencer_id;
                    let data = removed.iter().flat_map(|(id, _)| id.to_le_bytes()).collect();
                    slot.delivered.push_back(entry(seq, sequencer, GROUP_RESET, data))
                }
                // The member resets the group by itself; only these end it.
                Event::Error(GroupError::JoinDenied) => {
                    crate::println!("nucleus: group member {handle}: join denied");
                    failed = Some(Status::CapBad);
                }
                Event::Error(error @ (GroupError::Expelled | GroupError::JoinTimeout)) => {
                    crate::println!("nucleus: group member {handle}: {error:?}");
                    failed = Some(Status::RpcFailure);
                }
                Event::Error(error) => {
                    crate::println!("nucleus: group member {handle}: {error:?}, resetting")
                }
                _ => {}
            }
        }
        if failed.is_none() && slot.delivered.len() > MAX_UNRECEIVED {
            crate::println!(
                "nucleus: group member {handle}: its process fell {} entries behind; it leaves the group",
                slot.delivered.len()
            );
            slot.delivered.clear();
            let _ = slot.member.leave_group(now());
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
            self.wake_waiter(tid, Wait::Group(handle), value);
        }
        if let (Some(tid), Some(status)) = (receiver, failed) {
            self.wake_waiter(tid, Wait::Group(handle), error(status));
        }
        let waiting = self.groups.slots.get(&handle).and_then(|s| s.receiver.as_ref().map(|r| r.tid));
        if let Some(tid) = waiting
            && let Some(value) = self.deliver_next(handle)
        {
            self.wake_waiter(tid, Wait::Group(handle), value);
        }
        self.update_net_deadline();
    }

    /// Network thread: a group frame came in.
    pub fn group_frame(&mut self, frame: &[u8]) {
        let Some((to, from, packet)) = ethernet::parse_frame(frame) else { return };
        let handles: Vec<u16> =
            self.groups.slots.keys().copied().filter(|&h| to == 0 || self.board_address(h) == to).collect();
        for handle in handles {
            if let Some(slot) = self.groups.slots.get_mut(&handle) {
                let _ = slot.member.handle_packet(now(), from, packet);
            }
            self.group_pump(handle);
        }
    }

    /// Network thread: time passed.
    pub fn group_timeout(&mut self) {
        let handles: Vec<u16> = self.groups.slots.keys().copied().collect();
        for handle in handles {
            if let Some(slot) = self.groups.slots.get_mut(&handle) {
                slot.member.handle_timeout(now());
            }
            self.group_pump(handle);
        }
        // Members of ended processes go once they are out of their group.
        self.groups
            .slots
            .retain(|_, slot| slot.pid != Pid::MAX || !(slot.member.is_gone() || slot.failed.is_some()));
    }

    /// A process ended: its members leave their groups. The nucleus keeps
    /// each member until its leave is through (a leaving sequencer hands
    /// the group over first), so the others need not detect a failure.
    pub fn group_forget_process(&mut self, pid: Pid) {
        let handles: Vec<u16> =
            self.groups.slots.iter().filter(|(_, s)| s.pid == pid).map(|(&h, _)| h).collect();
        for handle in handles {
            if let Some(slot) = self.groups.slots.get_mut(&handle) {
                slot.pid = Pid::MAX; // nobody's any more
                slot.receiver = None;
                slot.joiner = None;
                slot.interrupted_joiner = None;
                if slot.failed.is_some() || slot.member.leave_group(now()).is_err() {
                    self.groups.slots.remove(&handle);
                    continue;
                }
            }
            self.group_pump(handle);
        }
    }

    /// The earliest time the network thread must look at RPC or groups.
    pub fn update_net_deadline(&mut self) {
        let groups = self.groups.slots.values().filter_map(|s| s.member.next_deadline()).min();
        let rpc = self.rpc.endpoint.next_deadline();
        self.rpc_deadline = match (rpc, groups) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(deadline) = self.rpc_deadline {
            crate::drivers::timer::wake_at(deadline);
        }
    }
}
