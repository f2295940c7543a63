//! The run server: which processor of its pool should run a program. It only
//! chooses; the caller's exec library builds the process with the capability it
//! hands out (the chosen board's host capability, restricted to placement).
//!
//! Handing out a processor's capability lets its holder create processes there,
//! so asking for one needs a right of its own, [`RUN_PLACE`], not just the right
//! to read the run server's view of its pool ([`RUN_READ`]).

use crate::interfaces::process::HostInfo;
use alloc::string::String;
use amoeba_abi::{Capability, Rights};
use serde::{Deserialize, Serialize};

/// Run-server right: be given a processor to run a program on (`find_host`), that
/// is, a capability that creates processes there
/// ([`HOST_PLACEMENT`](crate::interfaces::process::HOST_PLACEMENT)). The owner
/// capability has it; a capability restricted to [`RUN_READ`] lists the pool only.
pub const RUN_PLACE: Rights = Rights::CREATE;
/// Run-server right: read what the run server knows of its processors (`hosts`).
pub const RUN_READ: Rights = Rights::READ;

/// What a program needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRequest {
    /// Its name (for the run server's log).
    pub program: String,
    /// Bytes it needs in one piece (program, stack and heap; the largest segment).
    pub memory: u64,
    /// Its text's identity (`process::text_id`), for the cache bonus.
    pub text: Option<u64>,
}

/// Where to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The processor's name in the pool directory.
    pub host: String,
    /// Its process server's capability, with the create and info rights and no
    /// others ([`HOST_PLACEMENT`](crate::interfaces::process::HOST_PLACEMENT)).
    pub capability: Capability,
}

/// One processor as the run server sees it (for `hosts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Its name in the pool directory.
    pub name: String,
    /// Whether it answered its last poll within about a second.
    pub alive: bool,
    /// What it said last.
    pub info: Option<HostInfo>,
    /// Placements made there that its reports do not show yet.
    pub pending: u32,
    /// Answers refused because no board could have given them
    /// ([`HostInfo::is_consistent`]); they count as no answer.
    pub impossible_reports: u32,
}

crate::interface! {
    /// Processor selection.
    pub mod run_server {
        /// The processor for a program (`NoSpace`: none has room; `NotFound`: none alive).
        fn find_host as RUN_FIND_HOST = 3001, server(RUN_PLACE)
            (request: data<PlacementRequest>) -> (placement: data<Placement>);
        /// Every processor of the pool and what the run server knows of it.
        fn hosts as RUN_HOSTS = 3003, server(RUN_READ) () -> (hosts: data<Vec<HostReport>>);
    }
}
