//! Finding servers: the client's cache of who serves each put-port, and the LOCATE
//! broadcasts that fill it. (Answering LOCATEs is the server side's job.)
//!
//! A LOCATE for port P is answered with HERE_IS by every endpoint where a server
//! registered G with `P = F(G)`. Every answer goes into the cache; transactions to P
//! take the cached servers round robin. An entry not confirmed for `cache_ttl` (by a
//! HERE_IS or a reply) is dropped, and a server that stops answering, says
//! NOT_HERE, or refuses a request as stale leaves the cache, so the next transaction
//! locates again. Each HERE_IS also tells the server's memory epoch, which the
//! client's requests to that server carry (see [`crate::server`]).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use amoeba_abi::Port;

use crate::config::Config;
use crate::outbox::{Dest, Outbox};
use crate::wire::{Addr, FlipHeader, Mac, PacketType};

/// Most servers remembered for one port.
const MAX_SERVERS_PER_PORT: usize = 16;

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
}

/// A running search for a port's servers.
struct Search {
    /// LOCATE broadcasts sent so far.
    attempts: u32,
    /// When to broadcast again (or give up).
    next: u64,
    /// The current interval between broadcasts (doubles).
    interval: u64,
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
        self.searches.insert(port, Search { attempts: 1, next: now + interval, interval });
        self.broadcast(port, out);
    }

    fn broadcast(&mut self, port: Port, out: &mut Outbox) {
        self.locates += 1;
        let to = Dest { mac: Mac::BROADCAST, addr: Addr::port(port), inc: 0 };
        out.control(to, PacketType::Locate, 0, 0, &[]);
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
        self.broadcast(port, out);
        true
    }

    /// A HERE_IS from `src`: cache the server. Returns the port if this ended a
    /// search (the transactions waiting for it can go).
    pub fn on_here_is(&mut self, now: u64, src: Mac, h: &FlipHeader, my_inc: u32) -> Option<Port> {
        let port = h.dst.as_port()?;
        if h.dst_inc != my_inc || !h.src.is_node() {
            return None;
        }
        if !self.searches.contains_key(&port) && !self.cache.contains_key(&port) {
            return None;
        }
        let e = self.cache.entry(port).or_insert(CacheEntry { servers: Vec::new(), next: 0, last_ok: now });
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
