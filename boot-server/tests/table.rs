//! The service table's rules, driven as the board program drives it: boards
//! answering with their uptime, checks answered or not, process reports,
//! starts finishing. Above all: a slow service is never restarted, a dead one
//! is, and a restart never makes a second copy of a live process.

use amoeba_abi::{Capability, Check, Port, Rights};
use amoeba_ipc::interfaces::boot::{RestartReason, ServiceState};
use boot_server::config::{
    Board, BootConfig, CapabilitySource, NamedCapability, ServiceCheck, ServiceConfig,
};
use boot_server::{Action, ProcessSeen, ServiceTable, Timing};
use proptest::prelude::*;

const S: u64 = 1_000_000;
const MS: u64 = 1_000;

fn cap(n: u32) -> Capability {
    Capability::owner(Port([n as u8, (n >> 8) as u8, 7, 7, 7, 7]), n, Check([n as u8; 6]))
}

fn service(name: &str, program: &str, boards: &[u16]) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        program: program.into(),
        boards: boards.to_vec(),
        heap_bytes: 1 << 20,
        argv: vec![program.into()],
        environment: Vec::new(),
        capabilities: Vec::new(),
        check: ServiceCheck::Info(cap(900)),
        after: Vec::new(),
        set: None,
    }
}

fn disk_of(board: u16) -> NamedCapability {
    NamedCapability {
        name: "ANCHOR".into(),
        source: CapabilitySource::Disk { board, first: 0, count: 8, rights: Rights::ALL },
    }
}

/// The pool's usual services: Bullet on board 0, three replicas on boards
/// 0–2 (each with anchors on board 0's disk, waiting for Bullet), the run
/// server on board 3 (movable to 2).
fn system() -> BootConfig {
    let mut bullet = service("bullet", "bullet-server", &[0]);
    bullet.capabilities.push(disk_of(0));
    let mut services = vec![bullet];
    for r in 0..3u16 {
        let mut replica = service(&format!("directory {r}"), "directory-server", &[r]);
        replica.capabilities.push(disk_of(0));
        replica.after = vec!["bullet".into()];
        replica.set = Some("directory".into());
        services.push(replica);
    }
    services.push(service("run", "run-server", &[3, 2]));
    let boards = (0..4).map(|id| Board { id, host: cap(100 + u32::from(id)) }).collect();
    let config = BootConfig { boards, services };
    config.validate().unwrap();
    config
}

const BULLET: usize = 0;
const REPLICA0: usize = 1;
const REPLICA1: usize = 2;
const REPLICA2: usize = 3;
const RUN: usize = 4;

/// A simulated pool around a table.
struct World {
    table: ServiceTable,
    now: u64,
    /// Each board's true boot time, and whether it answers.
    boards: Vec<(u64, bool)>,
    next_process: u32,
    /// Every process started or adopted that is alive: (service, board, cap).
    alive: Vec<(usize, u16, Capability)>,
}

impl World {
    /// Boards booted at 0; every service running (found on the boards' lists)
    /// and answering.
    fn up() -> World {
        let config = system();
        let mut world = World {
            table: ServiceTable::new(config.clone(), Timing::default(), 10 * S),
            now: 10 * S,
            boards: vec![(0, true); 4],
            next_process: 1,
            alive: Vec::new(),
        };
        for (index, service) in config.services.iter().enumerate() {
            let process = world.new_process();
            world.alive.push((index, service.boards[0], process));
        }
        for id in 0..4u16 {
            let live: Vec<(String, Capability)> = world
                .alive
                .iter()
                .filter(|(_, board, _)| *board == id)
                .map(|(s, _, c)| (config.services[*s].program.clone(), *c))
                .collect();
            world.table.board_listed(id, world.now, &live);
        }
        world.round(20 * MS);
        for service in 0..world.table.len() {
            assert_eq!(world.state(service), ServiceState::Up, "{}", world.table.state(service, world.now).1);
        }
        world
    }

    fn new_process(&mut self) -> Capability {
        self.next_process += 1;
        cap(self.next_process)
    }

    fn state(&self, service: usize) -> ServiceState {
        self.table.state(service, self.now).0
    }

    /// One poll round taking `rtt` per call: boards, processes, checks (a
    /// service answers if its process lives and its board answers, unless
    /// `slow` says it does not), then a tick; the starts it asked for.
    fn round_with(&mut self, rtt: u64, slow: &[usize]) -> Vec<Action> {
        let sent = self.now;
        self.now += rtt;
        for id in 0..self.boards.len() as u16 {
            let (booted, answers) = self.boards[id as usize];
            if answers {
                // The board measured its uptime somewhere within the call.
                let at = sent + rtt / 2;
                self.table.board_answered(id, sent, self.now, at - booted);
            }
        }
        for service in 0..self.table.len() {
            if let Some((board, process)) = self.table.process(service)
                && self.boards[board as usize].1
            {
                let lives = self.alive.iter().any(|(_, _, c)| *c == process);
                let seen = if lives { ProcessSeen::Alive } else { ProcessSeen::Gone };
                self.table.process_seen(service, process, self.now, seen);
            }
            let serving = self.alive.iter().any(|(s, b, _)| *s == service && self.boards[*b as usize].1);
            if !slow.contains(&service) {
                self.table.check_done(service, sent, self.now, serving);
            }
        }
        self.table.tick(self.now)
    }

    fn round(&mut self, rtt: u64) -> Vec<Action> {
        self.round_with(rtt, &[])
    }

    /// Carries out a start (destroying what it replaces); the new process.
    fn start(&mut self, action: &Action) -> Capability {
        let Action::Start { service, board, replace, attempt } = action;
        if let Some(old) = replace {
            self.alive.retain(|(_, _, c)| c != old);
        }
        let process = self.new_process();
        self.alive.push((*service, *board, process));
        assert!(self.table.start_finished(*service, *attempt, self.now, Ok(process)));
        process
    }

    /// Runs rounds for `duration`, carrying out every start; the starts made.
    fn run(&mut self, duration: u64, slow: &[usize]) -> Vec<Action> {
        let end = self.now + duration;
        let mut started = Vec::new();
        while self.now < end {
            for action in self.round_with(20 * MS, slow) {
                self.start(&action);
                started.push(action);
            }
            self.now += 230 * MS;
        }
        started
    }

    fn kill(&mut self, service: usize) {
        self.alive.retain(|(s, _, _)| *s != service);
    }

    fn copies(&self, service: usize) -> usize {
        self.alive.iter().filter(|(s, _, _)| *s == service).count()
    }

    /// Board `id` loses power: its processes go, it stops answering.
    fn power_off(&mut self, id: u16) {
        self.alive.retain(|(_, b, _)| *b != id);
        self.boards[id as usize].1 = false;
    }

    fn boot(&mut self, id: u16) {
        self.boards[id as usize] = (self.now, true);
    }
}

fn services_started(actions: &[Action]) -> Vec<usize> {
    actions.iter().map(|Action::Start { service, .. }| *service).collect()
}

#[test]
fn a_stunned_service_is_suspect_and_left_alone_then_up_again() {
    let mut world = World::up();
    // Bullet stunned for a minute: its check never comes back, its process lives.
    let started = world.run(60 * S, &[BULLET]);
    assert!(started.is_empty(), "a slow service was restarted: {started:?}");
    let (state, note) = world.table.state(BULLET, world.now);
    assert_eq!(state, ServiceState::Suspect, "{note}");
    assert!(note.contains("slow, left alone"), "{note}");
    // Resumed: it answers again and is up, never restarted.
    world.run(S, &[]);
    assert_eq!(world.state(BULLET), ServiceState::Up);
    assert_eq!(world.table.reports(world.now)[BULLET].restarts, 0);
}

#[test]
fn a_refused_check_alone_restarts_nothing() {
    let mut world = World::up();
    // The run server's process lives but it answers with errors (say, busy).
    let mut started = Vec::new();
    for _ in 0..100 {
        let sent = world.now;
        world.now += 10 * MS;
        world.table.check_done(RUN, sent, world.now, false);
        started.extend(world.run(250 * MS, &[RUN]));
    }
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(world.state(RUN), ServiceState::Suspect);
}

#[test]
fn a_killed_service_is_restarted_at_once_on_its_board_and_comes_up() {
    let mut world = World::up();
    world.kill(BULLET);
    let actions = world.round(20 * MS);
    assert_eq!(actions.len(), 1, "{actions:?}");
    let Action::Start { service, board, replace, .. } = &actions[0];
    assert_eq!((*service, *board, *replace), (BULLET, 0, None));
    assert_eq!(world.state(BULLET), ServiceState::Restarting);
    world.start(&actions[0]);
    assert_eq!(world.state(BULLET), ServiceState::Restarting, "not answered yet");
    world.run(S, &[]);
    assert_eq!(world.state(BULLET), ServiceState::Up);
    let report = &world.table.reports(world.now)[BULLET];
    assert_eq!(report.restarts, 1);
    assert_eq!(report.history.len(), 1);
    assert_eq!(report.history[0].reason, RestartReason::ProcessEnded);
    assert_eq!(report.history[0].outcome, Some(Ok(())));
    assert_eq!(world.copies(BULLET), 1);
}

#[test]
fn a_killed_replica_waits_for_nothing_else_and_rejoins() {
    let mut world = World::up();
    world.kill(REPLICA1);
    let started = world.run(2 * S, &[]);
    assert_eq!(services_started(&started), vec![REPLICA1]);
    assert!((0..world.table.len()).all(|s| world.state(s) == ServiceState::Up));
}

#[test]
fn the_disk_boards_reboot_restarts_its_services_then_replaces_the_stale_replicas_one_at_a_time() {
    let mut world = World::up();
    world.power_off(0);
    // While board 0 is off, nothing can be started on it and nothing else is touched.
    let started = world.run(10 * S, &[]);
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(world.state(BULLET), ServiceState::Dead);
    assert_eq!(world.state(REPLICA1), ServiceState::Up);
    world.boot(0);
    let mut order = Vec::new();
    for _ in 0..200 {
        let actions = world.round(20 * MS);
        for action in &actions {
            let Action::Start { service, replace, .. } = action;
            // Never two members of the directory's set restarting at once.
            let restarting = [REPLICA0, REPLICA1, REPLICA2]
                .iter()
                .filter(|&&r| r != *service && world.state(r) == ServiceState::Restarting)
                .count();
            assert_eq!(restarting, 0, "{action:?} while another replica restarts");
            if [REPLICA1, REPLICA2].contains(service) {
                assert!(replace.is_some(), "a live stale replica is replaced, not doubled");
            }
            world.start(action);
            order.push(*service);
        }
        // Each start answers only a few rounds later.
        world.now += 230 * MS;
    }
    assert_eq!(order, vec![BULLET, REPLICA0, REPLICA1, REPLICA2]);
    assert!((0..world.table.len()).all(|s| world.state(s) == ServiceState::Up));
    for service in 0..world.table.len() {
        assert_eq!(world.copies(service), 1, "service {service}");
    }
    let reports = world.table.reports(world.now);
    assert_eq!(reports[BULLET].history[0].reason, RestartReason::BoardRebooted);
    assert_eq!(reports[REPLICA1].history[0].reason, RestartReason::StaleCapabilities(0));
    assert_eq!(reports[RUN].restarts, 0);
}

#[test]
fn a_reboot_reported_as_restarted_counts_once() {
    let mut world = World::up();
    world.power_off(0);
    world.run(S, &[]);
    world.boot(0);
    // The first call after the reboot says "restarted"; later ones answer.
    let sent = world.now;
    world.now += 5 * MS;
    world.table.board_restarted(0, sent, world.now);
    world.run(5 * S, &[]);
    assert_eq!(world.table.reboots(0), 1);
    assert_eq!(world.copies(BULLET), 1);
    assert_eq!(world.state(BULLET), ServiceState::Up);
}

#[test]
fn a_pinned_service_on_a_silent_board_waits_for_it_and_is_not_doubled() {
    let mut world = World::up();
    // Board 1 is cut off (not rebooted) for 20 s: its replica is shown dead but
    // not started anywhere.
    world.boards[1].1 = false;
    let started = world.run(20 * S, &[]);
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(world.state(REPLICA1), ServiceState::Dead);
    assert!(world.table.state(REPLICA1, world.now).1.contains("waiting for it"));
    // It comes back with its process still there: up again, no restart.
    world.boards[1].1 = true;
    let started = world.run(2 * S, &[]);
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(world.state(REPLICA1), ServiceState::Up);
    assert_eq!(world.copies(REPLICA1), 1);
}

#[test]
fn a_movable_service_moves_off_a_dead_board() {
    let mut world = World::up();
    world.power_off(3);
    let started = world.run(5 * S, &[]);
    assert_eq!(started.len(), 1, "{started:?}");
    let Action::Start { service, board, .. } = started[0];
    assert_eq!((service, board), (RUN, 2));
    assert_eq!(world.table.reports(world.now)[RUN].history[0].reason, RestartReason::BoardSilent);
    assert_eq!(world.state(RUN), ServiceState::Up);
}

/// A crowded board's process server may fall silent while the service on it
/// still answers its checks: the service is not moved, so no second copy
/// of it runs (on a 32-board pool, run servers multiplied that way, each
/// polling every board). Once the service is silent too, it moves.
#[test]
fn a_movable_service_that_answers_stays_on_a_board_whose_process_server_is_silent() {
    let mut world = World::up();
    world.boards[3].1 = false;
    // The run server on board 3 still answers (its checks go to it, not to
    // the board's process server).
    let mut started = Vec::new();
    let end = world.now + 10 * S;
    while world.now < end {
        for action in world.round_with(20 * MS, &[RUN]) {
            started.push(action);
        }
        world.table.check_done(RUN, world.now, world.now + 10 * MS, true);
        world.now += 230 * MS;
    }
    assert!(started.is_empty(), "{started:?}");
    assert_eq!(world.state(RUN), ServiceState::Up, "{}", world.table.state(RUN, world.now).1);
    // Now it stops answering as well: it moves.
    let started = world.run(5 * S, &[RUN]);
    assert_eq!(services_started(&started), vec![RUN], "{started:?}");
}

#[test]
fn a_replica_waits_for_bullet() {
    let mut world = World::up();
    world.kill(BULLET);
    world.kill(REPLICA2);
    let actions = world.round(20 * MS);
    assert_eq!(services_started(&actions), vec![BULLET]);
    let note = world.table.state(REPLICA2, world.now).1;
    assert!(note.contains("waiting for bullet"), "{note}");
    world.start(&actions[0]);
    let started = world.run(2 * S, &[]);
    assert_eq!(services_started(&started), vec![REPLICA2]);
}

#[test]
fn failing_starts_back_off_and_a_late_start_is_undone() {
    let mut world = World::up();
    world.kill(RUN);
    let mut starts = Vec::new();
    for _ in 0..400 {
        for action in world.round(10 * MS) {
            let Action::Start { service, attempt, .. } = action;
            starts.push(world.now);
            assert!(!world.table.start_finished(service, attempt, world.now, Err("no memory".into())));
        }
        world.now += 90 * MS;
    }
    // 40 s: starts at about 0, +1, +2, +4, +8, +16 s.
    let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0] + S / 2) / S).collect();
    assert_eq!(gaps, vec![1, 2, 4, 8, 16], "{starts:?}");
    let note = world.table.state(RUN, world.now).1;
    assert!(note.contains("next try in"), "{note}");
    assert!(world.table.reports(world.now)[RUN].history.len() <= boot_server::table::MAX_HISTORY);

    // A start that hangs is given up after the deadline; its late result is refused.
    let mut world = World::up();
    world.kill(RUN);
    let actions = world.round(10 * MS);
    let Action::Start { attempt, .. } = actions[0];
    world.now += Timing::default().start_deadline_us + S;
    world.table.tick(world.now);
    assert_eq!(world.state(RUN), ServiceState::Dead);
    assert!(!world.table.start_finished(RUN, attempt, world.now, Ok(cap(77))), "a late process is destroyed");
}

#[test]
fn services_not_found_at_start_are_started_and_found_ones_are_adopted() {
    let config = system();
    let mut table = ServiceTable::new(config, Timing::default(), 0);
    // Only Bullet runs; board 3 never answers.
    table.board_listed(0, 0, &[("bullet-server".into(), cap(5))]);
    for id in 1..3 {
        table.board_listed(id, 0, &[]);
    }
    for id in 0..3 {
        table.board_answered(id, 0, 1000, 1000);
    }
    let actions = table.tick(1000);
    assert!(actions.is_empty(), "replicas wait for Bullet to answer: {actions:?}");
    assert_eq!(table.process(BULLET), Some((0, cap(5))));
    table.check_done(BULLET, 1000, 2000, true);
    let actions = table.tick(2000);
    // One replica at a time; the run server not yet: board 3 is not silent long enough.
    assert_eq!(services_started(&actions), vec![REPLICA0]);
    assert_eq!(table.state(RUN, 2000).0, ServiceState::Suspect);
    for id in 0..3 {
        table.board_answered(id, 3 * S, 3 * S + 1000, 3 * S);
    }
    let actions = table.tick(3 * S + 1000);
    let Some(Action::Start { service, board, .. }) = actions.first() else { panic!("{actions:?}") };
    assert_eq!((*service, *board), (RUN, 2), "the run server goes to board 2 while 3 is silent");
}

proptest! {
    /// Whatever the round-trip times (up to two seconds) and however the checks
    /// go, a live process on a live board is never restarted: no false reboot,
    /// no start.
    #[test]
    fn live_processes_are_never_restarted(
        rounds in proptest::collection::vec((0u64..2_000_000, 0u8..4, proptest::bool::ANY), 1..300)
    ) {
        let mut world = World::up();
        for (rtt, slow_service, answered) in rounds {
            let slow: Vec<usize> = if answered { Vec::new() } else { vec![slow_service as usize] };
            let actions = world.round_with(rtt, &slow);
            prop_assert!(actions.is_empty(), "{:?}", actions);
            world.now += 100 * MS;
        }
        for id in 0..4 {
            prop_assert_eq!(world.table.reboots(id), 0);
        }
    }
}

#[test]
fn a_failed_replacement_keeps_the_old_process_and_tries_again_as_a_replacement() {
    let mut world = World::up();
    world.power_off(0);
    world.run(5 * S, &[]);
    world.boot(0);
    // Bullet and replica 0 come back; replica 1's replacement then fails once.
    let mut failed_once = false;
    let mut replaced = Vec::new();
    for _ in 0..300 {
        for action in world.round(20 * MS) {
            let Action::Start { service, replace, attempt, .. } = &action;
            if *service == REPLICA1 {
                assert!(replace.is_some(), "replica 1 started beside its old process: {action:?}");
                if !failed_once {
                    failed_once = true;
                    world.table.start_finished(*service, *attempt, world.now, Err("out of memory".into()));
                    let (state, note) = world.table.state(REPLICA1, world.now);
                    assert_eq!(state, ServiceState::Up, "the old process still answers: {note}");
                    assert!(note.contains("to be replaced"), "{note}");
                    continue;
                }
            }
            world.start(&action);
            replaced.push(*service);
        }
        world.now += 80 * MS;
    }
    assert!(failed_once);
    // Replica 2 may go first while replica 1 waits out its back-off.
    assert_eq!(replaced[..2], [BULLET, REPLICA0]);
    replaced.sort();
    assert_eq!(replaced, vec![BULLET, REPLICA0, REPLICA1, REPLICA2]);
    assert_eq!(world.copies(REPLICA1), 1);
    assert_eq!(world.table.reports(world.now)[REPLICA1].restarts, 2);
}

/// A big pool's boards are polled less often, so that the boot service's
/// board polls stay within their budget; a small pool's as before. A board
/// counts as silent only after several polls it did not answer.
#[test]
fn board_polls_stay_within_their_budget_on_a_big_pool() {
    let small = Timing::for_boards(4);
    assert_eq!(small.board_poll_us, Timing::default().board_poll_us);
    assert_eq!(small.board_silent_us, Timing::default().board_silent_us);
    let big = Timing::for_boards(32);
    let polls_per_second = 32 * 1_000_000 / big.board_poll_us;
    assert!(polls_per_second <= boot_server::table::BOARD_POLLS_PER_SECOND, "{big:?}");
    assert!(big.board_silent_us >= 3 * big.board_poll_us, "{big:?}");
    assert_eq!(big.check_us, Timing::default().check_us, "service checks keep their pace");
    assert!(big.spare_board_poll_us >= big.board_poll_us, "{big:?}");
    assert!(big.spare_board_silent_us >= 3 * big.spare_board_poll_us, "{big:?}");
}

/// A board no service runs on, starts from or takes a disk of is spare: it
/// is polled (and counted silent) on the slower spare pace; the boards that
/// serve keep theirs.
#[test]
fn spare_boards_are_polled_less_often_than_serving_ones() {
    let mut config = system();
    config.boards = (0..6).map(|id| Board { id, host: cap(100 + u32::from(id)) }).collect();
    config.services[RUN].boards = vec![3, 5, 4];
    let timing = Timing::for_boards(6);
    let table = ServiceTable::new(config, timing, 10 * S);
    for serving in 0..4 {
        assert_eq!(table.board_poll_us(serving), timing.board_poll_us, "board {serving}");
    }
    for spare in 4..6 {
        assert_eq!(table.board_poll_us(spare), timing.spare_board_poll_us, "board {spare}");
    }
    assert!(timing.spare_board_poll_us > timing.board_poll_us, "{timing:?}");
}

#[test]
fn only_a_service_quiet_for_a_poll_period_needs_its_board_asked() {
    let mut world = World::up();
    let period = world.table.timing().check_us;
    // Up and answering: it lived at its last answer.
    assert!(world.table.answered_since(BULLET, world.now - period));
    // A period later with no answer meanwhile, the board must be asked.
    world.now += period + MS;
    assert!(!world.table.answered_since(BULLET, world.now - period));
    // A fresh process that has not answered a check of its own yet is asked
    // about, however recent the last answer (its predecessor's).
    world.kill(BULLET);
    let actions = world.round(20 * MS);
    world.start(&actions[0]);
    let sent = world.now - 100 * MS; // sent before this start
    world.table.check_done(BULLET, sent, world.now, true);
    assert!(!world.table.answered_since(BULLET, world.now - period));
    // Once it answers a check sent after its start, a recent answer counts.
    let sent = world.now;
    world.now += 10 * MS;
    world.table.check_done(BULLET, sent, world.now, true);
    assert!(world.table.answered_since(BULLET, world.now - period));
}
