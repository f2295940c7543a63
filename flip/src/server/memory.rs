//! What a server remembers about its clients, and how it sheds it within its
//! budgets while keeping the at-most-once rule (see the parent module): the
//! per-transaction records and their accounting, client memories, eviction and the
//! memory epoch, and the cleanup pass.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::config::Config;
use crate::outbox::Dest;
use crate::reasm::Reassembly;
use crate::wire::{Addr, Mac};

use super::{ServerMemory, ServerSide};

/// What the server knows about one transaction of a client.
pub(super) enum Rec {
    /// Fragments are arriving.
    Receiving(Reassembly),
    /// Delivered to the application as request `.0`; no reply yet.
    InProgress(u64),
    /// Answered; the reply is kept until the client acknowledges it.
    Replied {
        /// The reply message (header and buffer), to send again on request.
        msg: Vec<u8>,
        /// The reply is an abort.
        abort: bool,
        /// When it was last sent (resends are rate limited).
        last_sent: u64,
    },
    /// Answered, but the reply was shed (or never fitted the budget):
    /// retransmissions get `RpcFailure`.
    ReplyLost {
        /// When the reply or the last abort was sent (answers are rate limited, as
        /// for a stored reply: a retransmission crossing the reply is a duplicate).
        last_sent: u64,
    },
    /// Answered and acknowledged.
    Done,
    /// Answered NOT_HERE (no server for the port here): must never run here later.
    Refused,
    /// Refused before it ran because the server had no room to receive it (the
    /// budget for partly received requests was full): the client got an abort
    /// with `NoSpace`, and a retransmission gets the same answer, never a run.
    Busy {
        /// When the refusal was last sent (answers are rate limited).
        last_sent: u64,
    },
}

impl Rec {
    /// Ran or was refused, and holds nothing but the verdict.
    pub(super) fn finished(&self) -> bool {
        matches!(self, Rec::Done | Rec::Refused | Rec::ReplyLost { .. } | Rec::Busy { .. })
    }

    pub(super) fn reassembly_bytes(&self) -> usize {
        match self {
            Rec::Receiving(r) => r.total() as usize,
            _ => 0,
        }
    }

    pub(super) fn reply_bytes(&self) -> usize {
        match self {
            Rec::Replied { msg, .. } => msg.len(),
            _ => 0,
        }
    }
}

/// What the server's records hold, all clients together.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(super) struct Usage {
    /// Records.
    pub(super) records: usize,
    /// Bytes of partly received requests.
    pub(super) reassembly_bytes: usize,
    /// Bytes of stored replies.
    pub(super) reply_bytes: usize,
}

impl Usage {
    pub(super) fn add(&mut self, r: &Rec) {
        self.records += 1;
        self.reassembly_bytes += r.reassembly_bytes();
        self.reply_bytes += r.reply_bytes();
    }

    pub(super) fn sub(&mut self, r: &Rec) {
        self.records -= 1;
        self.reassembly_bytes -= r.reassembly_bytes();
        self.reply_bytes -= r.reply_bytes();
    }
}

/// What the server remembers about one client endpoint.
pub(super) struct ClientMemory {
    /// The client's incarnation; packets from older ones are ignored.
    pub(super) inc: u32,
    /// Where its packets came from last.
    pub(super) mac: Mac,
    /// When it was last heard from.
    pub(super) last_active: u64,
    /// Transactions below this id are finished at the client: ignore them.
    pub(super) low_water: u64,
    /// Highest id whose record was shed (0: none). A request at or below it without
    /// a record may be one that ran: it is refused.
    pub(super) forgot_upto: u64,
    /// Requests addressed to an older memory epoch are refused: this memory of the
    /// client was made after the server forgot requests addressed to those.
    pub(super) since_epoch: u64,
    /// The highest epoch that a request of this client which ran here, or which was
    /// refused with NOT_HERE here, may carry. Becomes the server's forgotten epoch
    /// when the client is forgotten.
    pub(super) epoch_bound: u64,
    /// Records by transaction id. Changed only through `put`, `take` and `shed`,
    /// which keep the server's usage counts.
    pub(super) recs: BTreeMap<u64, Rec>,
}

impl ClientMemory {
    pub(super) fn new(inc: u32, mac: Mac, now: u64, since_epoch: u64) -> ClientMemory {
        ClientMemory {
            inc,
            mac,
            last_active: now,
            low_water: 0,
            forgot_upto: 0,
            since_epoch,
            epoch_bound: 0,
            recs: BTreeMap::new(),
        }
    }

    pub(super) fn in_progress(&self) -> bool {
        self.recs.values().any(|r| matches!(r, Rec::InProgress(_)))
    }

    /// Where answers to this client go.
    pub(super) fn dest(&self, addr: Addr) -> Dest {
        Dest { mac: self.mac, addr, inc: self.inc }
    }

    /// Can a request without a record, addressed to `epoch`, be judged (and run)?
    pub(super) fn judges(&self, epoch: u64, current: u64) -> bool {
        self.since_epoch <= epoch && epoch <= current
    }

    pub(super) fn put(&mut self, usage: &mut Usage, id: u64, rec: Rec) {
        usage.add(&rec);
        if let Some(old) = self.recs.insert(id, rec) {
            usage.sub(&old);
        }
    }

    pub(super) fn take(&mut self, usage: &mut Usage, id: u64) -> Option<Rec> {
        let r = self.recs.remove(&id)?;
        usage.sub(&r);
        Some(r)
    }

    /// Drop the record of `id` for good. A request that never completed needs no
    /// trace; any other raises the forgotten-up-to id.
    pub(super) fn shed(&mut self, usage: &mut Usage, id: u64) {
        if let Some(r) = self.take(usage, id)
            && !matches!(r, Rec::Receiving(_))
        {
            self.forgot_upto = self.forgot_upto.max(id);
        }
    }

    pub(super) fn forget_all(self, usage: &mut Usage) {
        for r in self.recs.values() {
            usage.sub(r);
        }
    }
}

/// Which records to shed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Done, refused, reply lost: by when their client was last heard from.
    Finished,
    /// Partly received: by their last fragment.
    Receiving,
    /// Replied: by when the reply was last sent.
    Replied,
}

impl ServerSide {
    /// What the server holds, counted afresh (and checked against the running
    /// counts in debug builds).
    pub fn memory(&self) -> ServerMemory {
        let mut usage = Usage::default();
        let mut most = 0;
        for c in self.clients.values() {
            most = most.max(c.recs.len());
            for r in c.recs.values() {
                usage.add(r);
            }
        }
        debug_assert_eq!(usage, self.usage, "server memory accounting");
        ServerMemory {
            clients: self.clients.len(),
            records: usage.records,
            most_records_per_client: most,
            reassembly_bytes: usage.reassembly_bytes,
            reply_bytes: usage.reply_bytes,
            epoch: self.epoch,
            forgotten_epoch: self.forgotten_epoch,
        }
    }

    // ------------------------------------------------------------ remembering clients

    /// Find (or make) the memory of client `addr` in incarnation `inc`; false =
    /// ignore the packet.
    pub(super) fn client_state(&mut self, now: u64, addr: Addr, inc: u32, mac: Mac, cfg: &Config) -> bool {
        if let Some(c) = self.clients.get(&addr) {
            if inc < c.inc {
                // A late packet of an older incarnation, or a client whose
                // incarnation counter wrapped: only the second outlives the newer
                // incarnation's silence.
                if now < c.last_active.saturating_add(cfg.client_ttl) || c.in_progress() {
                    return false;
                }
                self.forget_client(addr);
            } else if inc > c.inc {
                // The client rebooted: its old transactions are gone. Packets of the
                // old incarnation are ignored from now on, so nothing is forgotten
                // that could run again; the bound carries over for when this memory
                // is forgotten.
                if let Some(old) = self.clients.remove(&addr) {
                    let bound = old.epoch_bound;
                    old.forget_all(&mut self.usage);
                    let mut fresh = ClientMemory::new(inc, mac, now, self.forgotten_epoch + 1);
                    fresh.epoch_bound = bound;
                    self.clients.insert(addr, fresh);
                }
            }
        }
        if !self.clients.contains_key(&addr) {
            // Only earlier memories of this client matter for its requests, so the
            // eviction that makes room for it does not count against them.
            let since = self.forgotten_epoch + 1;
            if self.clients.len() >= cfg.max_clients {
                match self.eviction_candidate() {
                    Some(victim) => self.forget_client(victim),
                    None => return false,
                }
            }
            self.clients.insert(addr, ClientMemory::new(inc, mac, now, since));
        }
        let Some(c) = self.clients.get_mut(&addr) else { return false };
        c.mac = mac;
        c.last_active = now;
        if self.gc_at.is_none() {
            self.gc_at = Some(now + gc_interval(cfg));
        }
        true
    }

    /// The client to forget when room is needed: the least recently heard from,
    /// without a request in progress.
    fn eviction_candidate(&self) -> Option<Addr> {
        self.clients
            .iter()
            .filter(|(_, c)| !c.in_progress())
            .min_by_key(|(_, c)| c.last_active)
            .map(|(a, _)| *a)
    }

    /// Forget a client entirely; the memory epoch moves past what it may have used.
    fn forget_client(&mut self, addr: Addr) {
        let Some(c) = self.clients.remove(&addr) else { return };
        self.forgotten_epoch = self.forgotten_epoch.max(c.epoch_bound);
        if self.forgotten_epoch >= self.epoch {
            self.epoch = self.forgotten_epoch + 1;
        }
        c.forget_all(&mut self.usage);
        self.stats.clients_forgotten += 1;
    }

    // ------------------------------------------------------------ budgets

    /// Make room for one more record of client `addr`; false if impossible.
    pub(super) fn make_room(&mut self, addr: Addr, cfg: &Config) -> bool {
        let Some(c) = self.clients.get_mut(&addr) else { return false };
        if c.recs.len() >= cfg.max_records_per_client {
            // Shed one of the client's own: finished, else partial, else replied;
            // lowest id first.
            let pick = |class: fn(&Rec) -> bool| c.recs.iter().find(|(_, r)| class(r)).map(|(k, _)| *k);
            let victim = pick(Rec::finished)
                .or_else(|| pick(|r| matches!(r, Rec::Receiving(_))))
                .or_else(|| pick(|r| matches!(r, Rec::Replied { .. })));
            let Some(id) = victim else { return false };
            c.shed(&mut self.usage, id);
            self.stats.records_shed += 1;
        }
        if self.usage.records >= cfg.max_records {
            // Shed an eighth of the budget at once, so that a flood pays for the
            // sorting once per many records.
            let target = cfg.max_records.saturating_sub(cfg.max_records.div_ceil(8));
            for class in [Class::Finished, Class::Receiving, Class::Replied] {
                if self.usage.records <= target {
                    break;
                }
                let Some(oldest) = self.oldest(class) else { return false };
                for (_, a, id) in oldest {
                    if self.usage.records <= target {
                        break;
                    }
                    if let Some(c) = self.clients.get_mut(&a) {
                        c.shed(&mut self.usage, id);
                        self.stats.records_shed += 1;
                    }
                }
            }
        }
        self.usage.records < cfg.max_records
    }

    /// The records of `class`, oldest first, as (when, client, id); `None` if there
    /// is no memory for the list.
    fn oldest(&self, class: Class) -> Option<Vec<(u64, Addr, u64)>> {
        let mut v = Vec::new();
        v.try_reserve_exact(self.usage.records).ok()?;
        for (a, c) in &self.clients {
            for (id, r) in &c.recs {
                let when = match r {
                    r if class == Class::Finished && r.finished() => c.last_active,
                    Rec::Receiving(x) if class == Class::Receiving => x.last_activity,
                    Rec::Replied { last_sent, .. } if class == Class::Replied => *last_sent,
                    _ => continue,
                };
                v.push((when, *a, *id));
            }
        }
        v.sort_unstable();
        Some(v)
    }

    /// Shed stored replies, least recently sent first, until `need` more bytes fit.
    pub(super) fn make_reply_room(&mut self, need: usize, cfg: &Config) {
        if self.usage.reply_bytes + need <= cfg.max_reply_bytes {
            return;
        }
        for (_, a, id) in self.oldest(Class::Replied).unwrap_or_default() {
            if self.usage.reply_bytes + need <= cfg.max_reply_bytes {
                break;
            }
            if let Some(c) = self.clients.get_mut(&a)
                && let Some(Rec::Replied { last_sent, .. }) = c.recs.get(&id)
            {
                let last_sent = *last_sent;
                c.put(&mut self.usage, id, Rec::ReplyLost { last_sent });
                self.stats.replies_lost += 1;
            }
        }
    }

    // ------------------------------------------------------------ cleanup

    pub(super) fn gc(&mut self, now: u64, cfg: &Config) {
        for c in self.clients.values_mut() {
            let silent = now >= c.last_active.saturating_add(cfg.client_ttl) && !c.in_progress();
            let stale: Vec<u64> = c
                .recs
                .iter()
                .filter(|(_, r)| match r {
                    Rec::Receiving(x) => {
                        silent || now >= x.last_activity.saturating_add(cfg.reassembly_timeout)
                    }
                    _ => silent,
                })
                .map(|(k, _)| *k)
                .collect();
            for id in stale {
                c.shed(&mut self.usage, id);
                self.stats.records_shed += 1;
            }
        }
        // Move the epoch on a pass before the next eviction would have to, so that
        // clients locating meanwhile hold an epoch that survives it.
        let crowded = self.clients.len() + cfg.max_clients.div_ceil(8) >= cfg.max_clients;
        if crowded
            && let Some(victim) = self.eviction_candidate().and_then(|a| self.clients.get(&a))
            && victim.epoch_bound >= self.epoch
        {
            self.epoch += 1;
        }
        // An idle server needs no timer: the next client's packet starts it again.
        self.gc_at = if self.usage.records > 0 { Some(now + gc_interval(cfg)) } else { None };
    }
}

/// How often the cleanup pass runs.
fn gc_interval(cfg: &Config) -> u64 {
    (cfg.reassembly_timeout.min(cfg.client_ttl) / 4).max(1)
}
