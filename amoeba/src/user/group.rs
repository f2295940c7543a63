//! Totally ordered group communication: every member of a group receives
//! the same messages in the same order (the nucleus runs the sequencer
//! protocol of the `sequencer` crate for each member).

use super::sys::syscall;
use crate::Status;
use crate::syscall::{GroupMessageInfo, GroupState, Syscall, result};

/// This process's membership of one group.
pub struct Group {
    handle: u64,
}

/// One message of the group's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes stored in the caller's buffer.
    pub len: usize,
    /// The message's place in the total order.
    pub sequence: u64,
    /// The sending member's id.
    pub sender: u32,
    /// Whether more messages are already waiting.
    pub more: bool,
}

impl Group {
    /// Creates the group with 48-bit `port`, this process its first member
    /// and sequencer; `resilience` members must hold a message before any
    /// member delivers it.
    pub fn create(port: u64, resilience: u16) -> Result<Group, Status> {
        // SAFETY: no pointers.
        let handle = result(unsafe { syscall(Syscall::GroupCreate, [port, resilience as u64, 0, 0, 0, 0]) })?;
        Ok(Group { handle })
    }

    /// Joins the group with `port`; returns once the group has let us in.
    pub fn join(port: u64) -> Result<Group, Status> {
        loop {
            // SAFETY: no pointers.
            match result(unsafe { syscall(Syscall::GroupJoin, [port, 0, 0, 0, 0, 0]) }) {
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

    /// The next message of the order, into `buf`.
    pub fn receive(&self, buf: &mut [u8]) -> Result<Received, Status> {
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
                    let info = GroupMessageInfo {
                        sequence: u64::from_le_bytes(info[..8].try_into().expect("8 bytes")),
                        sender: u32::from_le_bytes(info[8..12].try_into().expect("4 bytes")),
                        more: u32::from_le_bytes(info[12..16].try_into().expect("4 bytes")),
                    };
                    return Ok(Received {
                        len: len as usize,
                        sequence: info.sequence,
                        sender: info.sender,
                        more: info.more != 0,
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
