//! Bootstrap and report: what a started program tells the one that started it.
//!
//! A starter (the host bringing the system up, a test, the boot service) hands
//! each program it starts a capability for an object of its own bootstrap
//! server, named [`BOOTSTRAP_CAPABILITY_NAME`] in the program's capability
//! environment (as STDOUT names its terminal). A server that comes up
//! announces there what its starter needs to reach it (its capability, a group
//! it made); a test program reports its results there as typed figures. So the
//! starter reads no capability and no result out of console text, which stays
//! for people.

use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Rights};
use serde::{Deserialize, Serialize};

/// The name of the starter's bootstrap object in a program's capability environment.
pub const BOOTSTRAP_CAPABILITY_NAME: &str = "BOOTSTRAP";
/// Bootstrap right: announce and report on the object (all a started program needs).
pub const BOOTSTRAP_TELL: Rights = Rights::MODIFY;
/// The longest name a figure may have.
pub const FIGURE_NAME_MAX: usize = 64;
/// The longest text a figure may carry.
pub const FIGURE_TEXT_MAX: usize = 8 * 1024;
/// The most numbers one figure may carry.
pub const FIGURE_NUMBERS_MAX: usize = 1024;

/// What a server that has come up tells its starter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Announcement {
    /// It serves, through this capability (its super or owner capability).
    Serving(Capability),
    /// It made a group, which others join with this capability (a directory
    /// replica that created the replicas' group).
    Group(Capability),
}

/// One result a program reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is (at most [`FIGURE_NAME_MAX`] bytes).
    pub name: String,
    /// Its value.
    pub value: Value,
}

/// A figure's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// A count or an amount.
    Unsigned(u64),
    /// A number that may be negative (an exit status, say).
    Signed(i64),
    /// Yes or no.
    Flag(bool),
    /// Words (at most [`FIGURE_TEXT_MAX`] bytes).
    Text(String),
    /// A capability the program made or was given.
    Capability(Capability),
    /// A series (at most [`FIGURE_NUMBERS_MAX`]; a longer one goes as several
    /// figures of one name, in order).
    Numbers(Vec<u64>),
    /// How long one kind of operation took, over many tries (a bench's result).
    Timing(Timing),
}

/// The spread of many timings of one operation, in µs: what a bench program
/// measured, in the form the host compares it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Tries timed.
    pub count: u64,
    /// The median.
    pub median_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
}

impl Timing {
    /// Of `samples` (µs, any order; sorted in place); `None` without any.
    /// Each quantile is the sample nearest to it, as the host's summaries pick them.
    pub fn of_micros(samples: &mut [u64]) -> Option<Timing> {
        samples.sort_unstable();
        let last = samples.len().checked_sub(1)?;
        // Per cent, rounded to the nearest index: ((last * q) + 0.5) in integers.
        let at = |per_cent: usize| samples[(last * per_cent + 50) / 100];
        Some(Timing { count: samples.len() as u64, median_us: at(50), p99_us: at(99) })
    }
}

impl Figure {
    /// Whether it keeps within the bounds above (a bootstrap server refuses one
    /// that does not, with `ArgBad`).
    pub fn is_bounded(&self) -> bool {
        self.name.len() <= FIGURE_NAME_MAX
            && match &self.value {
                Value::Text(text) => text.len() <= FIGURE_TEXT_MAX,
                Value::Numbers(numbers) => numbers.len() <= FIGURE_NUMBERS_MAX,
                _ => true,
            }
    }
}

/// The series reported as `name` among `figures`: the numbers of every such
/// figure, in order (a long series comes as several figures of one name);
/// `None` if one of them holds anything but numbers.
pub fn series(figures: &[Figure], name: &str) -> Option<Vec<u64>> {
    let mut series = Vec::new();
    for figure in figures.iter().filter(|f| f.name == name) {
        match &figure.value {
            Value::Numbers(numbers) => series.extend_from_slice(numbers),
            _ => return None,
        }
    }
    Some(series)
}

crate::interface! {
    /// A starter's bootstrap server: one object per program it started.
    pub mod bootstrap {
        /// A server tells its starter it has come up (`NoSpace`: the object
        /// holds as many announcements as it keeps).
        fn announce as BOOTSTRAP_ANNOUNCE = 3600, object(BOOTSTRAP_TELL)
            (announcement: data<Announcement>) -> ();
        /// A program reports one result (`ArgBad`: out of bounds; `NoSpace`: the
        /// object holds as many figures as it keeps).
        fn report as BOOTSTRAP_REPORT = 3601, object(BOOTSTRAP_TELL) (figure: data<Figure>) -> ();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_out_of_bounds_are_seen() {
        let figure = |name: &str, value| Figure { name: String::from(name), value };
        assert!(figure("total", Value::Unsigned(40_000)).is_bounded());
        assert!(!figure(&"n".repeat(FIGURE_NAME_MAX + 1), Value::Flag(true)).is_bounded());
        assert!(!figure("t", Value::Text("x".repeat(FIGURE_TEXT_MAX + 1))).is_bounded());
        assert!(!figure("s", Value::Numbers(alloc::vec![0; FIGURE_NUMBERS_MAX + 1])).is_bounded());
    }

    #[test]
    fn series_join_their_pieces_in_order() {
        let figure = |name: &str, value| Figure { name: String::from(name), value };
        let figures = [
            figure("sent", Value::Numbers(alloc::vec![1, 2])),
            figure("other", Value::Numbers(alloc::vec![9])),
            figure("sent", Value::Numbers(alloc::vec![3])),
            figure("odd", Value::Flag(true)),
        ];
        assert_eq!(series(&figures, "sent"), Some(alloc::vec![1, 2, 3]));
        assert_eq!(series(&figures, "none"), Some(alloc::vec![]));
        assert_eq!(series(&figures, "odd"), None, "a flag is no series");
    }

    #[test]
    fn timings_pick_the_nearest_samples() {
        let mut samples: alloc::vec::Vec<u64> = (1..=100).rev().collect();
        assert_eq!(Timing::of_micros(&mut samples), Some(Timing { count: 100, median_us: 51, p99_us: 99 }));
        assert_eq!(Timing::of_micros(&mut [7]), Some(Timing { count: 1, median_us: 7, p99_us: 7 }));
        assert_eq!(Timing::of_micros(&mut [3, 1, 2]), Some(Timing { count: 3, median_us: 2, p99_us: 3 }));
        assert_eq!(Timing::of_micros(&mut []), None);
    }
}
