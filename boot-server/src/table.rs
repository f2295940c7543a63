//! The service table: every service's life as the boot service sees it, fed
//! with what the polls found (checks, process reports, board answers) and the
//! outcomes of starts, and asked each round which services to start now
//! ([`ServiceTable::tick`]). Time is microseconds on the boot service's
//! clock; nothing here waits or calls anyone.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::Capability;
use amoeba_ipc::interfaces::boot::{RestartReason, RestartRecord, ServiceReport, ServiceState};

use crate::config::{BootConfig, ServiceCheck, ServiceConfig};

/// Starts remembered per service.
pub const MAX_HISTORY: usize = 8;

/// How often things are polled and how long silence lasts before it counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The table decides what to start this often.
    pub poll_us: u64,
    /// Each service is checked this often, and its board asked about its
    /// process when it has not answered for that long. Half a second keeps a
    /// missed check (after [`Timing::check_deadline_us`]) seen within three
    /// checks while costing the boot service's board half what a quarter
    /// second did.
    pub check_us: u64,
    /// A board that runs a service, is a service's first board, or holds a
    /// disk a service uses is asked this often (see [`Timing::for_boards`]).
    pub board_poll_us: u64,
    /// Any other board (one the run server may move to) is asked this often:
    /// it is polled only to know it answers and has not rebooted, should a
    /// service have to move there.
    pub spare_board_poll_us: u64,
    /// A service that has not answered a check for this long misses it.
    pub check_deadline_us: u64,
    /// A board whose process server has not answered for this long is silent.
    pub board_silent_us: u64,
    /// The same for a spare board (polled less often).
    pub spare_board_silent_us: u64,
    /// Wait before the second start in a row of a service that never answered;
    /// doubled for each further one.
    pub backoff_first_us: u64,
    /// The longest such wait.
    pub backoff_max_us: u64,
    /// A start that has not finished after this long is given up (its process,
    /// should it appear later, is destroyed).
    pub start_deadline_us: u64,
    /// Clock disagreement between boards tolerated when telling a reboot.
    pub clock_slack_us: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_us: 250_000,
            check_us: 500_000,
            board_poll_us: 250_000,
            spare_board_poll_us: 4_000_000,
            check_deadline_us: 1_500_000,
            board_silent_us: 3_000_000,
            spare_board_silent_us: 16_000_000,
            backoff_first_us: 1_000_000,
            backoff_max_us: 30_000_000,
            start_deadline_us: 60_000_000,
            clock_slack_us: 250_000,
        }
    }
}

/// The boot service's board polls in all, per second, at most: the service
/// shares its board with others (the run server polls every board too), and
/// on a pool of dozens of boards a quarter-second poll of each would keep
/// that board busy with nothing else.
pub const BOARD_POLLS_PER_SECOND: u64 = 25;

impl Timing {
    /// The default timing for a pool of `boards` boards: each board is polled
    /// no more often than [`BOARD_POLLS_PER_SECOND`] allows in all, and a board
    /// counts as silent only after four polls it did not answer.
    pub fn for_boards(boards: usize) -> Timing {
        let base = Timing::default();
        let spacing = 1_000_000 / BOARD_POLLS_PER_SECOND;
        let board_poll_us = base.board_poll_us.max(spacing.saturating_mul(boards as u64));
        let spare_board_poll_us = base.spare_board_poll_us.max(board_poll_us);
        Timing {
            board_poll_us,
            board_silent_us: base.board_silent_us.max(board_poll_us.saturating_mul(4)),
            spare_board_poll_us,
            spare_board_silent_us: base.spare_board_silent_us.max(spare_board_poll_us.saturating_mul(4)),
            ..base
        }
    }
}

impl Timing {
    /// The wait before a start after `failures` starts in a row that never answered.
    pub fn backoff_us(&self, failures: u32) -> u64 {
        match failures {
            0 => 0,
            n => self.backoff_first_us.saturating_mul(1u64 << (n - 1).min(20)).min(self.backoff_max_us),
        }
    }
}

/// What a board's process server said of a service's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessSeen {
    /// It runs (or is stunned): alive, however slow.
    Alive,
    /// It has exited, or the process server knows it no more.
    Gone,
}

/// What the boot service should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start service `service` on `board` (first destroying `replace`, a
    /// process of it that must give way); report with [`ServiceTable::start_finished`]
    /// and this `attempt`.
    Start { service: usize, board: u16, replace: Option<Capability>, attempt: u64 },
}

/// One board's process server as seen from here.
#[derive(Clone, Debug)]
struct BoardWatch {
    id: u16,
    /// When it last answered (received), and when that call was sent.
    answered: Option<(u64, u64)>,
    /// Bounds on when its current incarnation booted: it booted no earlier
    /// than the first and no later than the second.
    booted: Option<(u64, u64)>,
    /// Reboots seen.
    reboots: u32,
    /// Its process list has been read (to find the services already running).
    listed: bool,
}

impl BoardWatch {
    fn answering(&self, now: u64, silent_us: u64) -> bool {
        self.answered.is_some_and(|(at, _)| now.saturating_sub(at) < silent_us)
    }

    /// How long it has been silent (since `since` if it never answered).
    fn silent_for(&self, now: u64, since: u64) -> u64 {
        now.saturating_sub(self.answered.map_or(since, |(at, _)| at))
    }

    /// Whether it booted (again) after `time`: whatever existed on it then is gone.
    fn booted_after(&self, time: u64) -> bool {
        self.booted.is_some_and(|(earliest, _)| earliest > time)
    }
}

/// A running process of a service.
#[derive(Clone, Debug)]
struct Process {
    board: u16,
    capability: Capability,
    /// It surely existed at this time (its start had finished; or it was found).
    known_at: u64,
    /// Checks sent after this count as its own.
    started_at: u64,
    /// Found running when the boot service started, not started by it.
    adopted: bool,
    /// It has answered a check sent since it started.
    answered: bool,
}

#[derive(Clone, Debug)]
enum Life {
    /// The boot service has just started and not yet found its process.
    Unknown,
    /// It runs as this process.
    Running(Process),
    /// Being started on `board`, in place of `replacing` if that is given
    /// (which, should the start fail, may still live).
    Starting { board: u16, attempt: u64, since: u64, replacing: Option<Process> },
    /// No process: to be started when it may.
    Down { reason: RestartReason, since: u64 },
}

/// One start of a service.
#[derive(Clone, Debug)]
struct Start {
    at: u64,
    board: u16,
    reason: RestartReason,
    /// `None` while it runs.
    outcome: Option<Result<(), String>>,
}

/// What became of a service, found in a round.
enum Fate {
    /// Its process is on none of its boards.
    NotFound,
    /// Its process is gone.
    Gone(RestartReason),
    /// Its start did not finish in time.
    StartGivenUp,
}

#[derive(Clone, Debug)]
struct Service {
    life: Life,
    /// Why the latest start was made (kept while it runs, for its record).
    reason: RestartReason,
    /// When a check last came back answered.
    last_answer: Option<u64>,
    /// When a check last came back refused or failed.
    last_miss: Option<u64>,
    restarts: u32,
    /// Starts in a row that never answered.
    failures: u32,
    not_before: u64,
    last_board: Option<u16>,
    history: VecDeque<Start>,
}

/// Every service and board the boot service watches.
pub struct ServiceTable {
    config: BootConfig,
    timing: Timing,
    boards: Vec<BoardWatch>,
    services: Vec<Service>,
    /// When the table was made (boards never heard from count as silent since).
    born: u64,
    next_attempt: u64,
}

fn secs(us: u64) -> String {
    format!("{}.{} s", us / 1_000_000, us % 1_000_000 / 100_000)
}

impl ServiceTable {
    /// A table for `config` (already validated) at time `now`: every service's
    /// process is yet to be found on its boards' process lists.
    pub fn new(config: BootConfig, timing: Timing, now: u64) -> ServiceTable {
        let boards = config
            .boards
            .iter()
            .map(|b| BoardWatch { id: b.id, answered: None, booted: None, reboots: 0, listed: false })
            .collect();
        let services = config
            .services
            .iter()
            .map(|_| Service {
                life: Life::Unknown,
                reason: RestartReason::NotRunning,
                last_answer: None,
                last_miss: None,
                restarts: 0,
                failures: 0,
                not_before: 0,
                last_board: None,
                history: VecDeque::new(),
            })
            .collect();
        ServiceTable { config, timing, boards, services, born: now, next_attempt: 1 }
    }

    /// The configuration.
    pub fn config(&self) -> &BootConfig {
        &self.config
    }

    /// The timing.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// The number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether there are no services.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Service `service`'s configuration.
    pub fn service(&self, service: usize) -> &ServiceConfig {
        &self.config.services[service]
    }

    /// How service `service` is checked.
    pub fn check(&self, service: usize) -> &ServiceCheck {
        &self.config.services[service].check
    }

    /// The process to ask its board about: (board, process).
    pub fn process(&self, service: usize) -> Option<(u16, Capability)> {
        match &self.services.get(service)?.life {
            Life::Running(p) => Some((p.board, p.capability)),
            _ => None,
        }
    }

    /// Whether service `service`'s current process has answered a check at or
    /// after `since`: it lived then, so asking its board about it adds
    /// nothing until the answer is a poll period old.
    pub fn answered_since(&self, service: usize, since: u64) -> bool {
        self.services.get(service).is_some_and(|s| {
            matches!(&s.life, Life::Running(p) if p.answered) && s.last_answer.is_some_and(|at| at >= since)
        })
    }

    /// Whether board `id`'s process list is still to be read (to find the
    /// services already running there).
    pub fn wants_listing(&self, id: u16) -> bool {
        self.board(id).is_some_and(|b| !b.listed)
    }

    /// Reboots seen of board `id`.
    pub fn reboots(&self, id: u16) -> u32 {
        self.board(id).map_or(0, |b| b.reboots)
    }

    /// Whether board `id` matters to a service now: it runs one (or one is
    /// starting there), it is a service's first board, or a service holds a
    /// disk of it. The others are spare and polled less often.
    fn serves(&self, id: u16) -> bool {
        let runs_one = self.services.iter().any(|s| match &s.life {
            Life::Running(p) => p.board == id,
            Life::Starting { board, replacing, .. } => {
                *board == id || replacing.as_ref().is_some_and(|p| p.board == id)
            }
            Life::Unknown | Life::Down { .. } => false,
        });
        runs_one
            || self
                .config
                .services
                .iter()
                .any(|c| c.boards.first() == Some(&id) || c.disk_boards().any(|b| b == id))
    }

    /// How often board `id` is to be asked now.
    pub fn board_poll_us(&self, id: u16) -> u64 {
        if self.serves(id) { self.timing.board_poll_us } else { self.timing.spare_board_poll_us }
    }

    /// How long board `id` may leave polls unanswered before it counts as silent.
    fn board_silent_us(&self, id: u16) -> u64 {
        if self.serves(id) { self.timing.board_silent_us } else { self.timing.spare_board_silent_us }
    }

    fn board(&self, id: u16) -> Option<&BoardWatch> {
        self.boards.iter().find(|b| b.id == id)
    }

    fn board_mut(&mut self, id: u16) -> Option<&mut BoardWatch> {
        self.boards.iter_mut().find(|b| b.id == id)
    }

    // ------------------------------------------------------------ what the polls found

    /// Board `id`'s process server answered a call sent at `sent`, saying it
    /// has been up for `uptime_us`. A boot time clearly later than the one
    /// known is a reboot.
    pub fn board_answered(&mut self, id: u16, sent: u64, now: u64, uptime_us: u64) {
        let slack = self.timing.clock_slack_us;
        let Some(board) = self.board_mut(id) else { return };
        board.answered = Some((now, sent));
        let new = (sent.saturating_sub(uptime_us), now.saturating_sub(uptime_us));
        board.booted = Some(match board.booted {
            Some((_, latest)) if new.0 > latest.saturating_add(slack) => {
                board.reboots += 1;
                new
            }
            Some((earliest, latest)) if earliest.max(new.0) <= latest.min(new.1) => {
                (earliest.max(new.0), latest.min(new.1))
            }
            _ => new,
        });
    }

    /// Board `id` answered a call sent at `sent` with "restarted": it rebooted
    /// after its last answer was sent.
    pub fn board_restarted(&mut self, id: u16, sent: u64, now: u64) {
        let Some(board) = self.board_mut(id) else { return };
        let alive_at = board.answered.map_or(0, |(_, sent_before)| sent_before);
        board.reboots += 1;
        board.booted = Some((alive_at, now));
        board.answered = Some((now, sent));
    }

    /// Board `id`'s live processes (program name, capability), read once at
    /// `now`: a service not yet found that runs there is adopted.
    pub fn board_listed(&mut self, id: u16, now: u64, live: &[(String, Capability)]) {
        let Some(board) = self.board_mut(id) else { return };
        board.listed = true;
        for index in 0..self.services.len() {
            let config = &self.config.services[index];
            if !matches!(self.services[index].life, Life::Unknown) || !config.boards.contains(&id) {
                continue;
            }
            let taken = |cap: &Capability| {
                self.services
                    .iter()
                    .any(|s| matches!(&s.life, Life::Running(p) if p.capability == *cap && p.board == id))
            };
            let found = live.iter().find(|(name, cap)| *name == config.program && !taken(cap));
            if let Some((_, capability)) = found {
                let process = Process {
                    board: id,
                    capability: *capability,
                    known_at: now,
                    started_at: 0,
                    adopted: true,
                    answered: false,
                };
                self.services[index].last_board = Some(id);
                self.services[index].life = Life::Running(process);
            }
        }
    }

    /// A check sent at `sent` came back at `now`: answered, or refused or
    /// failed. (Several checks of one service may be in flight: one sent to a
    /// process that then died is only given up by the network after seconds.)
    pub fn check_done(&mut self, service: usize, sent: u64, now: u64, answered: bool) {
        let Some(s) = self.services.get_mut(service) else { return };
        if !answered {
            s.last_miss = Some(now);
            return;
        }
        s.last_answer = Some(now);
        if let Life::Running(p) = &mut s.life
            && sent >= p.started_at
        {
            p.answered = true;
            s.failures = 0;
        }
    }

    /// Service `service`'s process `process` was seen by its board at `now`.
    pub fn process_seen(&mut self, service: usize, process: Capability, now: u64, seen: ProcessSeen) {
        let Some(Life::Running(p)) = self.services.get(service).map(|s| &s.life) else { return };
        if seen == ProcessSeen::Gone && p.capability == process {
            let rebooted = self.board(p.board).is_some_and(|b| b.booted_after(p.known_at));
            let reason = if rebooted { RestartReason::BoardRebooted } else { RestartReason::ProcessEnded };
            self.went_down(service, reason, now);
        }
    }

    /// Start `attempt` of service `service` finished at `now`: its process, or
    /// why it failed. `false`: the start was given up meanwhile, so the caller
    /// destroys the process it made.
    pub fn start_finished(
        &mut self,
        service: usize,
        attempt: u64,
        now: u64,
        result: Result<Capability, String>,
    ) -> bool {
        let Some(s) = self.services.get_mut(service) else { return false };
        let (board, since) = match s.life {
            Life::Starting { board, attempt: current, since, .. } if current == attempt => (board, since),
            _ => return false,
        };
        match result {
            Ok(capability) => {
                if let Some(record) = s.history.back_mut() {
                    record.outcome = Some(Ok(()));
                }
                s.life = Life::Running(Process {
                    board,
                    capability,
                    known_at: now,
                    started_at: since,
                    adopted: false,
                    answered: false,
                });
                true
            }
            Err(why) => {
                self.start_failed(service, now, why);
                false
            }
        }
    }

    /// The latest start failed: the next waits longer. A process it was to
    /// replace is watched again (it may still live; if not, its board says so).
    fn start_failed(&mut self, service: usize, now: u64, why: String) {
        let timing = self.timing;
        let s = &mut self.services[service];
        if let Some(record) = s.history.back_mut() {
            record.outcome = Some(Err(why));
        }
        s.failures += 1;
        s.not_before = now.saturating_add(timing.backoff_us(s.failures));
        let replacing = match &mut s.life {
            Life::Starting { replacing, .. } => replacing.take(),
            _ => None,
        };
        s.life = match replacing {
            Some(process) => Life::Running(process),
            None => Life::Down { reason: s.reason.clone(), since: now },
        };
    }

    fn went_down(&mut self, service: usize, reason: RestartReason, now: u64) {
        let timing = self.timing;
        let s = &mut self.services[service];
        if let Life::Running(p) = &s.life
            && !p.answered
            && !p.adopted
        {
            // It died before it ever answered: the next start waits a while.
            s.failures += 1;
            s.not_before = now.saturating_add(timing.backoff_us(s.failures));
        }
        s.life = Life::Down { reason, since: now };
    }

    // ------------------------------------------------------------ deciding

    /// Whether the check is missed now: no answer for the check deadline, or a
    /// refusal or failure later than the last answer.
    fn missing(&self, s: &Service, now: u64) -> bool {
        let silent = s.last_answer.is_none_or(|at| now.saturating_sub(at) > self.timing.check_deadline_us);
        let refused = s.last_miss.is_some_and(|miss| s.last_answer.is_none_or(|answer| miss > answer));
        silent || refused
    }

    /// Service `service`'s state, and why, in words.
    pub fn state(&self, service: usize, now: u64) -> (ServiceState, String) {
        let (state, mut why) = self.base_state(service, now);
        if state == ServiceState::Dead
            && matches!(self.services[service].life, Life::Down { .. })
            && let Some(waiting) = self.waiting_for(service, now)
        {
            why = format!("{why}; {waiting}");
        }
        if let Some(stale) = self.stale_board(service) {
            why = format!("{why}; holds capabilities of board {stale}, which rebooted: to be replaced");
        }
        (state, why)
    }

    /// The state without what a dead service waits for (which depends on the
    /// states of others).
    fn base_state(&self, service: usize, now: u64) -> (ServiceState, String) {
        let s = &self.services[service];
        match &s.life {
            Life::Unknown => (ServiceState::Suspect, String::from("looking for its process")),
            Life::Starting { board, since, .. } => {
                (ServiceState::Restarting, format!("starting on board {board} for {}", secs(now - since)))
            }
            Life::Down { reason, since } => (
                ServiceState::Dead,
                format!("{} {} ago", reason_text(reason), secs(now.saturating_sub(*since))),
            ),
            Life::Running(p) => {
                let board = self.board(p.board);
                let silent = board.map_or(0, |b| b.silent_for(now, self.born));
                let missing = self.missing(s, now);
                if silent >= self.timing.board_silent_us && missing {
                    let why = format!("board {} silent for {}; waiting for it", p.board, secs(silent));
                    return (ServiceState::Dead, why);
                }
                if p.answered && !missing {
                    (ServiceState::Up, String::from("answers"))
                } else if !p.answered && !p.adopted {
                    let why = format!("started on board {}, not answering yet", p.board);
                    (ServiceState::Restarting, why)
                } else {
                    let why = match s.last_answer {
                        Some(at) => {
                            format!("no answer for {}; its process lives: slow, left alone", secs(now - at))
                        }
                        None => String::from("no answer yet; its process lives: left alone"),
                    };
                    (ServiceState::Suspect, why)
                }
            }
        }
    }

    fn is_up(&self, service: usize, now: u64) -> bool {
        self.base_state(service, now).0 == ServiceState::Up
    }

    /// A board whose disk capabilities the service holds and which rebooted
    /// since the service's process was known to have them.
    fn stale_board(&self, service: usize) -> Option<u16> {
        let Life::Running(p) = &self.services[service].life else { return None };
        let config = &self.config.services[service];
        config
            .disk_boards()
            .filter(|b| *b != p.board)
            .find(|b| self.board(*b).is_some_and(|w| w.booted_after(p.known_at)))
    }

    /// What a service waiting to be started waits for, in words (`None`: nothing).
    fn waiting_for(&self, service: usize, now: u64) -> Option<String> {
        let s = &self.services[service];
        let config = &self.config.services[service];
        if now < s.not_before {
            return Some(format!("next try in {}", secs(s.not_before - now)));
        }
        for after in &config.after {
            if let Some(index) = self.config.services.iter().position(|c| c.name == *after)
                && !self.is_up(index, now)
            {
                return Some(format!("waiting for {after}"));
            }
        }
        if let Some(member) = self.set_member_busy(service, now) {
            return Some(format!("waiting for {} to come up", self.config.services[member].name));
        }
        if self.board_for(service, now).is_none() {
            return Some(String::from("waiting for a board that answers"));
        }
        None
    }

    /// Another member of the service's set that is being started or has not
    /// answered since its start.
    fn set_member_busy(&self, service: usize, now: u64) -> Option<usize> {
        let set = self.config.services[service].set.as_ref()?;
        (0..self.services.len()).filter(|&i| i != service).find(|&i| {
            self.config.services[i].set.as_ref() == Some(set)
                && self.base_state(i, now).0 == ServiceState::Restarting
        })
    }

    /// The board to start the service on now: its last board if it answers and
    /// may be used, else the first of its boards that does.
    fn board_for(&self, service: usize, now: u64) -> Option<u16> {
        let config = &self.config.services[service];
        let usable =
            |id: u16| self.board(id).is_some_and(|b| b.listed && b.answering(now, self.board_silent_us(id)));
        let last = self.services[service].last_board.filter(|b| config.boards.contains(b));
        last.into_iter().chain(config.boards.iter().copied()).find(|&id| usable(id))
    }

    /// One round of decisions at `now`: which services to start.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        self.find_what_died(now);
        let mut actions = Vec::new();
        for service in 0..self.services.len() {
            if let Some(action) = self.maybe_start(service, now) {
                actions.push(action);
            }
        }
        actions
    }

    /// Moves to `Down` what is known to be gone: processes never found,
    /// processes older than their board's reboot, movable services on a
    /// silent board, starts that never finished.
    fn find_what_died(&mut self, now: u64) {
        for service in 0..self.services.len() {
            match self.fate(service, now) {
                Some(Fate::NotFound) => {
                    self.services[service].life =
                        Life::Down { reason: RestartReason::NotRunning, since: now };
                }
                Some(Fate::Gone(reason)) => self.went_down(service, reason, now),
                Some(Fate::StartGivenUp) => {
                    self.start_failed(service, now, String::from("the start did not finish in time"))
                }
                None => {}
            }
        }
    }

    /// What is now known to have become of service `service`, if anything.
    fn fate(&self, service: usize, now: u64) -> Option<Fate> {
        let timing = &self.timing;
        let config = &self.config.services[service];
        let movable = config.boards.len() > 1;
        let silent = |b: &BoardWatch| b.silent_for(now, self.born) >= timing.board_silent_us;
        match &self.services[service].life {
            Life::Unknown => {
                let looked_everywhere = config
                    .boards
                    .iter()
                    .all(|&id| self.board(id).is_some_and(|b| b.listed || (movable && silent(b))));
                looked_everywhere.then_some(Fate::NotFound)
            }
            Life::Running(p) => {
                let board = self.board(p.board)?;
                if board.booted_after(p.known_at) {
                    Some(Fate::Gone(RestartReason::BoardRebooted))
                } else if movable && silent(board) && self.missing(&self.services[service], now) {
                    // Only when the service is silent too: a board's process
                    // server that is merely slow (a crowded board) does not
                    // make a second copy of a service that still answers.
                    Some(Fate::Gone(RestartReason::BoardSilent))
                } else {
                    None
                }
            }
            Life::Starting { since, .. } => {
                (now.saturating_sub(*since) > timing.start_deadline_us).then_some(Fate::StartGivenUp)
            }
            Life::Down { .. } => None,
        }
    }

    fn maybe_start(&mut self, service: usize, now: u64) -> Option<Action> {
        let (reason, replacing) = match &self.services[service].life {
            Life::Down { reason, .. } => (reason.clone(), None),
            Life::Running(p) => {
                let stale = self.stale_board(service)?;
                // A replacement waits until every other member of its set is up.
                let set = self.config.services[service].set.clone();
                let others_up = (0..self.services.len())
                    .filter(|&i| i != service && set.is_some() && self.config.services[i].set == set)
                    .all(|i| self.is_up(i, now));
                if !others_up {
                    return None;
                }
                (RestartReason::StaleCapabilities(stale), Some(p.clone()))
            }
            Life::Unknown | Life::Starting { .. } => return None,
        };
        if self.waiting_for(service, now).is_some() {
            return None;
        }
        let board = self.board_for(service, now)?;
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        let s = &mut self.services[service];
        s.restarts += 1;
        s.reason = reason.clone();
        s.last_board = Some(board);
        let replace = replacing.as_ref().map(|p| p.capability);
        s.life = Life::Starting { board, attempt, since: now, replacing };
        if s.history.len() == MAX_HISTORY {
            s.history.pop_front();
        }
        s.history.push_back(Start { at: now, board, reason, outcome: None });
        Some(Action::Start { service, board, replace, attempt })
    }

    // ------------------------------------------------------------ reporting

    /// Every service as the boot service sees it at `now`.
    pub fn reports(&self, now: u64) -> Vec<ServiceReport> {
        (0..self.services.len())
            .map(|service| {
                let s = &self.services[service];
                let config = &self.config.services[service];
                let (state, note) = self.state(service, now);
                let board = match &s.life {
                    Life::Running(p) => Some(p.board),
                    Life::Starting { board, .. } => Some(*board),
                    _ => s.last_board,
                };
                ServiceReport {
                    name: config.name.clone(),
                    program: config.program.clone(),
                    board,
                    state,
                    note,
                    restarts: s.restarts,
                    answered_us_ago: s.last_answer.map(|at| now.saturating_sub(at)),
                    history: s
                        .history
                        .iter()
                        .map(|start| RestartRecord {
                            ago_us: now.saturating_sub(start.at),
                            board: start.board,
                            reason: start.reason.clone(),
                            outcome: start.outcome.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

/// Why a service is down, in words.
pub fn reason_text(reason: &RestartReason) -> String {
    match reason {
        RestartReason::NotRunning => String::from("not running when the boot service started"),
        RestartReason::ProcessEnded => String::from("its process ended"),
        RestartReason::BoardRebooted => String::from("its board rebooted"),
        RestartReason::BoardSilent => String::from("its board went silent"),
        RestartReason::StaleCapabilities(board) => format!("board {board}, whose disk it uses, rebooted"),
    }
}
