//! The boot service (Amoeba's boot server): it keeps the list of the system's
//! services, polls each, and restarts one that has died, on the right board with
//! the same identity. Its interface reports what it sees, for `just services`.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// What the boot service makes of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceState {
    /// It answered its last check.
    Up,
    /// It missed its check, but its process lives on a board that answers: slow,
    /// not dead; it is left alone.
    Suspect,
    /// It is being started (again) and has not answered yet.
    Restarting,
    /// Its process is gone (or its board rebooted or went silent); it will be
    /// started again as soon as it may.
    Dead,
}

/// Why a service was started again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartReason {
    /// No process of it was found when the boot service started.
    NotRunning,
    /// Its board's process server said its process had ended (or knew it no more).
    ProcessEnded,
    /// Its board rebooted (a new incarnation): its process went with it.
    BoardRebooted,
    /// Its board stopped answering for several seconds.
    BoardSilent,
    /// It holds capabilities for objects of this board, which rebooted since
    /// (they are void): it is replaced by a process with fresh ones.
    StaleCapabilities(u16),
}

/// One start of a service by the boot service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    /// Microseconds before the report.
    pub ago_us: u64,
    /// The board it was started on.
    pub board: u16,
    /// Why.
    pub reason: RestartReason,
    /// `None` while the start runs; then whether it worked (the error in words if not).
    pub outcome: Option<Result<(), String>>,
}

/// One service as the boot service sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Its name in the boot configuration (`bullet`, `directory 1`, `run`).
    pub name: String,
    /// The program it runs.
    pub program: String,
    /// The board it runs on (or was last started on).
    pub board: Option<u16>,
    /// Its state.
    pub state: ServiceState,
    /// Why it is in that state, in words.
    pub note: String,
    /// Times the boot service started it.
    pub restarts: u32,
    /// Microseconds since it last answered its check (`None`: never).
    pub answered_us_ago: Option<u64>,
    /// Its latest starts, newest last.
    pub history: Vec<RestartRecord>,
}

crate::interface! {
    /// The boot service.
    pub mod boot_service {
        /// Every service, its board, state and restarts.
        fn services as BOOT_SERVICES = 3500, server(Rights::READ) ()
            -> (services: data<Vec<ServiceReport>>) limit 64 * 1024;
    }
}
