//! The run server's pure core: which processor of the pool should run a program.
//!
//! [`Pool`] keeps the processors of the run server's pool directory. The server
//! program asks it which host to poll ([`Pool::next_poll`]), feeds it the
//! decoded replies of the process servers' info calls ([`HostInfo::is_consistent`],
//! [`Pool::record_info`]) and silences ([`Pool::record_no_answer`]), and asks it
//! where a program should run ([`Pool::place`]). Placement follows Amoeba's
//! rule: suitability = preference × speed ÷ (load + 1) × free memory (capped) ×
//! a bonus where the text is cached, random among hosts within 5 % of the best,
//! never a host silent for a second or without a free run that holds the
//! program. Placements count on their host until a report shows them (then
//! the report alone counts) or the placement timeout passes, so a burst of
//! requests between polls spreads out. A report no board could give
//! ([`HostInfo::is_consistent`]) is refused and counts as no answer.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod info;
mod pool;
mod score;

pub use info::{HostInfo, MAX_CACHED_TEXTS, UNIT};
pub use pool::{Config, HostRef, HostStatus, MAX_PENDING, PlaceError, Pool, ReportRefused};
pub use score::{Estimate, Program, Rule, Weights, band_floor, suitability};
