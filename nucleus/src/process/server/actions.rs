//! What the process server asks of the RPC service: answers to send (now or
//! later) and transactions to make (reading a program's file, checking that
//! a process's owner still exists).

#![forbid(unsafe_code)]

use alloc::vec::Vec;
use amoeba_abi::Header;
use flip::ReqId;

/// What the process server wants done by the RPC service.
pub enum Action {
    /// Answer a request.
    Reply { req: ReqId, header: Header, buf: Vec<u8> },
    /// Start a transaction for load `load` (a read of a file).
    Read { load: u64, header: Header, buf: Vec<u8> },
    /// Start a transaction for owner check `check` (a touch of the owner).
    Check { check: u64, header: Header, buf: Vec<u8> },
}
