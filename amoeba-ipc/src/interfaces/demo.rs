//! The demonstration services: an echo server (RPC demos and benchmarks) and a
//! counter object server (at-most-once tests), and the sink bench programs report
//! their measured costs to.

crate::interface! {
    /// Echo: answers with what it was sent. Public: anyone who knows the put-port.
    /// Every reply carries the server's tag, so clients can tell which of several
    /// servers on one port answered.
    pub mod echo {
        /// The request's buffer comes back.
        fn echo as ECHO = 4100, public() (data: bytes) -> (tag: extra<u32>, data: bytes) limit data.len();
        /// The request's buffer is dropped; an empty reply (throughput, null calls).
        fn sink as ECHO_SINK = 4101, public() (data: bytes) -> (tag: extra<u32>);
        /// `size` bytes come back (bulk replies: the unit of file reads).
        fn source as ECHO_SOURCE = 4102, public() (size: size<u32>) -> (tag: extra<u32>, data: bytes) limit size;
    }
}

crate::interface! {
    /// Counter objects; the count comes back in the reply header's `extra`.
    pub mod counter {
        /// Add one.
        fn increment as COUNTER_INCREMENT = 4000, object(Rights::MODIFY) () -> (count: extra<u32>);
        /// The current count.
        fn read as COUNTER_READ = 4001, object(Rights::READ) () -> (count: extra<u32>);
        /// Add one after the server has waited 3 s (for tests that kill it meanwhile).
        fn slow_increment as COUNTER_SLOW_INCREMENT = 4002, object(Rights::MODIFY) () -> (count: extra<u32>);
    }
}

/// One operation's cost as a bench program on a board measured it, over many
/// repetitions between two readings of the board's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Which operation (the bench program's name for it).
    pub operation: alloc::string::String,
    /// How many times it ran between the two readings.
    pub repetitions: u64,
    /// Instructions the board retired over them (the PMU's count, which QEMU
    /// gives only under `-icount`; zero otherwise).
    pub instructions: u64,
    /// Generic-timer ticks over them (instructions' virtual time under
    /// `-icount`, wall-clock time without it).
    pub ticks: u64,
    /// The generic timer's frequency.
    pub ticks_per_second: u64,
}

crate::interface! {
    /// Where bench programs report what they measured (`just bench
    /// --instructions`): the host serves it, so figures never go through a
    /// console. Public: anyone who knows the put-port.
    pub mod costs {
        /// One operation's cost.
        fn report as COSTS_REPORT = 4200, public() (cost: data<Cost>) -> ();
        /// A capability the host needs to start the bench's other programs
        /// (e.g. a group's, for its members): `Capability::encode`'s 16 bytes.
        fn announce as COSTS_ANNOUNCE = 4201, public() (capability: bytes) -> ();
        /// Nothing: a null call to a bench program serving this interface.
        fn null as COSTS_NULL = 4202, public() () -> ();
        /// The serving board's instruction count (`amoeba_rt::time::instructions`),
        /// read as the request is handled: the server side of a remote call.
        fn instructions as COSTS_INSTRUCTIONS = 4203, public() () -> (count: offset<u64>);
        /// The bench program failed (its status's code, `i32::from`): the host
        /// learns it without asking the board meanwhile.
        fn failed as COSTS_FAILED = 4204, public() (status: extra<u32>) -> ();
    }
}

/// The hash group demos report their order as (`order`): FNV-1a over each
/// delivered message's sequence number, sender and bytes, in delivery order.
/// Boards and the host compute it with this one definition, so equal hashes
/// mean equal orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderHash(u64);

/// FNV-1a's offset basis: the hash of nothing.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// `hash` with `bytes` added, FNV-1a.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

impl Default for OrderHash {
    fn default() -> Self {
        OrderHash(FNV_OFFSET)
    }
}

impl OrderHash {
    /// Adds the next delivered message.
    pub fn add(&mut self, sequence: u64, sender: u32, bytes: &[u8]) {
        let hash = fnv1a(self.0, &sequence.to_le_bytes());
        self.0 = fnv1a(fnv1a(hash, &sender.to_le_bytes()), bytes);
    }

    /// The hash of the messages added so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The figure `group-log` reports each entry of its group's order under (when
/// started with `REPORT_ENTRIES=1`), [`GroupLogEntry::NUMBERS`] numbers each:
/// hosts compare members' orders from these, never from consoles.
pub const GROUP_LOG_ENTRY: &str = "entry";

/// One entry of a group's order as the `group-log` demo delivered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupLogEntry {
    /// Its place in the order.
    pub sequence: u64,
    /// The member that sent it (for a membership change: the member it is about).
    pub sender: u32,
    /// What it was.
    pub what: GroupLogWhat,
}

/// What an entry of a `group-log` order was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupLogWhat {
    /// `line N from member M`, sent by member M itself: N.
    Line(u64),
    /// The sender's last message, `bye`.
    Bye,
    /// A member joined.
    Joined,
    /// A member left.
    Left,
    /// The group was reset; bit i: member i was dropped (members 0 to 63).
    Reset(u64),
    /// Any other message: the FNV-1a hash of its bytes.
    Other(u64),
}

impl GroupLogEntry {
    /// Numbers per entry in the reported series.
    pub const NUMBERS: usize = 4;

    /// A delivered message's entry.
    pub fn message(sequence: u64, sender: u32, bytes: &[u8]) -> GroupLogEntry {
        let line = core::str::from_utf8(bytes).ok().and_then(|text| {
            let (line, member) = text.strip_prefix("line ")?.split_once(" from member ")?;
            (member.parse::<u32>().ok()? == sender).then_some(line.parse::<u64>().ok()?)
        });
        let what = match (line, bytes) {
            (Some(line), _) => GroupLogWhat::Line(line),
            (None, b"bye") => GroupLogWhat::Bye,
            (None, _) => GroupLogWhat::Other(fnv1a(FNV_OFFSET, bytes)),
        };
        GroupLogEntry { sequence, sender, what }
    }

    /// The numbers it is reported as.
    pub fn to_numbers(&self) -> [u64; Self::NUMBERS] {
        let (kind, value) = match self.what {
            GroupLogWhat::Line(line) => (0, line),
            GroupLogWhat::Bye => (1, 0),
            GroupLogWhat::Joined => (2, 0),
            GroupLogWhat::Left => (3, 0),
            GroupLogWhat::Reset(dropped) => (4, dropped),
            GroupLogWhat::Other(hash) => (5, hash),
        };
        [self.sequence, u64::from(self.sender), kind, value]
    }

    /// The entry `numbers` hold; `None` if they hold none.
    pub fn from_numbers(numbers: &[u64]) -> Option<GroupLogEntry> {
        let [sequence, sender, kind, value] = *numbers else { return None };
        let what = match kind {
            0 => GroupLogWhat::Line(value),
            1 => GroupLogWhat::Bye,
            2 => GroupLogWhat::Joined,
            3 => GroupLogWhat::Left,
            4 => GroupLogWhat::Reset(value),
            5 => GroupLogWhat::Other(value),
            _ => return None,
        };
        Some(GroupLogEntry { sequence, sender: u32::try_from(sender).ok()?, what })
    }

    /// The entries of a reported series, in order; `None` if any is not one.
    pub fn all(series: &[u64]) -> Option<alloc::vec::Vec<GroupLogEntry>> {
        if !series.len().is_multiple_of(Self::NUMBERS) {
            return None;
        }
        series.chunks(Self::NUMBERS).map(Self::from_numbers).collect()
    }

    /// Is it an application message (not a membership change)?
    pub fn is_message(&self) -> bool {
        matches!(self.what, GroupLogWhat::Line(_) | GroupLogWhat::Bye | GroupLogWhat::Other(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_log_entries_go_through_their_numbers() {
        let entries = [
            GroupLogEntry::message(7, 2, b"line 41 from member 2"),
            GroupLogEntry::message(8, 2, b"line 41 from member 3"),
            GroupLogEntry::message(9, 1, b"bye"),
            GroupLogEntry { sequence: 10, sender: 0, what: GroupLogWhat::Reset(1) },
        ];
        assert_eq!(entries[0].what, GroupLogWhat::Line(41));
        assert!(matches!(entries[1].what, GroupLogWhat::Other(_)), "a line signed by another member");
        assert_eq!(entries[2].what, GroupLogWhat::Bye);
        let series: alloc::vec::Vec<u64> = entries.iter().flat_map(|e| e.to_numbers()).collect();
        assert_eq!(GroupLogEntry::all(&series).as_deref(), Some(&entries[..]));
        assert_eq!(GroupLogEntry::all(&series[1..]), None);
        assert_eq!(GroupLogEntry::from_numbers(&[1, 2, 9, 0]), None);
    }

    #[test]
    fn order_hashes_tell_orders_apart() {
        let hash = |order: &[(u64, u32, &[u8])]| {
            let mut hash = OrderHash::default();
            order.iter().for_each(|(sequence, sender, bytes)| hash.add(*sequence, *sender, bytes));
            hash.value()
        };
        let order: [(u64, u32, &[u8]); 2] = [(1, 0, b"a"), (2, 1, b"b")];
        assert_eq!(hash(&order), hash(&order));
        assert_ne!(hash(&order), hash(&[order[1], order[0]]));
        assert_ne!(hash(&order), hash(&[(1, 1, b"a"), (2, 1, b"b")]));
        assert_eq!(hash(&[]), OrderHash::default().value());
    }
}
