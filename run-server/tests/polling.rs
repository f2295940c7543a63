//! The pool's bookkeeping: when hosts are polled, how answers, silences,
//! reboots and directory changes are taken, when placements stop counting, and
//! that choices match Amoeba's rule computed independently in floating point.

use std::collections::BTreeSet;

use proptest::prelude::*;
use run_server::{Config, HostInfo, MAX_PENDING, PlaceError, Pool, Program, ReportRefused, UNIT, Weights};

const MIB: u64 = 1 << 20;
const SMALL: Program = Program { memory: MIB, text: None };

fn idle() -> HostInfo {
    HostInfo {
        free_bytes: 200 * MIB,
        largest_free: 150 * MIB,
        processes: 2,
        processes_created: 2,
        uptime_us: 5_000_000,
        ..HostInfo::default()
    }
}

fn pool_of(names: &[&str]) -> Pool<u32> {
    let mut pool = Pool::new(Config::default());
    for (handle, name) in names.iter().enumerate() {
        pool.add_host(name, handle as u32, Weights::default(), 0);
    }
    pool
}

fn poll_name(pool: &mut Pool<u32>, now: u64) -> Option<String> {
    pool.next_poll(now).map(|host| host.name.to_string())
}

fn pending(pool: &Pool<u32>, name: &str, now: u64) -> usize {
    pool.hosts(now).find(|h| h.host.name == name).expect("in the pool").pending_placements
}

#[test]
fn new_hosts_are_polled_at_once_then_every_interval_from_the_request() {
    let config = Config::default();
    let mut pool = pool_of(&["b0", "b1"]);
    assert_eq!(pool.next_poll_at(), Some(0));
    assert_eq!(poll_name(&mut pool, 0).as_deref(), Some("b0"));
    assert_eq!(poll_name(&mut pool, 0).as_deref(), Some("b1"));
    assert_eq!(poll_name(&mut pool, 0), None, "both are being asked");
    pool.record_info("b0", idle(), 30_000).unwrap();
    pool.record_no_answer("b1");
    assert_eq!(pool.next_poll_at(), Some(config.poll_interval_us));
    assert_eq!(poll_name(&mut pool, config.poll_interval_us - 1), None);
    assert_eq!(poll_name(&mut pool, config.poll_interval_us).as_deref(), Some("b0"));
    assert_eq!(poll_name(&mut pool, config.poll_interval_us).as_deref(), Some("b1"));
}

#[test]
fn the_longest_overdue_host_is_asked_first() {
    let mut pool = pool_of(&["b0", "b1"]);
    poll_name(&mut pool, 0);
    poll_name(&mut pool, 100_000);
    pool.record_info("b1", idle(), 100_000).unwrap();
    pool.record_info("b0", idle(), 100_000).unwrap();
    // b0 was due at 250 ms, b1 at 350 ms: at 400 ms b0 goes first.
    assert_eq!(poll_name(&mut pool, 400_000).as_deref(), Some("b0"));
}

#[test]
fn a_poll_nobody_reported_on_is_asked_again_after_the_silence_limit() {
    let limit = Config::default().silence_limit_us;
    let mut pool = pool_of(&["b0"]);
    poll_name(&mut pool, 0);
    assert_eq!(pool.next_poll_at(), Some(limit));
    assert_eq!(poll_name(&mut pool, limit - 1), None);
    assert_eq!(poll_name(&mut pool, limit).as_deref(), Some("b0"));
}

#[test]
fn a_silence_does_not_kill_a_host_before_the_limit() {
    let limit = Config::default().silence_limit_us;
    let interval = Config::default().poll_interval_us;
    let mut pool = pool_of(&["b0"]);
    poll_name(&mut pool, 0);
    pool.record_info("b0", idle(), 0).unwrap();
    assert_eq!(poll_name(&mut pool, interval).as_deref(), Some("b0"));
    pool.record_no_answer("b0");
    // Silent from the poll it left unanswered, not from its answer.
    assert!(pool.is_alive("b0", interval + limit));
    assert!(!pool.is_alive("b0", interval + limit + 1));
    assert!(pool.hosts(interval + limit + 1).all(|h| !h.alive && h.info.is_some()));
}

/// A poller that is itself late (its board crowded) does not make a host
/// dead: only a poll the host leaves unanswered starts its silence.
#[test]
fn a_host_not_asked_since_its_answer_keeps_its_report() {
    let limit = Config::default().silence_limit_us;
    let mut pool = pool_of(&["b0"]);
    poll_name(&mut pool, 0);
    pool.record_info("b0", idle(), 0).unwrap();
    assert!(pool.is_alive("b0", 10 * limit), "nobody asked it since");
    assert!(pool.record_asked("b0", 10 * limit));
    assert!(pool.is_alive("b0", 11 * limit));
    assert!(!pool.is_alive("b0", 11 * limit + 1));
    pool.record_info("b0", idle(), 11 * limit + 2).unwrap();
    assert!(pool.is_alive("b0", 11 * limit + 2));
    assert!(!pool.record_asked("nobody", 0));
}

#[test]
fn directory_changes_add_replace_and_remove_hosts() {
    let mut pool = pool_of(&["b0", "b1"]);
    pool.record_info("b0", idle(), 0).unwrap();
    assert!(!pool.add_host("b0", 0, Weights { preference_milli: 2000, ..Weights::default() }, 10));
    assert!(pool.is_alive("b0", 10), "same handle: what was known stays");
    assert_eq!(pool.hosts(10).next().unwrap().weights.preference_milli, 2000);
    assert!(!pool.add_host("b0", 9, Weights::default(), 20));
    assert!(!pool.is_alive("b0", 20), "new handle: a new incarnation, unknown until it answers");
    assert_eq!(pool.handle("b0"), Some(&9), "the old handle's poller must see it replaced");
    assert_eq!(pool.handle("b1"), Some(&1));
    assert_eq!(pool.remove_host("b1"), Some(1));
    assert_eq!(pool.handle("b1"), None, "a removed host's poller must stop");
    assert_eq!(
        pool.record_info("b1", idle(), 30),
        Err(ReportRefused::NotInPool),
        "an answer from a removed host is dropped"
    );
    assert!(!pool.record_no_answer("b1"));
    assert_eq!(pool.host_names().collect::<Vec<_>>(), ["b0"]);
    assert!(pool.add_host("b2", 2, Weights::default(), 40));
}

#[test]
fn each_new_process_a_report_shows_retires_the_oldest_placement() {
    let mut pool = pool_of(&["b0"]);
    pool.record_info("b0", idle(), 0).unwrap();
    for t in 1..=3 {
        pool.place(&SMALL, t, 0).unwrap();
    }
    assert_eq!(pending(&pool, "b0", 10), 3);
    let one_created = HostInfo { runnable_milli: UNIT, processes: 3, processes_created: 3, ..idle() };
    pool.record_info("b0", one_created.clone(), 20).unwrap();
    assert_eq!(pending(&pool, "b0", 20), 2);
    pool.record_info("b0", one_created, 30).unwrap();
    assert_eq!(pending(&pool, "b0", 30), 2, "the same count again retires nothing");
    let many_created = HostInfo { processes_created: 10, ..idle() };
    pool.record_info("b0", many_created, 40).unwrap();
    assert_eq!(pending(&pool, "b0", 40), 0);
}

#[test]
fn a_reboot_voids_the_placements_made_before_it() {
    let mut pool = pool_of(&["b0", "b1"]);
    pool.record_info("b0", idle(), 0).unwrap();
    pool.record_info("b1", HostInfo { processes_created: 50, ..idle() }, 0).unwrap();
    pool.place(&SMALL, 1, 0).unwrap();
    pool.place(&SMALL, 2, 0).unwrap();
    assert_eq!(pending(&pool, "b0", 10) + pending(&pool, "b1", 10), 2);
    // b0 rebooted (uptime went back, same count); b1 rebooted (count went back).
    pool.record_info("b0", HostInfo { uptime_us: 1000, ..idle() }, 20).unwrap();
    pool.record_info("b1", HostInfo { processes_created: 3, ..idle() }, 20).unwrap();
    assert_eq!(pending(&pool, "b0", 20) + pending(&pool, "b1", 20), 0);
}

#[test]
fn a_placement_no_report_shows_stops_counting_after_the_timeout() {
    let timeout = Config::default().placement_timeout_us;
    let mut pool = pool_of(&["b0", "b1"]);
    pool.record_info("b0", idle(), 0).unwrap();
    pool.record_info("b1", idle(), 0).unwrap();
    let first = pool.place(&SMALL, 0, 0).unwrap().name.to_string();
    let now = timeout - 1;
    pool.record_info("b0", idle(), now).unwrap();
    pool.record_info("b1", idle(), now).unwrap();
    assert_eq!(pending(&pool, &first, now), 1);
    assert!((0..8).all(|r| pool.choose(&SMALL, now, r).unwrap().name != first));
    assert_eq!(pending(&pool, &first, timeout), 0);
    assert!((0..8).any(|r| pool.choose(&SMALL, timeout, r).unwrap().name == first));
}

/// One host of a generated pool: weights, its report, and whether it is alive.
#[derive(Clone, Debug)]
struct Generated {
    preference: u32,
    speed: u32,
    info: HostInfo,
    alive: bool,
}

fn any_host() -> impl Strategy<Value = Generated> {
    let info = (0u32..4, 0u32..=1000, 1u64..64, 0u64..=100, any::<bool>()).prop_map(
        |(runnable, cpu, free_mib, hole_percent, cached)| HostInfo {
            runnable_milli: runnable * UNIT,
            cpu_load_milli: cpu,
            free_bytes: free_mib * MIB,
            largest_free: free_mib * MIB * hole_percent / 100,
            cached_texts: if cached { vec![1] } else { Vec::new() },
            ..idle()
        },
    );
    (1u32..4000, 1u32..4000, info, prop::bool::weighted(0.85))
        .prop_map(|(preference, speed, info, alive)| Generated { preference, speed, info, alive })
}

/// Amoeba's rule in floating point, written from the formula, not the code.
fn oracle_score(host: &Generated, program: &Program, config: &Config) -> f64 {
    let info = &host.info;
    let load = (info.runnable_milli as f64 / 1000.0).max(info.cpu_load_milli as f64 / 1000.0);
    let memory = info.free_bytes.min(config.rule.memory_cap) as f64;
    let cached = program.text.is_some_and(|t| info.cached_texts.contains(&t));
    let bonus = if cached { config.rule.cached_text_bonus_milli as f64 / 1000.0 } else { 1.0 };
    host.preference as f64 / 1000.0 * host.speed as f64 / 1000.0 / (load + 1.0) * memory * bonus
}

proptest! {
    #[test]
    fn choices_are_exactly_the_hosts_within_five_percent_of_the_best(
        hosts in proptest::collection::vec(any_host(), 1..8),
        memory_mib in 0u64..32,
        cached_text in any::<bool>(),
    ) {
        let config = Config::default();
        let program = Program { memory: memory_mib * MIB, text: cached_text.then_some(1) };
        let names: Vec<String> = (0..hosts.len()).map(|i| format!("h{i}")).collect();
        let mut pool = Pool::new(config);
        for (i, host) in hosts.iter().enumerate() {
            let weights = Weights { preference_milli: host.preference, speed_milli: host.speed };
            pool.add_host(&names[i], i as u32, weights, 0);
            if host.alive {
                pool.record_info(&names[i], host.info.clone(), 0).unwrap();
            }
        }
        let fitting: Vec<(usize, f64)> = hosts.iter().enumerate()
            .filter(|(_, h)| h.alive && h.info.largest_free >= program.memory)
            .map(|(i, h)| (i, oracle_score(h, &program, &config)))
            .collect();
        let Some(best) = fitting.iter().map(|(_, s)| *s).reduce(f64::max) else {
            let expected = if hosts.iter().any(|h| h.alive) {
                let largest_free = hosts.iter().filter(|h| h.alive).map(|h| h.info.largest_free).max().unwrap();
                PlaceError::NoRoom { need: program.memory, largest_free }
            } else {
                PlaceError::NoHostAlive { known: hosts.len() }
            };
            prop_assert_eq!(pool.choose(&program, 0, 0), Err(expected));
            return Ok(());
        };
        let floor = best * 0.95;
        prop_assume!(fitting.iter().all(|(_, s)| (s - floor).abs() > floor * 1e-6));
        let band: BTreeSet<&str> =
            fitting.iter().filter(|(_, s)| *s >= floor).map(|(i, _)| names[*i].as_str()).collect();
        let chosen: BTreeSet<&str> =
            (0..hosts.len() as u64 * 3).map(|r| pool.choose(&program, 0, r).unwrap().name).collect();
        prop_assert_eq!(chosen, band);
    }
}

#[test]
fn at_most_max_pending_placements_count_on_one_host() {
    let mut pool = pool_of(&["b0"]);
    pool.record_info("b0", idle(), 0).unwrap();
    let tiny = Program { memory: 0, text: None };
    for t in 1..=(MAX_PENDING as u64 + 44) {
        pool.place(&tiny, t, 0).unwrap();
    }
    assert_eq!(pending(&pool, "b0", 1000), MAX_PENDING, "the oldest stop counting");
}

#[test]
fn a_slow_creation_on_a_crowded_host_keeps_counting_until_its_report_shows_it() {
    // Creation takes seconds on a crowded host: the placement counts all the
    // while, so the next request goes to the other host, not the same one twice.
    let mut pool = pool_of(&["b0", "b1"]);
    pool.record_info("b0", idle(), 0).unwrap();
    pool.record_info("b1", idle(), 0).unwrap();
    let first = pool.place(&SMALL, 0, 0).unwrap().name.to_string();
    let mut now = 0;
    while now < 5_000_000 {
        now += 250_000;
        pool.record_info("b0", idle(), now).unwrap();
        pool.record_info("b1", idle(), now).unwrap();
        assert!((0..8).all(|r| pool.choose(&SMALL, now, r).unwrap().name != first), "at {now} µs");
    }
    // Its report shows the process at last: the report alone counts now.
    let shown = HostInfo { runnable_milli: UNIT, processes: 3, processes_created: 3, ..idle() };
    pool.record_info(&first, shown, now).unwrap();
    assert_eq!(pending(&pool, &first, now), 0);
    assert!((0..8).all(|r| pool.choose(&SMALL, now, r).unwrap().name != first));
}

/// A big pool's hosts are polled less often, so that all polls together stay
/// within `polls_per_second`; a host counts as silent only after four missed
/// intervals; a pool that shrinks again polls at the configured pace.
#[test]
fn a_big_pool_is_polled_within_the_poll_budget() {
    let configured = Config::default();
    let small = pool_of(&["b0", "b1", "b2", "b3"]);
    assert_eq!(small.config().poll_interval_us, configured.poll_interval_us);
    assert_eq!(small.config().silence_limit_us, configured.silence_limit_us);

    let names: Vec<String> = (0..32).map(|i| format!("board{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut big = pool_of(&refs);
    let interval = big.config().poll_interval_us;
    assert!(interval > configured.poll_interval_us, "{:?}", big.config());
    assert!(32 * 1_000_000 / interval <= configured.polls_per_second, "{:?}", big.config());
    assert!(big.config().silence_limit_us >= 4 * interval, "{:?}", big.config());

    // Every host is asked once per interval, not once per configured interval.
    let mut asked = 0;
    let mut now = 0;
    while now < 4 * interval {
        while let Some(host) = big.next_poll(now) {
            let name = host.name.to_string();
            big.record_info(&name, idle(), now).unwrap();
            asked += 1;
        }
        now += 10_000;
    }
    assert!(asked <= 32 * 4 + 32, "{asked} polls in four intervals");
    assert!(names.iter().all(|n| big.is_alive(n, now)), "every host answered");

    for name in &names[4..] {
        big.remove_host(name);
    }
    assert_eq!(big.config().poll_interval_us, configured.poll_interval_us);
}

/// Hosts polled from threads of their own each keep a slot of their own in
/// the poll interval: on a big pool the 32 pollers are at least the budget's
/// spacing apart, never all due together; a host that left has no slot.
#[test]
fn each_host_has_a_poll_slot_of_its_own() {
    let configured = Config::default();
    let names: Vec<String> = (0..32).map(|i| format!("board{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut big = pool_of(&refs);
    let interval = big.config().poll_interval_us;
    let now = 7 * interval + 12_345;
    let mut slots: Vec<u64> = names.iter().map(|n| big.next_poll_slot_us(n, now).unwrap()).collect();
    assert!(slots.iter().all(|&slot| slot > now && slot - now <= interval), "{slots:?}");
    slots.sort_unstable();
    let spacing = 1_000_000 / configured.polls_per_second;
    assert!(slots.windows(2).all(|pair| pair[1] - pair[0] >= spacing - 1), "{slots:?}");
    // Late past its slot, a host waits for its next one.
    let slot = big.next_poll_slot_us("board5", now).unwrap();
    assert_eq!(big.next_poll_slot_us("board5", slot), Some(slot + interval));
    big.remove_host("board5");
    assert_eq!(big.next_poll_slot_us("board5", now), None);
}
