//! What a replica says of itself, typed: `replica_port::report`'s answer, from
//! which its `STD_STATUS` text is made too. Tools and tests read these fields,
//! never the text (or the console), so a reworded line cannot break them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::UpdateTimings;
use crate::store::Reading;

/// At most this many failed recovery reads are kept in a report (the rest are
/// counted only): a report's size stays bounded whatever the disk does.
pub const READ_RETRIES_KEPT: usize = 16;

/// One replica's state and history, as it reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// Which replica this is (its index in the service).
    pub index: u8,
    /// Its member id in the group, once it is a member.
    pub member: Option<u32>,
    /// Does it answer clients?
    pub serving: bool,
    /// Updates it has applied.
    pub applied: u64,
    /// Updates its reads show.
    pub visible: u64,
    /// Updates its own log holds on disk, once it has written one.
    pub durable: Option<u64>,
    /// A checksum of its whole state.
    pub state: u64,
    /// Client requests it has answered on the service's port.
    pub answered: u64,
    /// Where the updates it took from clients spent their time (sums).
    pub updates: UpdateTimings,
    /// How it came up.
    pub start: StartReport,
}

/// How a replica got its first state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Beginning {
    /// It has not got a state yet.
    #[default]
    Starting,
    /// Nothing was stored: a new service.
    New,
    /// From the best anchor on disk.
    Recovered(Recovery),
    /// It joined a running group and took the state from a member.
    Joined,
}

/// What a recovery from disk found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Whose anchor the state came from.
    pub from: u8,
    /// Updates the recovered state holds.
    pub updates: u64,
    /// Directories in it.
    pub directories: u64,
    /// The epoch the new lineage starts with.
    pub epoch: u64,
    /// Anchors of the same rank that did not load (an equal one did).
    pub skipped: Vec<u8>,
}

/// How the replica came up, and which reads it had to try again on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartReport {
    /// Where its state came from.
    pub beginning: Beginning,
    /// Reads that failed at recovery and were tried again (the first
    /// [`READ_RETRIES_KEPT`]).
    pub read_retries: Vec<Reading>,
    /// How many reads failed and were tried again, in all.
    pub read_retries_total: u32,
}

impl StartReport {
    /// Notes a failed read that will be tried again.
    pub fn note_retry(&mut self, reading: Reading) {
        if self.read_retries.len() < READ_RETRIES_KEPT {
            self.read_retries.push(reading);
        }
        self.read_retries_total = self.read_retries_total.saturating_add(1);
    }
}

/// The `STD_STATUS` text: one line for people.
impl fmt::Display for ReplicaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let member = self.member.map_or(String::from("none"), |m| alloc::format!("{m}"));
        let durable = self.durable.map_or(String::from("none"), |d| alloc::format!("{d}"));
        write!(
            f,
            "replica {}: member {member}, {}, applied {}, visible {}, durable {durable}, state {:016x}, \
             answered {}, updates {}, ordering-us {}, logging-us {}, confirming-us {}",
            self.index,
            if self.serving { "serving" } else { "not serving" },
            self.applied,
            self.visible,
            self.state,
            self.answered,
            self.updates.count,
            self.updates.ordering_us,
            self.updates.logging_us,
            self.updates.confirming_us,
        )?;
        match &self.start.beginning {
            Beginning::Starting => f.write_str(", starting")?,
            Beginning::New => f.write_str(", began new")?,
            Beginning::Joined => f.write_str(", joined")?,
            Beginning::Recovered(r) => {
                write!(f, ", recovered {} updates from replica {}'s anchor", r.updates, r.from)?
            }
        }
        if self.start.read_retries_total > 0 {
            write!(f, ", {} reads tried again", self.start.read_retries_total)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_keeps_a_bounded_list_of_retries_and_counts_them_all() {
        let mut start = StartReport::default();
        for r in 0..(READ_RETRIES_KEPT as u8 + 5) {
            start.note_retry(Reading::State(r % 3));
        }
        assert_eq!(start.read_retries.len(), READ_RETRIES_KEPT);
        assert_eq!(start.read_retries_total, READ_RETRIES_KEPT as u32 + 5);
        let report = ReplicaReport { index: 2, serving: true, applied: 9, start, ..Default::default() };
        let text = alloc::format!("{report}");
        assert!(text.starts_with("replica 2: member none, serving, applied 9,"), "{text}");
        assert!(text.ends_with(", starting, 21 reads tried again"), "{text}");
    }
}
