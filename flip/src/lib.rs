//! FLIP-like packet layer and at-most-once RPC, as sans-IO state machines.
//!
//! An [`Endpoint`] is fed received frames and the current time (µs, monotonic) and
//! produces frames to send and [`Event`]s; [`Endpoint::next_deadline`] says when to
//! call [`Endpoint::handle_timeout`]. No threads, no clocks, no OS resources: the
//! same code runs inside the nucleus, inside the host client and in simulation.
//!
//! * Addressing: 64-bit [`Addr`]esses name a service (by put-port) or an endpoint (by
//!   MAC). "Who serves put-port P?" is a LOCATE broadcast, answered with HERE_IS by
//!   every endpoint where a server registered the get-port G with `P = F(G)`. A
//!   HERE_IS proves it: it carries P's public key (whose hash is P) and a signature,
//!   by the key derived from G, over the client's nonce and the server's address, so
//!   no station without G can draw requests to itself (the `locate` module says how,
//!   why a replay is useless, and why a signature rather than a hash keyed with G:
//!   the client knows only P, so it could not check such a hash). Proved answers are
//!   cached; several servers on one port share the requests round robin; a
//!   NOT_HERE answer removes the server from the cache and the request goes to
//!   another server or is located again.
//! * RPC: [`Endpoint::start_trans`] → [`Event::TransDone`]; on the server
//!   [`Endpoint::register_server`] → [`Event::RequestArrived`] →
//!   [`Endpoint::put_reply`]. Buffers up to [`Config::max_buf`] (1 MiB by default)
//!   are fragmented into 1500-byte frames and reassembled within a memory budget;
//!   lost fragments are found with ENQUIRY/ACK range lists and resent selectively.
//! * At-most-once: transactions have ids; the server keeps a record per (client,
//!   transaction) and the reply until the client acknowledges it, so retransmissions
//!   are answered without re-executing. Packets carry boot incarnations: a request to
//!   a server whose node rebooted ends with `ServerRestarted`, never runs twice. A
//!   dead server ends the transaction with `RpcFailure` after `max_retries` back-off
//!   timeouts.
//! * Bounded server memory: clients, records, partial requests and stored replies
//!   each have a [`Config`] budget. When the server sheds state it keeps just enough
//!   to refuse what it can no longer judge (**a request the server can no longer
//!   judge is refused, never run**): a shed reply leaves a "reply lost" mark
//!   (`RpcFailure`), a shed record raises the client's forgotten-up-to id, and
//!   forgetting a whole client moves the server's *memory epoch* on, which HERE_IS
//!   advertises and every request carries. So a replayed or late request is refused
//!   (`ServerRestarted`) instead of running again. The rule and why it holds are in
//!   the `server` module's documentation; [`Endpoint::server_memory`] shows the
//!   usage.
//! * Local RPC (client and server on one endpoint) takes a short path without frames.
//!
//! Wire formats are in [`wire`]; the parser is strict and never panics.
//!
//! # Driving an endpoint
//!
//! After every call that takes `now` (`handle_frame`, `handle_timeout`,
//! `start_trans`, `put_reply`, ...), drain [`Endpoint::poll_transmit`] onto the wire
//! and [`Endpoint::poll_event`] to the threads waiting in `trans`/`get_request`, then
//! arm a timer for [`Endpoint::next_deadline`]. Calling `handle_timeout` early is
//! harmless. Incarnations must grow across reboots of a node (e.g. a counter kept on
//! disk, or the boot time).
//!
//! # Protocol summary (wire version 3)
//!
//! | packet | from → to | meaning |
//! |---|---|---|
//! | LOCATE | client → broadcast | who serves this put-port? (payload: a 16-byte nonce) |
//! | HERE_IS | server → client | I do (with my incarnation; the message id is my memory epoch; payload: the port's public key and its signature over nonce, port, my address, incarnation and epoch) |
//! | UNIDATA | client → server | request fragment: `[low-water u64][epoch u64][Header][buf]` |
//! | UNIDATA + REPLY | server → client | reply fragment: `[Header][buf]` (+ ABORT) |
//! | ACK + WORKING / NEED_ALL / ranges | server → client | answer to a retransmission or ENQUIRY |
//! | ENQUIRY | client → server | after a silent timeout; lists missing reply ranges |
//! | ACK + REPLY | client → server | reply received; the server frees it |
//! | NOT_HERE | server → client | no such server here: the request did not run; try another |
//! | NOT_HERE + STALE | server → client | I rebooted, or I cannot judge this request: it did not run now |
//!
//! The low-water mark is the lowest transaction id the client still has open: the
//! server forgets records below it and ignores any packet for them. A server that
//! answered NOT_HERE for a transaction remembers it, so a late copy can never run
//! there after the client was redirected elsewhere; the redirected request goes out
//! under a fresh id, so that the same station can still run it once it serves the
//! port (a server restarted in place, registering only after a request came). The epoch is the server's memory
//! epoch the client learned from its HERE_IS (see [`wire`] for the fields).
//!
//! # Modules
//!
//! `config` (tunables and budgets), `events` (what the driver is told), `outbox`
//! (frames and events on their way out), `locate` (the client's cache of who serves
//! which port), `client` (transactions), `server` (registered ports, at-most-once
//! records, budgets and the memory epoch), `reasm` (fragment reassembly), `endpoint`
//! (ties them together behind [`Endpoint`]), [`wire`] (formats).
//!
//! ```
//! use amoeba_abi::{GetPort, Header, Port, Status};
//! use flip::{Config, Endpoint, Event, Mac};
//!
//! let mut client = Endpoint::new(Mac([2, 0, 0, 0, 0, 1]), 1, Config::default());
//! let mut server = Endpoint::new(Mac([2, 0, 0, 0, 0, 2]), 1, Config::default());
//! let get = GetPort(Port([9; 6]));
//! let put = server.register_server(&get);
//!
//! let mut req = Header::default();
//! req.port = put;
//! req.command = 4000;
//! let id = client.start_trans(0, &req, b"ping");
//!
//! // A two-node "network": move frames until both are quiet.
//! let mut now = 0;
//! let mut reply = None;
//! for _ in 0..10 {
//!     while let Some(t) = client.poll_transmit() { server.handle_frame(now, &t.frame); }
//!     while let Some(ev) = server.poll_event() {
//!         if let Event::RequestArrived { req, buf, .. } = ev {
//!             assert_eq!(buf, b"ping");
//!             server.put_reply(now, req, &Header::reply(Status::Ok), b"pong").unwrap();
//!         }
//!     }
//!     while let Some(t) = server.poll_transmit() { client.handle_frame(now, &t.frame); }
//!     while let Some(ev) = client.poll_event() {
//!         if let Event::TransDone { id: done, result } = ev {
//!             assert_eq!(done, id);
//!             reply = Some(result.unwrap().1);
//!         }
//!     }
//!     now += 1000;
//!     client.handle_timeout(now);
//!     server.handle_timeout(now);
//! }
//! assert_eq!(reply.as_deref(), Some(&b"pong"[..]));
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod client;
mod config;
mod endpoint;
mod events;
mod locate;
mod outbox;
mod reasm;
mod server;
pub mod wire;

pub use config::Config;
pub use endpoint::{Endpoint, Stats};
pub use events::{Event, ReplyError, ReqId, TransId};
pub use locate::HERE_IS_CHECKS_PER_BROADCAST;
pub use outbox::Transmit;
pub use server::ServerMemory;
pub use wire::{Addr, AddrKind, ETHERTYPE_FLIP, Mac, ParseError};
