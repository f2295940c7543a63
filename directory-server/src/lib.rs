//! The SOAP directory service's pure core: directories as rows of names mapped to
//! capability sets with rights columns, as a state machine over ordered updates,
//! its storage, and a sans-IO replica. The board program wires a [`Replica`] to the
//! nucleus's group and RPC calls and carries out its [`StoreOp`]s on Bullet files
//! and a disk object.
//!
//! * [`State`]: the directory state, a pure function of the ordered [`Update`]s
//!   applied to it ([`State::apply`]); [`Query`]s read it ([`State::query`]).
//!   Anything random (a new directory's check) travels in the update.
//! * [`types`]: names, rights columns and limits. Directory rights: bit `c` (0..=3)
//!   reads through column `c` (a holder of several columns sees the union of their
//!   masks), [`RIGHT_MODIFY`] (0x40) changes rows, [`RIGHT_DELETE`] (0x80) discards
//!   the directory. A stored capability is handed out restricted to the mask: as
//!   stored if it already fits, restricted here if it is one of this service's
//!   objects or an owner capability (`F(random XOR rights)`), withheld otherwise (a
//!   restricted capability of another server can only be narrowed by that server).
//! * [`codec`]: versioned binary encodings (version byte, kind tag, big-endian
//!   integers, length-prefixed strings and lists, capabilities as 16 bytes) of
//!   [`Request`]s, replies ([`codec::encode_reply`]) and whole states; decoding
//!   checks every length and limit and never panics.
//! * [`store`]: what is kept on disk. Per replica an anchor in two alternating
//!   halves (write sequence, epoch, checkpoint position and end position, the
//!   checkpoint file's capability, log files, garbage still to destroy, a tail of
//!   recent records, a checksum); checkpoint files (a sealed [`State`]); log files
//!   (sealed runs of `position | update` records). [`store::recover`] loads the
//!   anchor with the highest (epoch, position) after a whole-pool restart.
//! * [`persist`]: the replica's writer: group commit of log records into the
//!   anchor's tail (one anchor write per batch), a log file when the tail is full,
//!   a checkpoint after `max_log_files` files.
//! * [`protocol`]: what replicas send each other ([`protocol::Envelope`]).
//! * [`layout`]: the service's identity (from which its ports follow) and the
//!   anchor slots on the disk area the host reserves; [`rpc_store`]: the
//!   [`Store`] over RPC (Bullet files, disk objects).
//! * [`service`]: the SOAP interface and each replica's own port, served by
//!   handing requests to the replica and waiting for its answers.
//! * [`workload`]: the calls the pool tests make and record; [`checker`]
//!   (feature `checker`, host only) checks such histories for linearizability.
//! * [`Replica`]: ordered updates, durable before they are applied, replies once
//!   every possible read-lease holder has applied them; linearizable local reads
//!   under a lease, through the group as a barrier otherwise; catching up by state
//!   transfer. Its module documentation gives the argument.
#![cfg_attr(not(any(test, feature = "checker")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(feature = "checker")]
extern crate std;

#[cfg(feature = "checker")]
pub mod checker;
pub mod codec;
pub mod layout;
mod ops;
pub mod persist;
pub mod protocol;
pub mod replica;
pub mod report;
pub mod rpc_store;
pub mod service;
mod state;
pub mod store;
pub mod types;
pub mod workload;

pub use codec::DecodeError;
pub use ops::{InstallEntry, Lookup, Query, Reply, Request, Update};
pub use replica::{
    GroupInput, NOT_SERVING, OUTCOME_UNKNOWN, Output, Replica, ReplicaConfig, Start, UpdateTimings,
};
pub use report::ReplicaReport;
pub use state::{Directory, MAX_LIFE, State};
pub use store::{Anchor, AnchorSlot, Store, StoreDone, StoreError, StoreOp};
pub use types::{COLUMN_RIGHTS, RIGHT_DELETE, RIGHT_MODIFY, Row};

/// The rights of the group capability replicas join with: to receive the
/// order and to send to it, nothing more (the owner capability stays with
/// the replica that created the group).
pub const REPLICA_GROUP_RIGHTS: amoeba_abi::Rights =
    amoeba_abi::Rights(amoeba_abi::syscall::GROUP_RIGHT_RECEIVE | amoeba_abi::syscall::GROUP_RIGHT_SEND);
