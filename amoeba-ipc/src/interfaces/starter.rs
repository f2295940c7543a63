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
    /// A series (at most [`FIGURE_NUMBERS_MAX`]).
    Numbers(Vec<u64>),
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
}
