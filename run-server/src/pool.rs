//! The run server's view of its pool, sans-IO: which processor to poll when,
//! what each last reported, which are alive, and where the next program goes.
//! The program around it does the RPCs and keeps the clock (microseconds).
//!
//! Only what a host says about itself through its own capability reaches
//! [`Pool::record_info`], and even that is believed only within physical
//! bounds ([`HostInfo::is_consistent`]): a host that never gave a believable
//! answer is never alive, so never a placement target.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use core::fmt;

use crate::info::{HostInfo, UNIT};
use crate::score::{Estimate, Program, Rule, Weights, band_floor, suitability};

/// Timing of polls and placements, and the scoring rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Time between two polls of one host (from one request to the next), on
    /// a small pool; see [`Pool::poll_interval_us`] for a big one.
    pub poll_interval_us: u64,
    /// Polls of all hosts together, per second, at most: the run server
    /// shares its board, and a quarter-second poll of each of dozens of hosts
    /// would keep that board busy with nothing else. A big pool's hosts are
    /// polled less often instead; placements between polls count as pending,
    /// so a report every few seconds serves placement, and `hosts` shows
    /// load over a second anyway. Sixteen a second keep a pool of four at the
    /// quarter second and the run server's part of its board's time small
    /// when 32 boards share two host cores.
    pub polls_per_second: u64,
    /// A host that has not answered for this long (or four poll intervals,
    /// whichever is longer) since it was first asked after its last answer
    /// is skipped for placement. A poll outstanding this
    /// long is taken as lost and asked again.
    pub silence_limit_us: u64,
    /// A placement no report has shown as a new process within this time
    /// (the caller gave up or creation failed) stops counting. Keep it well
    /// above the longest creation: one that outlives it lets the host look
    /// a program lighter than it is until its report shows the process (a
    /// creation takes a few hundred milliseconds on an idle pool, seconds on
    /// a crowded host).
    pub placement_timeout_us: u64,
    /// The suitability rule.
    pub rule: Rule,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            poll_interval_us: 250_000,
            polls_per_second: 16,
            // Counted from the first poll a host leaves unanswered, so a
            // poller that is itself late does not make hosts look dead.
            silence_limit_us: 1_000_000,
            placement_timeout_us: 10_000_000,
            rule: Rule::default(),
        }
    }
}

/// A host of the pool, as the program needs it to send an RPC.
#[derive(Debug, PartialEq, Eq)]
pub struct HostRef<'a, H> {
    /// Its name in the pool directory.
    pub name: &'a str,
    /// What the program reaches it by (its process server's capability).
    pub handle: &'a H,
}

/// One host's state, for a listing such as `hosts`.
#[derive(Debug)]
pub struct HostStatus<'a, H> {
    /// Its name and handle.
    pub host: HostRef<'a, H>,
    /// Its preference and speed.
    pub weights: Weights,
    /// Its last report, if it ever answered.
    pub info: Option<&'a HostInfo>,
    /// Whether it answered within the silence limit.
    pub alive: bool,
    /// Placements made here that no report shows yet.
    pub pending_placements: usize,
    /// Reports refused as impossible since it joined the pool.
    pub impossible_reports: u32,
}

/// Why no host could be chosen; `Display` gives the user's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// No processor answered within the silence limit (`known` in the pool).
    NoHostAlive { known: usize },
    /// No live processor has a free run large enough.
    NoRoom { need: u64, largest_free: u64 },
    /// The run server could not note the placement (out of memory).
    OutOfMemory,
}

impl fmt::Display for PlaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlaceError::NoHostAlive { known: 0 } => write!(f, "the run server's pool has no processors"),
            PlaceError::NoHostAlive { known } => {
                write!(f, "none of the pool's {known} processors is answering")
            }
            PlaceError::NoRoom { need, largest_free } => write!(
                f,
                "no processor has room: the program needs {need} bytes in one piece, \
                 the largest free piece is {largest_free} bytes"
            ),
            PlaceError::OutOfMemory => write!(f, "the run server is out of memory"),
        }
    }
}

/// Placements that count on one host at most until reports show them.
pub const MAX_PENDING: usize = 256;

/// Why [`Pool::record_info`] did not take a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportRefused {
    /// The host is not in the pool (removed while the call was out).
    NotInPool,
    /// The report cannot be true of a board ([`HostInfo::is_consistent`]): it
    /// counts as no answer.
    Impossible,
}

impl fmt::Display for ReportRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportRefused::NotInPool => write!(f, "the host is no longer in the pool"),
            ReportRefused::Impossible => write!(f, "the report cannot be true of a board"),
        }
    }
}

/// A placement that no report reflects yet.
#[derive(Clone, Copy, Debug)]
struct Placed {
    at_us: u64,
    memory: u64,
}

#[derive(Debug)]
struct Host<H> {
    handle: H,
    weights: Weights,
    info: Option<HostInfo>,
    /// When the first poll since its last believable answer was asked, if
    /// one was: silence counts from there, not from the answer, so a poller
    /// that is itself late (a crowded board) does not make hosts it did not
    /// get round to asking look dead.
    unanswered_since_us: Option<u64>,
    next_poll_us: u64,
    /// When the outstanding poll was asked, if one is.
    asked_us: Option<u64>,
    /// Oldest first: a report's new process creations retire them in order.
    pending: VecDeque<Placed>,
    impossible_reports: u32,
}

impl<H> Host<H> {
    fn new(handle: H, weights: Weights, now_us: u64) -> Host<H> {
        Host {
            handle,
            weights,
            info: None,
            unanswered_since_us: None,
            next_poll_us: now_us,
            asked_us: None,
            pending: VecDeque::new(),
            impossible_reports: 0,
        }
    }

    fn alive(&self, now_us: u64, config: &Config) -> bool {
        self.info.is_some()
            && self.unanswered_since_us.is_none_or(|t| now_us.saturating_sub(t) <= config.silence_limit_us)
    }

    fn asked(&mut self, now_us: u64, config: &Config) {
        self.asked_us = Some(now_us);
        self.unanswered_since_us.get_or_insert(now_us);
        self.next_poll_us = now_us.saturating_add(config.poll_interval_us);
    }

    /// When it should next be asked; while a poll is outstanding, when that
    /// poll is taken as lost.
    fn poll_due(&self, config: &Config) -> u64 {
        match self.asked_us {
            Some(asked) => asked.saturating_add(config.silence_limit_us),
            None => self.next_poll_us,
        }
    }

    fn live_pending(&self, now_us: u64, config: &Config) -> impl Iterator<Item = &Placed> {
        self.pending.iter().filter(move |p| now_us.saturating_sub(p.at_us) < config.placement_timeout_us)
    }

    /// The last report plus each placement it does not show: one more busy
    /// thread and the program's memory gone (from the largest run too, to be safe).
    fn estimate(&self, program: &Program, now_us: u64, config: &Config) -> Option<Estimate> {
        let info = self.info.as_ref()?;
        let (count, memory) = self
            .live_pending(now_us, config)
            .fold((0u64, 0u64), |(n, m), p| (n + 1, m.saturating_add(p.memory)));
        Some(Estimate {
            load_milli: info.load_milli() + count * u64::from(UNIT),
            free_bytes: info.free_bytes.saturating_sub(memory),
            largest_free: info.largest_free.saturating_sub(memory),
            text_cached: program.text.is_some_and(|t| info.has_cached(t)),
        })
    }

    /// Takes a fresh report: each process created since the last one retires
    /// the oldest placement (whoever created it, the new process is in the load
    /// now); a reboot voids them all.
    fn absorb(&mut self, info: HostInfo, now_us: u64, config: &Config) {
        if let Some(old) = &self.info {
            if info.uptime_us < old.uptime_us || info.processes_created < old.processes_created {
                self.pending.clear();
            } else {
                let created = info.processes_created - old.processes_created;
                let retired = usize::try_from(created).unwrap_or(usize::MAX).min(self.pending.len());
                self.pending.drain(..retired);
            }
        }
        self.pending.retain(|p| now_us.saturating_sub(p.at_us) < config.placement_timeout_us);
        self.info = Some(info);
        self.unanswered_since_us = None;
    }
}

/// The processors of one pool directory and what is known of them; `H` is
/// whatever the program reaches a host by (e.g. `amoeba_abi::Capability`).
#[derive(Debug)]
pub struct Pool<H> {
    /// As given to [`Pool::new`].
    configured: Config,
    /// As it applies to a pool of this size ([`Pool::config`]).
    config: Config,
    /// By name: a deterministic order, so equal seeds make equal choices.
    hosts: BTreeMap<String, Host<H>>,
}

impl<H: PartialEq> Pool<H> {
    /// An empty pool.
    pub fn new(config: Config) -> Pool<H> {
        Pool { configured: config, config, hosts: BTreeMap::new() }
    }

    /// The configuration it runs with, at the pool's present size: where the
    /// pool has more hosts than [`Config::polls_per_second`] allows at the
    /// configured pace, a longer poll interval, and a silence limit of at
    /// least four of them.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Scales the configuration to the pool's size (after a host came or went).
    fn rescale(&mut self) {
        let configured = self.configured;
        let spacing = 1_000_000 / configured.polls_per_second.max(1);
        let poll_interval_us =
            configured.poll_interval_us.max(spacing.saturating_mul(self.hosts.len() as u64));
        self.config = Config {
            poll_interval_us,
            silence_limit_us: configured.silence_limit_us.max(poll_interval_us.saturating_mul(4)),
            ..configured
        };
    }

    /// Adds a host of the pool directory, polled at once, or updates its
    /// weights. A new handle for a known name is a new incarnation: what was
    /// known of the old one is dropped. Returns whether the name was new.
    pub fn add_host(&mut self, name: &str, handle: H, weights: Weights, now_us: u64) -> bool {
        match self.hosts.get_mut(name) {
            Some(host) if host.handle == handle => {
                host.weights = weights;
                false
            }
            Some(host) => {
                *host = Host::new(handle, weights, now_us);
                false
            }
            None => {
                self.hosts.insert(name.into(), Host::new(handle, weights, now_us));
                self.rescale();
                true
            }
        }
    }

    /// Drops a host that left the pool directory; returns its handle.
    pub fn remove_host(&mut self, name: &str) -> Option<H> {
        let handle = self.hosts.remove(name).map(|host| host.handle);
        self.rescale();
        handle
    }

    /// The handle host `name` is in the pool with, if it is (one look-up,
    /// for a poller that asks before each poll whether its host is still there).
    pub fn handle(&self, name: &str) -> Option<&H> {
        self.hosts.get(name).map(|host| &host.handle)
    }

    /// The names of the pool's hosts, in order.
    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// Every host with what is known of it.
    pub fn hosts(&self, now_us: u64) -> impl Iterator<Item = HostStatus<'_, H>> {
        self.hosts.iter().map(move |(name, host)| HostStatus {
            host: HostRef { name, handle: &host.handle },
            weights: host.weights,
            info: host.info.as_ref(),
            alive: host.alive(now_us, &self.config),
            pending_placements: host.live_pending(now_us, &self.config).count(),
            impossible_reports: host.impossible_reports,
        })
    }

    /// When host `name` is next to be polled, strictly after `after_us`, by a
    /// program that polls each host from a thread of its own: each host has
    /// its own slot in the poll interval (by its place in the pool's order),
    /// so that the pollers never all wake together (see
    /// [`amoeba_ipc::schedule`]). `None` once the host has left the pool.
    pub fn next_poll_slot_us(&self, name: &str, after_us: u64) -> Option<u64> {
        let index = self.hosts.keys().position(|known| known == name)?;
        Some(amoeba_ipc::schedule::next_slot_us(
            self.config.poll_interval_us,
            index,
            self.hosts.len(),
            after_us,
        ))
    }

    /// Whether `name` answered within the silence limit.
    pub fn is_alive(&self, name: &str, now_us: u64) -> bool {
        self.hosts.get(name).is_some_and(|host| host.alive(now_us, &self.config))
    }

    /// The host to ask for its info now, if one is due (the longest overdue
    /// first). It counts as asked at `now_us`: report the outcome with
    /// [`Pool::record_info`] or [`Pool::record_no_answer`].
    pub fn next_poll(&mut self, now_us: u64) -> Option<HostRef<'_, H>> {
        let config = self.config;
        let (name, host) = self
            .hosts
            .iter_mut()
            .map(|(name, host)| (host.poll_due(&config), name, host))
            .filter(|(due, _, _)| *due <= now_us)
            .min_by_key(|(due, _, _)| *due)
            .map(|(_, name, host)| (name, host))?;
        host.asked(now_us, &config);
        Some(HostRef { name, handle: &host.handle })
    }

    /// Host `name` is being asked for its info now (by a program that polls
    /// each host on a schedule of its own rather than through
    /// [`Pool::next_poll`]); report the outcome as for `next_poll`.
    pub fn record_asked(&mut self, name: &str, now_us: u64) -> bool {
        let config = self.config;
        let Some(host) = self.hosts.get_mut(name) else { return false };
        host.asked(now_us, &config);
        true
    }

    /// When [`Pool::next_poll`] will next have a host to give (for a timer).
    pub fn next_poll_at(&self) -> Option<u64> {
        self.hosts.values().map(|host| host.poll_due(&self.config)).min()
    }

    /// A host answered the info call through its capability. A report that
    /// cannot be true of a board is refused and counts as no answer: the host
    /// stays usable only until the silence limit has passed since it was
    /// first asked after its last believable answer.
    pub fn record_info(&mut self, name: &str, info: HostInfo, now_us: u64) -> Result<(), ReportRefused> {
        let host = self.hosts.get_mut(name).ok_or(ReportRefused::NotInPool)?;
        host.asked_us = None;
        if !info.is_consistent() {
            host.impossible_reports = host.impossible_reports.saturating_add(1);
            return Err(ReportRefused::Impossible);
        }
        host.absorb(info, now_us, &self.config);
        Ok(())
    }

    /// A host did not answer (timeout or failure). It stays usable until the
    /// silence limit has passed since it was first asked after its last answer.
    pub fn record_no_answer(&mut self, name: &str) -> bool {
        let Some(host) = self.hosts.get_mut(name) else { return false };
        host.asked_us = None;
        true
    }

    /// The host Amoeba's rule picks for `program`, without recording it:
    /// among live hosts whose largest free run holds the program, those scoring
    /// within the tie band of the best, the `random`-th of them.
    pub fn choose(&self, program: &Program, now_us: u64, random: u64) -> Result<HostRef<'_, H>, PlaceError> {
        let index = self.pick(program, now_us, random)?;
        let (name, host) = self.hosts.iter().nth(index).ok_or(PlaceError::NoHostAlive { known: 0 })?;
        Ok(HostRef { name, handle: &host.handle })
    }

    /// Chooses like [`Pool::choose`] and counts the program on the chosen host
    /// until a report shows it (or the placement timeout passes). At most
    /// [`MAX_PENDING`] placements count on one host: beyond, the oldest stops
    /// counting (by then the host scores far below any other).
    pub fn place(
        &mut self,
        program: &Program,
        now_us: u64,
        random: u64,
    ) -> Result<HostRef<'_, H>, PlaceError> {
        let index = self.pick(program, now_us, random)?;
        let (name, host) = self.hosts.iter_mut().nth(index).ok_or(PlaceError::NoHostAlive { known: 0 })?;
        if host.pending.len() >= MAX_PENDING {
            host.pending.pop_front();
        }
        host.pending.try_reserve(1).map_err(|_| PlaceError::OutOfMemory)?;
        host.pending.push_back(Placed { at_us: now_us, memory: program.memory });
        Ok(HostRef { name, handle: &host.handle })
    }

    /// Whether some live host would hold the program if the placements its
    /// reports do not show yet were not counted: a refusal may then be only
    /// for a moment (a report taken while a placed program was being built
    /// shows its memory gone, and the placement still counts it too), and is
    /// worth asking again after the next reports.
    pub fn fits_once_reports_catch_up(&self, program: &Program, now_us: u64) -> bool {
        self.hosts.values().any(|host| {
            host.alive(now_us, &self.config)
                && host.info.as_ref().is_some_and(|i| i.largest_free >= program.memory)
        })
    }

    /// Every live host the program fits on, with its score, in name order.
    pub fn scores(&self, program: &Program, now_us: u64) -> impl Iterator<Item = (&str, u128)> {
        self.scored(program, now_us).map(|(_, name, score)| (name, score))
    }

    /// Live hosts that have answered, with their position in the pool, name
    /// and what is expected of them now.
    fn live(
        &self,
        program: &Program,
        now_us: u64,
    ) -> impl Iterator<Item = (usize, &str, &Host<H>, Estimate)> {
        self.hosts
            .iter()
            .enumerate()
            .filter(move |(_, (_, host))| host.alive(now_us, &self.config))
            .filter_map(move |(index, (name, host))| {
                let estimate = host.estimate(program, now_us, &self.config)?;
                Some((index, name.as_str(), host, estimate))
            })
    }

    /// Live hosts the program fits on, with their position, name and score.
    fn scored(&self, program: &Program, now_us: u64) -> impl Iterator<Item = (usize, &str, u128)> {
        self.live(program, now_us).filter(move |(.., estimate)| estimate.largest_free >= program.memory).map(
            move |(index, name, host, estimate)| {
                (index, name, suitability(host.weights, &estimate, &self.config.rule))
            },
        )
    }

    /// The position of the chosen host: the `random`-th of those scoring within
    /// the tie band of the best (counted in passes, so a request allocates nothing).
    fn pick(&self, program: &Program, now_us: u64, random: u64) -> Result<usize, PlaceError> {
        let best = self
            .scored(program, now_us)
            .map(|(.., score)| score)
            .max()
            .ok_or_else(|| self.why_none(program, now_us))?;
        let floor = band_floor(best, &self.config.rule);
        let band = || self.scored(program, now_us).filter(move |(.., score)| *score >= floor);
        let chosen = random % band().count() as u64;
        band()
            .nth(usize::try_from(chosen).unwrap_or(0))
            .map(|(index, ..)| index)
            .ok_or_else(|| self.why_none(program, now_us))
    }

    fn why_none(&self, program: &Program, now_us: u64) -> PlaceError {
        match self.live(program, now_us).map(|(.., estimate)| estimate.largest_free).max() {
            None => PlaceError::NoHostAlive { known: self.hosts.len() },
            Some(largest_free) => PlaceError::NoRoom { need: program.memory, largest_free },
        }
    }
}
