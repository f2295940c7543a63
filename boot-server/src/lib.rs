//! The boot service's pure core (Amoeba's boot server): which services to keep
//! up, what the polls say about each, when one is dead rather than slow, and
//! when to start it again. The board program (`program/`) carries the polls'
//! answers in and the starts out; everything it decides is here, tested on the
//! host.
//!
//! [`config`] is the configuration `up` stores as `/system/boot`: the boards,
//! and for each service its program (from the boards' boot bundle), its
//! boards, its environment and capabilities (fixed ones, or disk ranges asked
//! of a board at each start), how to check it, which services it waits for,
//! and its set (replicas restarted one at a time).
//!
//! [`table::ServiceTable`] keeps each service's life: being looked for (the
//! boot service has just started and reads each board's process list once, to
//! adopt what runs), running as a process, being started, or down.
//!
//! # Dead or slow
//!
//! Every quarter second the program checks each service with a request the
//! service answers itself (`STD_INFO`; for a directory replica, a listing read
//! at that replica), asks the service's board's process server (which answers
//! in the nucleus, however busy the service is) about the service's process,
//! and asks every board for its uptime. The rule:
//!
//! * A service whose check is refused, or unanswered for a second, is
//!   **suspect**. Nothing is done about that alone: a suspect service whose
//!   process lives on a board that answers is slow (stunned, busy, catching
//!   up), not dead, and is left alone however long it stays so.
//! * It is **dead** when its process is gone, and only then:
//!   - its board's process server says the process has exited, or knows it no
//!     more;
//!   - or its board rebooted after the process was known to exist: the board's
//!     boot time, bounded from each answer's send and receive times minus its
//!     uptime, moved past the time the process was known (or the board answered
//!     "restarted");
//!   - or, for a service that may run on several boards, its board has not
//!     answered for three seconds. A service pinned to one board waits for that
//!     board instead (it is shown dead): a board that was only cut off still
//!     holds the process, and a second copy (two Bullet servers on one disk)
//!     would be worse than a wait.
//! * A dead service is started again on its board (or the first of its boards
//!   that answers) as soon as the services it waits for are up and no other
//!   member of its set is starting; a start that fails, or a process that ends
//!   before it ever answered, makes the next start wait 1 s, 2 s, 4 s ... up to
//!   30 s. One that answers is **up**; until then it is **restarting**.
//! * A service holding disk capabilities of a board that rebooted since it
//!   started (they die with the board's incarnation) is replaced by a process
//!   with fresh ones, one member of its set at a time and only while every
//!   other member is up.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod table;

pub use config::{
    BootConfig, CapabilitySource, ConfigError, NamedCapability, ServiceCheck, ServiceConfig, capability,
    identity, parse_seed,
};
pub use table::{Action, ProcessSeen, ServiceTable, Timing, reason_text};
