//! RPC for user programs through the declared interfaces: [`Nucleus`] is the
//! [`Transport`] that client stubs use on a board (the nucleus's `trans`), and
//! [`serve`] is the loop of a server thread (`get_request`, dispatch, `put_reply`).
//!
//! ```ignore
//! use amoeba_ipc::interfaces::counter;
//! use amoeba_rt::rpc::Nucleus;
//! let count = counter::Client::new(&mut Nucleus).increment(&capability)?;
//! ```

use alloc::vec;
use alloc::vec::Vec;

use super::sys;
use amoeba_abi::{GetPort, Header, Status};
use amoeba_ipc::interface::Transport;

/// Transactions through the nucleus (`trans`): the transport of client stubs on a
/// board. Requests and replies up to the nucleus's FLIP limit (1 MiB and more).
#[derive(Clone, Copy, Debug, Default)]
pub struct Nucleus;

impl Transport for Nucleus {
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status> {
        // Room for the largest reply, not zeroed: only what comes back is kept.
        let mut reply = Vec::new();
        let header = sys::trans_appending(request, buf, &mut reply, reply_limit)?;
        Ok((header, reply))
    }
}

/// Serves put-port F(`get`) on this thread forever: each request (at most
/// `max_request` bytes of buffer) goes to `handle` (a generated `dispatch`, usually),
/// and its answer back to the client. Returns only if `get_request` fails.
pub fn serve(
    get: &GetPort,
    max_request: usize,
    mut handle: impl FnMut(&Header, &[u8]) -> (Header, Vec<u8>),
) -> Status {
    let mut buf = vec![0u8; max_request];
    loop {
        let (request, len) = match sys::get_request(get, &mut buf) {
            Ok(got) => got,
            Err(status) => return status,
        };
        let (reply, data) = handle(&request, &buf[..len]);
        // A client that gave up meanwhile is not the server's problem.
        let _ = sys::put_reply(&reply, &data);
    }
}
