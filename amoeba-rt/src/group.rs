//! Totally ordered group communication: every member of a group receives
//! the same messages in the same order (the nucleus runs the sequencer
//! protocol of the `sequencer` crate for each member).

use super::sys::syscall;
use amoeba_abi::syscall::{
    GROUP_MEMBER_JOINED, GROUP_MEMBER_LEFT, GROUP_RESET, GroupMessageInfo, GroupState, Syscall, result,
};
use amoeba_abi::{Capability, GetPort, Status};

/// How a new group behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// Members other than the sequencer that hold a message before it is
    /// delivered: that many crashes lose nothing.
    pub resilience: u16,
    /// Messages longer than this go by the BB method (0: the nucleus's default).
    pub bb_threshold: u32,
    /// After a failure the group resets if this many members are left (0: a
    /// majority). Fewer than a majority lets a group of two go on alone after
    /// its peer dies — and both sides of a partition go on, each with its own
    /// order.
    pub min_reset_members: u16,
}

/// This process's membership of one group.
pub struct Group {
    handle: u64,
}

/// What an entry of the order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A message a member sent.
    Message,
    /// `sender` joined the group.
    MemberJoined,
    /// `sender` left the group or was removed from it.
    MemberLeft,
    /// The group was reset after a failure (`sender` is the new
    /// sequencer); the data lists the dropped members' ids (`u32`, LE).
    Reset,
}

/// One entry of the group's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes stored in the caller's buffer.
    pub len: usize,
    /// The entry's place in the total order.
    pub sequence: u64,
    /// The sending member's id (see [`EntryKind`] for the others).
    pub sender: u32,
    /// Whether more entries are already waiting.
    pub more: bool,
    /// Message or membership change.
    pub kind: EntryKind,
    /// How many members the group has right after this entry.
    pub members: u16,
}

impl Group {
    /// Creates a group on the put-port of `get_port`, this process its first
    /// member and sequencer; `resilience` members must hold a message before
    /// any member delivers it. Returns the group's owner capability, which
    /// others need to join (restrict it to [`amoeba_abi::syscall::GROUP_RIGHT_RECEIVE`]
    /// for members that may only listen).
    pub fn create(get_port: GetPort, resilience: u16) -> Result<(Group, Capability), Status> {
        Self::create_with_bb_threshold(get_port, resilience, 0)
    }

    /// Like [`Group::create`], choosing the size above which messages go by
    /// the BB method (0: the nucleus's default; `u32::MAX`: never).
    pub fn create_with_bb_threshold(
        get_port: GetPort,
        resilience: u16,
        bb_threshold: u32,
    ) -> Result<(Group, Capability), Status> {
        Self::create_with(get_port, &GroupOptions { resilience, bb_threshold, min_reset_members: 0 })
    }

    /// A new group as `options` say.
    pub fn create_with(get_port: GetPort, options: &GroupOptions) -> Result<(Group, Capability), Status> {
        let mut capability = [0u8; Capability::LEN];
        let args = [
            get_port.0.to_u64(),
            options.resilience as u64,
            capability.as_mut_ptr() as u64,
            options.bb_threshold as u64,
            options.min_reset_members as u64,
            0,
        ];
        // SAFETY: the nucleus writes 16 bytes into `capability`.
        let handle = result(unsafe { syscall(Syscall::GroupCreate, args) })?;
        Ok((Group { handle }, Capability::decode(&capability)))
    }

    /// Joins the group of the capability this process was given at exec
    /// ([`crate::exec_capability`]); `ArgBad` if it was given none.
    pub fn join_given() -> Result<Group, Status> {
        Self::join(&super::exec_capability().ok_or(Status::ArgBad)?)
    }

    /// Joins the group `capability` names; returns once the group has let
    /// us in. `CapBad` if the group refuses the capability.
    pub fn join(capability: &Capability) -> Result<Group, Status> {
        let bytes = capability.encode();
        loop {
            // SAFETY: the nucleus reads 16 bytes from `bytes`.
            match result(unsafe { syscall(Syscall::GroupJoin, [bytes.as_ptr() as u64, 0, 0, 0, 0, 0]) }) {
                Ok(handle) => return Ok(Group { handle }),
                Err(Status::Interrupted) => continue,
                Err(status) => return Err(status),
            }
        }
    }

    /// Sends `message` to every member (including this one), in the
    /// group's order; waits while the group's send queue is full.
    pub fn send(&self, message: &[u8]) -> Result<(), Status> {
        loop {
            // SAFETY: the nucleus only reads `message`.
            let raw = unsafe {
                syscall(
                    Syscall::GroupSend,
                    [self.handle, message.as_ptr() as u64, message.len() as u64, 0, 0, 0],
                )
            };
            match result(raw) {
                Ok(_) => return Ok(()),
                Err(Status::NotNow) => super::time::sleep_us(1000),
                Err(status) => return Err(status),
            }
        }
    }

    /// The next message of the order, into `buf` (membership changes are
    /// skipped; [`Group::receive_entry`] returns them too).
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received, Status> {
        loop {
            let entry = self.receive_entry(buf)?;
            if entry.kind == EntryKind::Message {
                return Ok(entry);
            }
        }
    }

    /// The next entry of the order, message or membership change, into
    /// `buf`. Every member sees the changes after its own join at the same
    /// places in the order.
    pub fn receive_entry(&self, buf: &mut [u8]) -> Result<Received, Status> {
        let mut info = [0u8; 16];
        loop {
            // SAFETY: the nucleus writes at most `buf.len()` bytes into `buf`
            // and 16 into `info`.
            let raw = unsafe {
                syscall(
                    Syscall::GroupReceive,
                    [self.handle, buf.as_mut_ptr() as u64, buf.len() as u64, info.as_mut_ptr() as u64, 0, 0],
                )
            };
            match result(raw) {
                Ok(len) => {
                    let info = GroupMessageInfo::decode(&info);
                    let kind = match info.kind {
                        GROUP_MEMBER_JOINED => EntryKind::MemberJoined,
                        GROUP_MEMBER_LEFT => EntryKind::MemberLeft,
                        GROUP_RESET => EntryKind::Reset,
                        _ => EntryKind::Message,
                    };
                    return Ok(Received {
                        len: len as usize,
                        sequence: info.sequence,
                        sender: info.sender,
                        more: info.more != 0,
                        kind,
                        members: info.members,
                    });
                }
                Err(Status::Interrupted) => continue,
                Err(status) => return Err(status),
            }
        }
    }

    /// The member's view of the group.
    pub fn info(&self) -> Result<GroupState, Status> {
        let mut out = [0u8; 24];
        // SAFETY: the nucleus writes 24 bytes into `out`.
        result(unsafe { syscall(Syscall::GroupInfo, [self.handle, out.as_mut_ptr() as u64, 0, 0, 0, 0]) })?;
        let word = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().expect("4 bytes"));
        Ok(GroupState {
            expected: u64::from_le_bytes(out[..8].try_into().expect("8 bytes")),
            member_id: word(8),
            sequencer_id: word(12),
            members: word(16),
            incarnation: word(20),
        })
    }

    /// Leaves the group.
    pub fn leave(self) -> Result<(), Status> {
        // SAFETY: no pointers.
        result(unsafe { syscall(Syscall::GroupLeave, [self.handle, 0, 0, 0, 0, 0]) }).map(drop)
    }
}
