//! Finding servers: the client's cache of who serves each put-port, and the LOCATE
//! broadcasts that fill it. (Answering LOCATEs is the server side's job.)
//!
//! A LOCATE for port P is answered with HERE_IS by every endpoint where a server
//! registered G with `P = F(G)`. Every answer that proves it (below) goes into the
//! cache; transactions to P take the cached servers round robin. An entry not
//! confirmed for `cache_ttl` (by a HERE_IS or a reply) is dropped, and a server that
//! stops answering, says NOT_HERE, or refuses a request as stale leaves the cache, so
//! the next transaction locates again. Each HERE_IS also tells the server's memory
//! epoch, which the client's requests to that server carry (see [`crate::server`]).
//!
//! # The locate proof: only a holder of G can answer for P
//!
//! Requests carry capabilities, so a station that could answer a LOCATE for P
//! without serving P would receive them. The get-port G determines an Ed25519 key
//! pair, and `P = F(G)` is the first 48 bits of SHA-256 of its public key
//! (`amoeba_abi::GetPort::locate_key`). So:
//!
//! 1. The client's LOCATE carries a fresh 16-byte nonce N (its MAC, incarnation and
//!    a counter: unique over the client's lifetimes; it need not be secret).
//! 2. A server holding G answers with HERE_IS carrying its public key K and the
//!    signature, under G's key, of [`crate::wire::here_is_message`]: N, P, the
//!    server's node address (which names its MAC), its incarnation and its memory
//!    epoch. It derives the key once per registered port, and signs once per LOCATE.
//! 3. The client accepts the HERE_IS only if its FLIP source address is the node
//!    address of the frame's source MAC, `trunc48(SHA-256(K)) == P`, and the
//!    signature of that message for its own N verifies under K (strict Ed25519).
//!    Anything else is dropped and counted ([`crate::Stats::here_is_refused`]).
//!
//! The signed message starts with a domain label (`flip-here-is`), so no other
//! signature by a locate key can pass for a HERE_IS. The key pair comes from G
//! alone (its seed is SHA-256 of a label and G), so every server of P has the same
//! one, derives it without asking anyone, and a client needs nothing but P.
//!
//! # Why a signature, not a keyed hash
//!
//! The obvious proof, a hash of N keyed with G (HMAC-SHA-256 under G, say), cannot
//! be checked by the client: the client knows only P, and checking a keyed hash
//! means computing it, which takes G. Handing the client G, or anything from which
//! the hash could be recomputed, would hand it the power to answer for P itself,
//! which is what the proof is meant to withhold. A public-key signature splits the
//! two: making it takes the secret half, derived from G; checking it takes the
//! public half, which is tied to P by `P = trunc48(SHA-256(K))`. That is why F is
//! "hash of the public key of a key pair seeded by G" rather than a plain one-way
//! hash of G: the put-port is still a one-way function of the get-port, and it now
//! also names a key that only the get-port's holders can sign with.
//!
//! Why an impostor cannot pass: with its own key, the key's hash is not P. With
//! P's public key (which every HERE_IS shows), it cannot sign without G. A HERE_IS
//! replayed from an earlier locate carries a signature over another nonce; and one
//! the real server made for this very nonce (the impostor sees N in the broadcast and
//! can send its own LOCATE with it) names the real server's address, so requests
//! still go to the real server's MAC, which the switch delivers to no other station
//! (`vswitch`: the F-box). The cost is per locate, never per request: the client
//! caches what a proof established until `cache_ttl` passes without confirmation.
//!
//! # What a flood costs
//!
//! Signing and checking are the expensive steps, and anyone may send LOCATEs and
//! HERE_IS, so both are bounded per locate, never left to the sender:
//!
//! * A server signs at most `Config::here_is_per_port` proofs per port and
//!   `Config::here_is_per_station` per asking station (source MAC, which the switch
//!   vouches for) in each `Config::here_is_window`; a LOCATE beyond them goes
//!   unanswered (counted in [`crate::Stats::locates_unanswered`]). It keeps its
//!   latest proofs, so the copies of one LOCATE (a client's retries carry the same
//!   nonce) are answered again without signing again. A flood of LOCATEs with fresh
//!   nonces thus costs a bounded number of signatures per window, and one station
//!   cannot take a port's whole budget.
//! * A client checks at most [`HERE_IS_CHECKS_PER_BROADCAST`] HERE_IS per LOCATE
//!   broadcast (late answers to a finished search draw on what the last broadcast
//!   left), and at most one from a station whose answer already failed; what is over
//!   the budget is dropped unchecked and counted as refused. The cheap tests (the
//!   nonce is the search's, the signed address names the source MAC) come first and
//!   cost no check. A flood of bogus HERE_IS thus costs at most
//!   `locate_attempts × HERE_IS_CHECKS_PER_BROADCAST` verifications per locate; an
//!   impostor with many MACs may use them up within a round, and the client then
//!   finds the real server at a later broadcast, or fails with `RpcNotFound`:
//!   a denial of service the impostor can also cause by flooding the wire, never a
//!   request sent to it.
//!
//! Strength: P has 48 bits, so a key whose hash hits P takes about 2^48 key
//! generations (each an elliptic-curve scalar multiplication): a long offline search
//! for one chosen port, more than the lifetime of a pool's random get-ports is
//! worth, but not a margin against a determined, well-funded attacker. Wider ports
//! would be the cure; the rest of the proof (Ed25519, 128-bit security) is not the
//! weak part.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use amoeba_abi::{Port, verify_locate};

use crate::config::Config;
use crate::outbox::{Dest, Identity, Outbox};
use crate::wire::{Addr, HereIsProof, LOCATE_NONCE_LEN, Mac, Packet, PacketType, here_is_message};

/// Most servers remembered for one port.
const MAX_SERVERS_PER_PORT: usize = 16;

/// Most HERE_IS answers a client checks (verifies the signature of) per LOCATE
/// broadcast: as many as it would cache servers.
pub const HERE_IS_CHECKS_PER_BROADCAST: u32 = MAX_SERVERS_PER_PORT as u32;

/// What checking the answers to one broadcast may still cost.
#[derive(Clone)]
struct Checks {
    /// Checks left.
    left: u32,
    /// Stations whose answer failed its check: not checked again.
    failed: Vec<Mac>,
}

impl Checks {
    /// The budget of a new broadcast.
    fn fresh() -> Checks {
        Checks { left: HERE_IS_CHECKS_PER_BROADCAST, failed: Vec::new() }
    }

    /// Whether an answer from `src` may be checked; if so it is counted.
    fn allow(&mut self, src: Mac) -> bool {
        if self.left == 0 || self.failed.contains(&src) {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// One server of a port, as a client knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerRef {
    /// The server endpoint's FLIP address.
    pub addr: Addr,
    /// Its Ethernet address.
    pub mac: Mac,
    /// Its boot incarnation; requests carry it, so a rebooted server refuses them.
    pub inc: u32,
    /// Its memory epoch, from its HERE_IS; requests carry it, so a server that has
    /// forgotten clients since can tell whether it may have forgotten this request.
    pub epoch: u64,
}

impl ServerRef {
    /// Where requests for `port` to this server go.
    pub fn dest(&self, port: Port) -> Dest {
        Dest { mac: self.mac, addr: Addr::port(port), inc: self.inc }
    }
}

/// The cached servers of one port.
struct CacheEntry {
    /// Known servers, in the order they answered.
    servers: Vec<ServerRef>,
    /// Round-robin position: the next transaction goes to `servers[next % len]`.
    next: usize,
    /// When a server of this port last confirmed it serves it (HERE_IS or a reply).
    last_ok: u64,
    /// The nonce of the LOCATE that found them: late answers to it still count.
    nonce: [u8; LOCATE_NONCE_LEN],
    /// What checking late answers may still cost: what the search's last broadcast
    /// left.
    checks: Checks,
}

/// A running search for a port's servers.
struct Search {
    /// LOCATE broadcasts sent so far.
    attempts: u32,
    /// When to broadcast again (or give up).
    next: u64,
    /// The current interval between broadcasts (doubles).
    interval: u64,
    /// The nonce every broadcast of this search carries, which a HERE_IS must sign.
    nonce: [u8; LOCATE_NONCE_LEN],
    /// What checking the answers to the latest broadcast may still cost.
    checks: Checks,
}

/// The locate cache and the searches in progress.
#[derive(Default)]
pub(crate) struct Locator {
    /// Who serves each port, as far as this client knows.
    cache: BTreeMap<Port, CacheEntry>,
    /// Ports being located, with their broadcast timers.
    searches: BTreeMap<Port, Search>,
    /// LOCATE broadcasts sent (a statistic).
    pub locates: u64,
    /// Searches started: the counter in each nonce.
    searches_started: u64,
    /// HERE_IS answers dropped for want of a valid proof, or unchecked for want of
    /// budget (a statistic).
    pub here_is_refused: u64,
    /// HERE_IS proofs checked (a statistic).
    pub here_is_checked: u64,
}

impl Locator {
    /// The next server for `port`, round robin; `None` if the cache has none that is
    /// recent enough (the caller locates).
    pub fn pick(&mut self, now: u64, port: Port, cfg: &Config) -> Option<ServerRef> {
        let e = self.cache.get_mut(&port)?;
        if e.servers.is_empty() || now >= e.last_ok.saturating_add(cfg.cache_ttl) {
            self.cache.remove(&port);
            return None;
        }
        let i = e.next % e.servers.len();
        e.next = e.next.wrapping_add(1);
        Some(e.servers[i])
    }

    /// Start locating `port`, unless a search is already running.
    pub fn search(&mut self, now: u64, port: Port, cfg: &Config, out: &mut Outbox) {
        if self.searches.contains_key(&port) {
            return;
        }
        let interval = cfg.locate_interval;
        self.searches_started += 1;
        let nonce = nonce(&out.me, self.searches_started);
        let search = Search { attempts: 1, next: now + interval, interval, nonce, checks: Checks::fresh() };
        self.searches.insert(port, search);
        self.broadcast(port, &nonce, out);
    }

    fn broadcast(&mut self, port: Port, nonce: &[u8; LOCATE_NONCE_LEN], out: &mut Outbox) {
        self.locates += 1;
        let to = Dest { mac: Mac::BROADCAST, addr: Addr::port(port), inc: 0 };
        out.control(to, PacketType::Locate, 0, 0, nonce);
    }

    /// Earliest search timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.searches.values().map(|s| s.next).min()
    }

    /// Ports whose search timer is due.
    pub fn due(&self, now: u64) -> Vec<Port> {
        self.searches.iter().filter(|(_, s)| s.next <= now).map(|(p, _)| *p).collect()
    }

    /// A search timer fired: broadcast again, or give up after `locate_attempts`
    /// (returns false: nobody answered, the search is over).
    pub fn retry(&mut self, now: u64, port: Port, cfg: &Config, out: &mut Outbox) -> bool {
        let Some(s) = self.searches.get_mut(&port) else {
            return true;
        };
        if s.attempts >= cfg.locate_attempts {
            self.searches.remove(&port);
            return false;
        }
        s.attempts += 1;
        s.interval = (s.interval * 2).min(cfg.rto_max.max(cfg.locate_interval));
        s.next = now + s.interval;
        s.checks = Checks::fresh();
        let nonce = s.nonce;
        self.broadcast(port, &nonce, out);
        true
    }

    /// A HERE_IS from `src`: if it proves that its sender serves the port (see the
    /// module documentation), cache the server. Returns the port if this ended a
    /// search (the transactions waiting for it can go).
    pub fn on_here_is(&mut self, now: u64, src: Mac, p: &Packet<'_>, my_inc: u32) -> Option<Port> {
        let h = &p.header;
        let port = h.dst.as_port()?;
        if h.dst_inc != my_inc || !h.src.is_node() {
            return None;
        }
        let (nonce, checks) = match (self.searches.get_mut(&port), self.cache.get_mut(&port)) {
            (Some(s), _) => (s.nonce, &mut s.checks),
            (None, Some(e)) => (e.nonce, &mut e.checks),
            (None, None) => return None,
        };
        // Requests go to the frame's source MAC: the signed address must name it.
        let proof = HereIsProof::parse(p.payload).filter(|_| h.src == Addr::node(src));
        let Some(proof) = proof.filter(|_| checks.allow(src)) else {
            self.here_is_refused += 1;
            return None;
        };
        self.here_is_checked += 1;
        let message = here_is_message(&nonce, port, h.src, h.src_inc, h.msg_id);
        if !verify_locate(port, &proof.public_key, &message, &proof.signature) {
            if checks.failed.try_reserve(1).is_ok() {
                checks.failed.push(src);
            }
            self.here_is_refused += 1;
            return None;
        }
        let checks = checks.clone();
        let e = self.cache.entry(port).or_insert(CacheEntry {
            servers: Vec::new(),
            next: 0,
            last_ok: now,
            nonce,
            checks,
        });
        let s = ServerRef { addr: h.src, mac: src, inc: h.src_inc, epoch: h.msg_id };
        match e.servers.iter_mut().find(|x| x.addr == h.src) {
            Some(x) => {
                if h.src_inc > x.inc || (h.src_inc == x.inc && h.msg_id >= x.epoch) {
                    *x = s;
                }
            }
            None => {
                if e.servers.len() < MAX_SERVERS_PER_PORT {
                    e.servers.push(s);
                }
            }
        }
        e.last_ok = now;
        self.searches.remove(&port).map(|_| port)
    }

    /// A server of `port` answered a transaction: the entry stays fresh.
    pub fn confirm(&mut self, port: Port, now: u64) {
        if let Some(e) = self.cache.get_mut(&port) {
            e.last_ok = now;
        }
    }

    /// The server at `addr` no longer serves `port` (or is dead).
    pub fn remove_server(&mut self, port: Port, addr: Addr) {
        if let Some(e) = self.cache.get_mut(&port) {
            e.servers.retain(|s| s.addr != addr);
            if e.servers.is_empty() {
                self.cache.remove(&port);
            }
        }
    }

    /// Forget what the cache knows about `port`.
    pub fn forget(&mut self, port: &Port) {
        self.cache.remove(port);
    }

    /// The servers cached for `port`.
    pub fn cached(&self, port: &Port) -> Vec<(Mac, Addr, u32)> {
        self.cache
            .get(port)
            .map(|e| e.servers.iter().map(|s| (s.mac, s.addr, s.inc)).collect())
            .unwrap_or_default()
    }
}

/// A LOCATE nonce: the client's MAC, incarnation and search counter. Unique over the
/// client's lifetimes (incarnations grow across reboots), which is all it needs to be:
/// a signature over it answers this search and no other.
fn nonce(me: &Identity, counter: u64) -> [u8; LOCATE_NONCE_LEN] {
    let mut n = [0u8; LOCATE_NONCE_LEN];
    n[..6].copy_from_slice(&me.mac.0);
    n[6..10].copy_from_slice(&me.inc.to_be_bytes());
    n[10..].copy_from_slice(&counter.to_be_bytes()[2..]);
    n
}
