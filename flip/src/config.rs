//! The endpoint's tunables: timers, retry counts and the budgets that bound what a
//! server keeps for its clients. One `Config` serves client and server side alike.
//!
//! With the defaults a server's memory for its clients is at most about 17 MiB:
//! 8 MiB of partial requests, 8 MiB of stored replies, and 8,192 records and 1,024
//! clients of about 100 bytes each.

/// Tunables. Times are in microseconds.
#[derive(Clone, Debug)]
pub struct Config {
    /// First retransmission timeout of a transaction.
    pub rto_initial: u64,
    /// Largest retransmission timeout (back-off doubles up to this).
    pub rto_max: u64,
    /// Consecutive timeouts without any answer from the server before the
    /// transaction fails with `RpcFailure` (the server is considered dead).
    pub max_retries: u32,
    /// First interval between LOCATE broadcasts (doubles up to `rto_max`).
    pub locate_interval: u64,
    /// LOCATE broadcasts before a transaction fails with `RpcNotFound`.
    pub locate_attempts: u32,
    /// Copies of the probe (enquiry or resent request) sent at each timeout.
    /// One probe or its answer lost makes a round silent; on a network that
    /// loses a third of all frames half of all single-probe rounds are, and
    /// `max_retries + 1` silent rounds in a row would declare a live server
    /// dead about once in 10⁴ timeouts. Two copies make a silent round a
    /// quarter as likely, without waiting longer for a dead one.
    pub probes_per_timeout: u32,
    /// Optional bound on the whole transaction (even while the server says it is
    /// working); `None` = unbounded while the server is alive.
    pub max_trans_time: Option<u64>,
    /// Largest request or reply buffer.
    pub max_buf: usize,
    /// Server memory budget for reassembling incoming requests (all clients
    /// together). A request that does not fit is dropped; its client retries.
    pub max_reassembly_bytes: usize,
    /// Server memory budget for stored replies (all clients together). Beyond it the
    /// least recently sent replies are shed: a retransmission of such a request then
    /// fails with `RpcFailure` (it ran once; its reply is gone), never runs again. A
    /// reply larger than the whole budget is sent once and not kept, so on a lossy
    /// network keep this above `max_buf`.
    pub max_reply_bytes: usize,
    /// A partly received request is dropped after this long without a new fragment.
    pub reassembly_timeout: u64,
    /// The records and stored replies of a client not heard from for this long are
    /// shed (the client is remembered in a few bytes, enough to refuse its old
    /// requests). Must exceed the longest a client may keep retransmitting.
    pub client_ttl: u64,
    /// Most clients a server remembers. Beyond it the least recently heard-from
    /// client without a request in progress is forgotten: the server's memory epoch
    /// moves on, and requests addressed to an older epoch are refused.
    pub max_clients: usize,
    /// Most transaction records a server keeps per client.
    pub max_records_per_client: usize,
    /// Most transaction records a server keeps, all clients together.
    pub max_records: usize,
    /// A locate-cache entry not confirmed (HERE_IS or successful reply) for this long
    /// is dropped; the next transaction locates again.
    pub cache_ttl: u64,
    /// "Not here" redirections before a transaction fails with `RpcNotFound`.
    pub max_redirects: u32,
    /// Most HERE_IS proofs (signatures) a server makes for one registered port per
    /// `here_is_window`, all asking stations together. A LOCATE beyond it goes
    /// unanswered; the client broadcasts again. Copies of a LOCATE already answered
    /// (same port and nonce) are answered from the proof made, without signing.
    pub here_is_per_port: u32,
    /// Most HERE_IS proofs a server makes for one asking station (source MAC) per
    /// `here_is_window`, all ports together: one station cannot use up a port's
    /// budget alone.
    pub here_is_per_station: u32,
    /// The window of the two budgets above.
    pub here_is_window: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rto_initial: 100_000,
            rto_max: 1_000_000,
            max_retries: 6,
            locate_interval: 100_000,
            locate_attempts: 5,
            probes_per_timeout: 1,
            max_trans_time: None,
            max_buf: 1 << 20,
            max_reassembly_bytes: 8 << 20,
            max_reply_bytes: 8 << 20,
            reassembly_timeout: 10_000_000,
            client_ttl: 60_000_000,
            max_clients: 1024,
            max_records_per_client: 256,
            max_records: 8192,
            cache_ttl: 60_000_000,
            max_redirects: 8,
            here_is_per_port: 128,
            here_is_per_station: 8,
            here_is_window: 1_000_000,
        }
    }
}

impl Config {
    /// For a network that may lose a third of all frames (the pool's switch with
    /// fault injection): a transaction, and the search for its server, keep
    /// trying for about ten seconds before they declare the server dead or
    /// missing.
    pub fn for_lossy_network() -> Config {
        Config { max_retries: 12, locate_attempts: 12, probes_per_timeout: 2, ..Config::default() }
    }
}
