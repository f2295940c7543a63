//! The SOAP directory service's pure core: directories as rows of names mapped to
//! capability sets with rights columns, as a state machine over ordered updates.
//!
//! * [`State`]: the directory state, a pure function of the ordered [`Update`]s
//!   applied to it ([`State::apply`]); [`Query`]s read it ([`State::query`]).
//! * [`codec`]: compact, versioned binary encodings of requests, replies and states.
//! * [`store`]: what is kept in Bullet files and anchors, and whole-pool recovery.
//! * [`Replica`]: one replica, sans-IO: group order, leases for local linearizable
//!   reads, state transfer, durable logging ([`persist`]), replies.
//! * [`types`]: names, rights columns and limits. Directory rights: bit `c` (0..=3)
//!   reads through column `c`, [`RIGHT_MODIFY`] (0x40) changes rows,
//!   [`RIGHT_DELETE`] (0x80) discards the directory.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod codec;
mod ops;
pub mod persist;
pub mod protocol;
pub mod replica;
mod state;
pub mod store;
pub mod types;

pub use codec::DecodeError;
pub use ops::{InstallEntry, Lookup, Query, Reply, Request, Update};
pub use replica::{GroupInput, NOT_SERVING, OUTCOME_UNKNOWN, Output, Replica, ReplicaConfig, Start};
pub use state::{Directory, MAX_LIFE, State};
pub use store::{Anchor, AnchorSlot, Store, StoreDone, StoreError, StoreOp};
pub use types::{COLUMN_RIGHTS, RIGHT_DELETE, RIGHT_MODIFY, Row};
