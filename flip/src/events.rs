//! What an endpoint reports to its driver, and the handles that name transactions
//! and requests in those reports.

use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::{Header, Port, Status};

use crate::wire::Addr;

/// A client transaction (unique within one endpoint incarnation).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TransId(pub u64);

/// A request delivered to a server, to be answered with [`crate::Endpoint::put_reply`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReqId(pub u64);

/// What the endpoint reports to its driver.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A request for a registered port arrived (exactly once per transaction). Answer
    /// it with [`crate::Endpoint::put_reply`] or [`crate::Endpoint::abort_request`].
    RequestArrived {
        /// Handle for the reply.
        req: ReqId,
        /// The put-port it was sent to.
        port: Port,
        /// Request header.
        header: Header,
        /// Request buffer.
        buf: Vec<u8>,
        /// The client endpoint's address.
        client: Addr,
    },
    /// A transaction ended: the server's reply, or why there is none.
    TransDone {
        /// Which transaction.
        id: TransId,
        /// Reply header and buffer, or the RPC error: `RpcNotFound` (nobody serves
        /// the port; the request did not run), `RpcFailure` (server dead or
        /// unreachable; it may have run once), `ServerRestarted` (the server's board
        /// rebooted; it ran at most once, before), `RpcBadPort`, `RpcBadAddress`
        /// (buffer too large), or the status of [`crate::Endpoint::abort_request`].
        result: Result<(Header, Vec<u8>), Status>,
    },
}

/// [`crate::Endpoint::put_reply`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReplyError {
    /// Unknown or already answered request (or its client went away).
    NoSuchRequest,
    /// Reply buffer larger than `max_buf`; the client got `RpcBadAddress` instead.
    TooLarge,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NoSuchRequest => f.write_str("no such request"),
            ReplyError::TooLarge => f.write_str("reply buffer too large"),
        }
    }
}
