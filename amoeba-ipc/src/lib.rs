//! Every server's interface declared once, and the machinery that does the rest.
//!
//! * [`interface!`](macro@crate::interface): one declaration per server names each
//!   operation, its command number, the rights it needs, and how its arguments and
//!   results map onto the header and the buffer; from it come the constants, a
//!   client stub (over any [`interface::Transport`]: the nucleus on a board, FLIP
//!   from the host) and a server trait with a dispatcher that verifies the
//!   capability, checks the rights and unmarshals before the server's own code runs.
//! * [`interfaces`]: the declarations — standard commands from 1000, Bullet from
//!   2000, SOAP from 2100, run server from 3000, process server from 3100, and the
//!   rest.
//! * [`schedule`]: poll slots spread evenly over a period, for servers that
//!   poll many peers.
//! * [`server`]: the object table most servers keep, which gives them the
//!   capability checks and standard commands of their interface.
//!
//! The capabilities, headers and statuses these are built from are `amoeba-abi`'s.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod interface;
pub mod interfaces;
pub mod schedule;
pub mod server;

/// The ABI types, for the code the macros generate in other crates.
#[doc(hidden)]
pub mod __abi {
    pub use amoeba_abi::*;
}
