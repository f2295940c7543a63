//! The demonstration services: an echo server (RPC demos and benchmarks) and a
//! counter object server (at-most-once tests).

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
