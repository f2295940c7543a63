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
    }
}
