//! Placement scenarios on a simulated pool: spreading a burst, avoiding hogs,
//! skipping silent hosts, fitting memory, the tie band and the cached-text bonus.
//! `RUN_SEEDS=n` sets how many seeds the seeded scenarios run, `RUN_SEED=s`
//! replays one; proptest's cases follow `PROPTEST_CASES`.

use amoeba_abi::Rng;
use proptest::prelude::*;
use run_server::{Config, Estimate, HostInfo, PlaceError, Pool, Program, UNIT, Weights, suitability};

const MIB: u64 = 1 << 20;
const SECOND: u64 = 1_000_000;
const HOSTS: [&str; 4] = ["b0", "b1", "b2", "b3"];
/// A program needing little memory and with no known text.
const SMALL: Program = Program { memory: MIB, text: None };

fn idle() -> HostInfo {
    HostInfo {
        runnable_milli: 0,
        cpu_load_milli: 0,
        free_bytes: 200 * MIB,
        largest_free: 150 * MIB,
        processes: 2,
        processes_created: 2,
        uptime_us: 60 * SECOND,
        cached_texts: Vec::new(),
        kernel_heap_free: 40 * MIB,
    }
}

fn hogged(hogs: u32) -> HostInfo {
    HostInfo {
        runnable_milli: hogs * UNIT,
        cpu_load_milli: 1000,
        processes: 2 + hogs,
        processes_created: 2 + u64::from(hogs),
        ..idle()
    }
}

/// Four hosts, each polled once at `now` and answering `info(name)`.
fn pool_answering(now: u64, info: impl Fn(&str) -> HostInfo) -> Pool<u32> {
    let mut pool = Pool::new(Config::default());
    for (handle, name) in HOSTS.iter().enumerate() {
        pool.add_host(name, handle as u32, Weights::default(), now);
    }
    answer_polls(&mut pool, now, info);
    pool
}

/// Asks every host that is due and records `info(name)` as its answer.
fn answer_polls(pool: &mut Pool<u32>, now: u64, info: impl Fn(&str) -> HostInfo) {
    while let Some(host) = pool.next_poll(now) {
        let name = host.name.to_string();
        pool.record_info(&name, info(&name), now).unwrap();
    }
}

/// Asks every host that is due and records that none answered.
fn ask_without_answer(pool: &mut Pool<u32>, now: u64) {
    while let Some(host) = pool.next_poll(now) {
        let name = host.name.to_string();
        pool.record_no_answer(&name);
    }
}

fn index(name: &str) -> usize {
    HOSTS.iter().position(|h| *h == name).expect("a pool host")
}

fn seeded(seed: u64) -> Rng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    Rng::from_seed(bytes)
}

fn seeds(default: u64) -> Vec<u64> {
    if let Ok(seed) = std::env::var("RUN_SEED") {
        return vec![seed.parse().expect("RUN_SEED must be a number")];
    }
    let n = std::env::var("RUN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (0..n).collect()
}

/// Runs `scenario` for every seed, naming the first that fails.
fn for_seeds(name: &str, default: u64, scenario: impl Fn(u64) -> Result<(), String>) {
    for seed in seeds(default) {
        if let Err(why) = scenario(seed) {
            panic!(
                "{name}: seed {seed} failed: {why}\n  replay: RUN_SEED={seed} cargo test -p run-server {name}"
            );
        }
    }
}

/// How many of `n` placements starting at `now` land on each host.
fn place_burst(pool: &mut Pool<u32>, program: &Program, n: usize, now: u64, rng: &mut Rng) -> [usize; 4] {
    let mut counts = [0; 4];
    for i in 0..n {
        let host = pool.place(program, now + i as u64 * 1000, rng.next_u64()).expect("a host is free");
        counts[index(host.name)] += 1;
    }
    counts
}

fn spread(counts: &[usize]) -> usize {
    counts.iter().max().unwrap() - counts.iter().min().unwrap()
}

#[test]
fn twelve_requests_between_polls_spread_three_per_host() {
    for_seeds("twelve_requests_between_polls_spread_three_per_host", 500, |seed| {
        let mut pool = pool_answering(0, |_| idle());
        let counts = place_burst(&mut pool, &SMALL, 12, 1000, &mut seeded(seed));
        if counts != [3; 4] { Err(format!("counts {counts:?}")) } else { Ok(()) }
    });
}

#[test]
fn placement_without_recording_does_not_count() {
    let pool = pool_answering(0, |_| idle());
    let first = pool.choose(&SMALL, 1000, 7).unwrap().name.to_string();
    assert_eq!(pool.choose(&SMALL, 2000, 7).unwrap().name, first);
}

#[test]
fn hogs_on_two_hosts_send_new_programs_to_the_other_two() {
    for_seeds("hogs_on_two_hosts_send_new_programs_to_the_other_two", 200, |seed| {
        let mut rng = seeded(seed);
        let mut pool = pool_answering(0, |name| if index(name) < 2 { hogged(2) } else { idle() });
        // Two hogs each on b0 and b1: the next four programs fill b2 and b3 to two each.
        let counts = place_burst(&mut pool, &SMALL, 4, 1000, &mut rng);
        if counts != [0, 0, 2, 2] {
            return Err(format!("two hogs each: counts {counts:?}"));
        }
        let mut pool = pool_answering(0, |name| if index(name) < 2 { hogged(1) } else { idle() });
        let counts = place_burst(&mut pool, &SMALL, 2, 1000, &mut rng);
        if counts != [0, 0, 1, 1] { Err(format!("one hog each: counts {counts:?}")) } else { Ok(()) }
    });
}

#[test]
fn a_silent_host_is_skipped_after_the_silence_limit_and_used_again_once_it_answers() {
    let mut pool = pool_answering(0, |_| idle());
    // b0 stops answering; the others answer every poll. Its silence counts
    // from the first poll it left unanswered.
    let mut now = 0;
    let mut first_unanswered = None;
    while now <= Config::default().silence_limit_us + 600_000 {
        while let Some(host) = pool.next_poll(now) {
            let name = host.name.to_string();
            if name == "b0" {
                first_unanswered.get_or_insert(now);
                pool.record_no_answer(&name);
            } else {
                pool.record_info(&name, idle(), now).unwrap();
            }
        }
        let chosen: Vec<_> = (0..16).map(|r| pool.choose(&SMALL, now, r).unwrap().name.to_string()).collect();
        let b0_alive = first_unanswered.is_none_or(|t| now <= t + Config::default().silence_limit_us);
        assert_eq!(pool.is_alive("b0", now), b0_alive, "at {now} µs");
        assert_eq!(chosen.iter().any(|n| n == "b0"), b0_alive, "at {now} µs: {chosen:?}");
        now += 50_000;
    }
    assert!(!pool.is_alive("b0", now), "the loop ran past b0's silence limit");
    pool.record_info("b0", idle(), now).unwrap();
    assert!(pool.is_alive("b0", now));
    assert!((0..16).any(|r| pool.choose(&SMALL, now, r).unwrap().name == "b0"));
}

#[test]
fn a_program_lands_only_where_its_largest_segment_fits() {
    let small_holes = |name: &str| {
        let largest_free = if index(name) < 2 { 8 * MIB } else { 64 * MIB };
        HostInfo { largest_free, ..idle() }
    };
    let pool = pool_answering(0, small_holes);
    let big = Program { memory: 16 * MIB, text: None };
    for r in 0..64 {
        let name = pool.choose(&big, 1000, r).unwrap().name;
        assert!(index(name) >= 2, "16 MiB placed on {name}");
    }
    let huge = Program { memory: 100 * MIB, text: None };
    let error = pool.choose(&huge, 1000, 0).unwrap_err();
    assert_eq!(error, PlaceError::NoRoom { need: 100 * MIB, largest_free: 64 * MIB });
    assert!(error.to_string().contains("no processor has room"), "{error}");
}

#[test]
fn a_burst_does_not_overfill_the_one_hole_that_fits() {
    let mut pool = pool_answering(0, |name| {
        let largest_free = if name == "b2" { 20 * MIB } else { 4 * MIB };
        HostInfo { largest_free, ..idle() }
    });
    let program = Program { memory: 16 * MIB, text: None };
    assert_eq!(pool.place(&program, 1000, 0).unwrap().name, "b2");
    assert_eq!(
        pool.place(&program, 2000, 0),
        Err(PlaceError::NoRoom { need: 16 * MIB, largest_free: 4 * MIB })
    );
}

#[test]
fn no_host_alive_and_empty_pool_are_errors_of_their_own() {
    let mut pool = pool_answering(0, |_| idle());
    // Not asked since: their reports stand (a late poller is not their silence).
    let later = Config::default().silence_limit_us + 1;
    assert!(pool.choose(&SMALL, later, 0).is_ok());
    // Asked, and silent for the limit.
    let asked = Config::default().poll_interval_us;
    ask_without_answer(&mut pool, asked);
    let later = asked + Config::default().silence_limit_us + 1;
    let error = pool.choose(&SMALL, later, 0).unwrap_err();
    assert_eq!(error, PlaceError::NoHostAlive { known: 4 });
    assert!(error.to_string().contains("none of the pool's 4 processors"), "{error}");
    let never_answered = {
        let mut pool = Pool::new(Config::default());
        pool.add_host("b0", 0u32, Weights::default(), 0);
        pool
    };
    assert_eq!(never_answered.choose(&SMALL, 0, 0), Err(PlaceError::NoHostAlive { known: 1 }));
    let empty: Pool<u32> = Pool::new(Config::default());
    assert_eq!(empty.choose(&SMALL, 0, 0), Err(PlaceError::NoHostAlive { known: 0 }));
}

/// Five idle hosts whose speeds give scores 1.00, 0.97, 0.955, 0.94 and 0.5.
fn graded_pool() -> Pool<u32> {
    let mut pool = Pool::new(Config::default());
    for (handle, speed) in [1000, 970, 955, 940, 500].into_iter().enumerate() {
        let weights = Weights { speed_milli: speed, ..Weights::default() };
        pool.add_host(&format!("h{speed}"), handle as u32, weights, 0);
    }
    while let Some(host) = pool.next_poll(0) {
        let name = host.name.to_string();
        pool.record_info(&name, idle(), 0).unwrap();
    }
    pool
}

#[test]
fn choices_spread_over_the_five_percent_band_and_never_leave_it() {
    for_seeds("choices_spread_over_the_five_percent_band_and_never_leave_it", 20, |seed| {
        let pool = graded_pool();
        let mut rng = seeded(seed);
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..3000 {
            *counts.entry(pool.choose(&SMALL, 0, rng.next_u64()).unwrap().name.into()).or_default() += 1;
        }
        let in_band = ["h1000", "h970", "h955"];
        let fair = counts.len() == 3 && in_band.iter().all(|h| counts.get(*h).is_some_and(|&n| n >= 850));
        if fair { Ok(()) } else { Err(format!("counts {counts:?}")) }
    });
}

#[test]
fn the_cached_text_bonus_tips_the_choice_between_equal_hosts() {
    let text = 0x5eed;
    let pool = pool_answering(0, |name| {
        if name == "b2" { HostInfo { cached_texts: vec![1, text], ..idle() } } else { idle() }
    });
    let cached = Program { memory: MIB, text: Some(text) };
    assert!((0..64).all(|r| pool.choose(&cached, 1000, r).unwrap().name == "b2"));
    let other = Program { memory: MIB, text: Some(text + 1) };
    let names: std::collections::BTreeSet<_> =
        (0..64).map(|r| pool.choose(&other, 1000, r).unwrap().name).collect();
    assert_eq!(names.len(), 4, "an uncached program spreads: {names:?}");
    // The bonus does not outweigh a busy thread.
    let busy = pool_answering(0, |name| {
        if name == "b2" { HostInfo { cached_texts: vec![text], ..hogged(1) } } else { idle() }
    });
    assert!((0..64).all(|r| busy.choose(&cached, 1000, r).unwrap().name != "b2"));
    // Nor one more busy thread where a few run already (a burst stays even).
    let crowded = pool_answering(0, |name| {
        if name == "b2" { HostInfo { cached_texts: vec![text], ..hogged(3) } } else { hogged(2) }
    });
    assert!((0..64).all(|r| crowded.choose(&cached, 1000, r).unwrap().name != "b2"));
}

/// A board of the simulated pool: its processes, all CPU-bound.
#[derive(Clone, Default)]
struct Board {
    running: u32,
    created: u64,
}

impl Board {
    fn info(&self) -> HostInfo {
        HostInfo {
            runnable_milli: self.running * UNIT,
            cpu_load_milli: if self.running > 0 { 1000 } else { 0 },
            processes: 2 + self.running,
            processes_created: 2 + self.created,
            ..idle()
        }
    }
}

/// One request of a burst: when it arrives (µs), how long until its process
/// exists on the chosen board, and the random number for the choice.
type Request = (u64, u64, u64);

/// Twelve requests arriving within one poll period in any order, each process
/// appearing after a delay, while polls go out and come back (after delays,
/// with the board's state when the reply leaves) throughout. Every host being
/// equal, each request must go to a host with the fewest programs so far.
fn burst_spreads(requests: &[Request], reply_delays: &[u64]) -> Result<[usize; 4], String> {
    let mut pool = pool_answering(0, |_| idle());
    let mut boards = vec![Board::default(); 4];
    let mut creations: Vec<(u64, usize)> = Vec::new();
    let mut replies: Vec<(u64, String)> = Vec::new();
    let mut counts = [0; 4];
    let mut delays = reply_delays.iter().cycle();
    for now in (1000..=1_500_000).step_by(1000) {
        for (_, board) in creations.iter().filter(|(at, _)| *at == now) {
            boards[*board].running += 1;
            boards[*board].created += 1;
        }
        for (_, name) in replies.iter().filter(|(at, _)| *at == now) {
            pool.record_info(name, boards[index(name)].info(), now).unwrap();
        }
        while let Some(host) = pool.next_poll(now) {
            replies.push((now + delays.next().unwrap(), host.name.to_string()));
        }
        for &(_, delay, random) in requests.iter().filter(|(at, _, _)| *at == now) {
            let board = index(pool.place(&SMALL, now, random).map_err(|e| e.to_string())?.name);
            if counts[board] > *counts.iter().min().unwrap() {
                return Err(format!("at {now} µs placed on b{board} with counts {counts:?}"));
            }
            counts[board] += 1;
            creations.push((now + delay, board));
        }
    }
    Ok(counts)
}

proptest! {
    #[test]
    fn a_burst_in_any_order_spreads_evenly(
        // The burst's start relative to the polls (every 250 ms), then each
        // request's arrival in it, its creation delay and its random number.
        start in 1u64..250,
        requests in proptest::collection::vec((0u64..250, 1u64..400, any::<u64>()), 12),
        reply_delays in proptest::collection::vec((1u64..100).prop_map(|ms| ms * 1000), 1..8),
    ) {
        let requests: Vec<Request> =
            requests.into_iter().map(|(at, delay, r)| ((start + at) * 1000, delay * 1000, r)).collect();
        let counts = burst_spreads(&requests, &reply_delays).map_err(TestCaseError::fail)?;
        prop_assert!(spread(&counts) <= 1, "counts {:?}", counts);
        prop_assert_eq!(counts.iter().sum::<usize>(), 12);
    }
}

#[test]
fn a_refusal_only_for_placements_not_yet_reported_is_told_apart() {
    let pool_of_one = |largest_free| {
        let mut pool = Pool::new(Config::default());
        pool.add_host("b0", 0u32, Weights::default(), 0);
        answer_polls(&mut pool, 0, |_| HostInfo { largest_free, ..idle() });
        pool
    };
    let mut pool = pool_of_one(150 * MIB);
    let big = Program { memory: 100 * MIB, text: None };
    assert!(pool.place(&big, 1000, 0).is_ok());
    // The placement's memory counts until a report shows it: no room now...
    assert!(matches!(pool.place(&big, 1000, 0), Err(PlaceError::NoRoom { .. })));
    // ...but the host itself reported enough, so asking again later may work.
    assert!(pool.fits_once_reports_catch_up(&big, 1000));
    // A program larger than any report is refused for good.
    let huge = Program { memory: 200 * MIB, text: None };
    assert!(!pool.fits_once_reports_catch_up(&huge, 1000));
    // A dead host does not count.
    ask_without_answer(&mut pool, SECOND);
    assert!(!pool.fits_once_reports_catch_up(&big, 10 * SECOND));
}

// ------------------------------------------------- a burst over a large pool

/// `count` hosts named `h00`, `h01`, …, each polled once at `now` and answering `info(i)`.
fn large_pool(count: usize, now: u64, info: impl Fn(usize) -> HostInfo) -> Pool<usize> {
    let mut pool = Pool::new(Config::default());
    for i in 0..count {
        pool.add_host(&large_name(i), i, Weights::default(), now);
    }
    while let Some(host) = pool.next_poll(now) {
        let (name, i) = (host.name.to_string(), *host.handle);
        pool.record_info(&name, info(i), now).unwrap();
    }
    pool
}

fn large_name(i: usize) -> String {
    format!("h{i:02}")
}

/// The program of the burst: `hog`'s text, so a board that ran one holds it cached.
const HOG_TEXT: u64 = 0x4806;
const HOG: Program = Program { memory: MIB, text: Some(HOG_TEXT) };

#[test]
fn sixty_four_placements_in_a_row_on_thirty_two_idle_hosts_give_each_one_to_three() {
    for_seeds(
        "sixty_four_placements_in_a_row_on_thirty_two_idle_hosts_give_each_one_to_three",
        200,
        |seed| {
            let mut rng = seeded(seed);
            let mut pool = large_pool(32, 0, |_| idle());
            let mut counts = [0usize; 32];
            for i in 0..64u64 {
                let host = pool.place(&HOG, 1000 + i * 1000, rng.next_u64()).map_err(|e| e.to_string())?;
                counts[*host.handle] += 1;
            }
            // No report came between them: each placement counts in full, so it is 2 each.
            if counts.iter().all(|&n| n == 2) { Ok(()) } else { Err(format!("counts {counts:?}")) }
        },
    );
}

/// A board of the simulated large pool: the burst's processes on it, all busy
/// (it holds the program's text once it has run one).
#[derive(Clone, Default)]
struct LargeBoard {
    running: u32,
}

impl LargeBoard {
    fn info(&self) -> HostInfo {
        HostInfo {
            runnable_milli: self.running * UNIT,
            cpu_load_milli: if self.running > 0 { UNIT } else { 0 },
            free_bytes: idle().free_bytes - u64::from(self.running) * HOG.memory,
            largest_free: idle().largest_free - u64::from(self.running) * HOG.memory,
            processes: 2 + self.running,
            processes_created: 2 + u64::from(self.running),
            cached_texts: if self.running > 0 { vec![HOG_TEXT] } else { Vec::new() },
            ..idle()
        }
    }
}

/// 64 requests in a row (each made once the previous one's process exists,
/// as `ax --detach` does), on 32 boards polled every quarter second with
/// replies that take a while. Once a report shows a process, its load (and
/// the cached text) comes from the report and the placement no longer counts:
/// never counted twice, never missed, so each request goes to a board with the
/// fewest of the burst. Returns how many each board got.
fn large_burst(
    gaps: &[u64],
    creation_delays: &[u64],
    reply_delays: &[u64],
    seed: u64,
) -> Result<Vec<u32>, String> {
    let mut pool = large_pool(32, 0, |_| idle());
    let mut boards = vec![LargeBoard::default(); 32];
    let mut placed = [0u32; 32];
    let mut rng = seeded(seed);
    let mut replies: Vec<(u64, usize, HostInfo)> = Vec::new();
    let mut creations: Vec<(u64, usize)> = Vec::new();
    let (mut gaps, mut creation_delays, mut reply_delays) =
        (gaps.iter().cycle(), creation_delays.iter().cycle(), reply_delays.iter().cycle());
    let mut now = 1000;
    let mut next_request = Some(now);
    while placed.iter().sum::<u32>() < 64 || !creations.is_empty() {
        for (_, i) in creations.iter().filter(|(at, _)| *at == now) {
            boards[*i].running += 1;
        }
        creations.retain(|(at, _)| *at > now);
        for (_, i, info) in replies.iter().filter(|(at, ..)| *at == now) {
            pool.record_info(&large_name(*i), info.clone(), now).map_err(|e| e.to_string())?;
        }
        replies.retain(|(at, ..)| *at > now);
        while let Some(host) = pool.next_poll(now) {
            // The board answers at once; the reply takes a while to arrive.
            let i = *host.handle;
            replies.push((now + reply_delays.next().unwrap(), i, boards[i].info()));
        }
        if next_request == Some(now) {
            let host = pool.place(&HOG, now, rng.next_u64()).map_err(|e| format!("at {now} µs: {e}"))?;
            let i = *host.handle;
            if placed[i] > *placed.iter().min().unwrap() {
                return Err(format!("at {now} µs placed on h{i:02}, which had {} of {placed:?}", placed[i]));
            }
            placed[i] += 1;
            let created = now + creation_delays.next().unwrap();
            creations.push((created, i));
            next_request = (placed.iter().sum::<u32>() < 64).then(|| created + gaps.next().unwrap());
        }
        // On to the next event.
        let events = creations.iter().map(|(at, _)| *at).chain(replies.iter().map(|(at, ..)| *at));
        now = match events.chain(next_request).chain(pool.next_poll_at()).min() {
            Some(next) => next.max(now + 1000),
            None => break,
        };
    }
    Ok(boards.iter().map(|b| b.running).collect())
}

proptest! {
    #[test]
    fn sixty_four_placements_with_polls_between_give_each_of_thirty_two_one_to_three(
        gaps in proptest::collection::vec((0u64..100).prop_map(|ms| ms * 1000), 1..16),
        creation_delays in proptest::collection::vec((1u64..150).prop_map(|ms| ms * 1000), 1..16),
        reply_delays in proptest::collection::vec((1u64..100).prop_map(|ms| ms * 1000), 1..8),
        seed in any::<u64>(),
    ) {
        let counts = large_burst(&gaps, &creation_delays, &reply_delays, seed).map_err(TestCaseError::fail)?;
        prop_assert!(counts.iter().all(|&n| (1..=3).contains(&n)), "counts {:?}", counts);
    }
}

/// One host of a mixed pool: busy threads, free memory and the share of it in
/// one piece.
#[derive(Clone, Debug)]
struct Mixed {
    runnable: u32,
    free_mib: u64,
    hole_percent: u64,
}

impl Mixed {
    fn info(&self) -> HostInfo {
        HostInfo {
            runnable_milli: self.runnable * UNIT,
            cpu_load_milli: if self.runnable > 0 { UNIT } else { 0 },
            free_bytes: self.free_mib * MIB,
            largest_free: self.free_mib * MIB * self.hole_percent / 100,
            ..idle()
        }
    }
}

/// Amoeba's rule in floating point over what the run server should expect of
/// `host` with `placed` programs of `memory` bytes on it that no report shows:
/// `None` where the program does not fit.
fn expected_score(host: &Mixed, placed: u32, memory: u64, config: &Config) -> Option<f64> {
    let taken = u64::from(placed) * memory;
    let info = host.info();
    let largest = info.largest_free.saturating_sub(taken);
    if largest < memory {
        return None;
    }
    let load = f64::from(host.runnable + placed);
    let free = info.free_bytes.saturating_sub(taken).min(config.rule.memory_cap) as f64;
    Some(free / (load + 1.0))
}

proptest! {
    #[test]
    fn a_burst_over_mixed_hosts_follows_the_scores_with_its_own_placements_counted(
        hosts in proptest::collection::vec(
            (0u32..4, 2u64..96, 10u64..=100)
                .prop_map(|(runnable, free_mib, hole_percent)| Mixed { runnable, free_mib, hole_percent }),
            32,
        ),
        memory_mib in 1u64..8,
        seed in any::<u64>(),
    ) {
        let config = Config::default();
        let memory = memory_mib * MIB;
        let program = Program { memory, text: None };
        let mut pool = large_pool(32, 0, |i| hosts[i].info());
        let mut placed = [0u32; 32];
        let mut rng = seeded(seed);
        for n in 0..64u64 {
            let expected: Vec<Option<f64>> =
                (0..32).map(|i| expected_score(&hosts[i], placed[i], memory, &config)).collect();
            let best = expected.iter().flatten().copied().reduce(f64::max);
            match (pool.place(&program, 1000 + n, rng.next_u64()), best) {
                (Ok(host), Some(best)) => {
                    let i = *host.handle;
                    let score = expected[i];
                    prop_assert!(
                        score.is_some_and(|s| s >= best * 0.95 * (1.0 - 1e-9)),
                        "placement {} on h{:02} scoring {:?}, the best {}", n, i, score, best
                    );
                    placed[i] += 1;
                }
                (Err(PlaceError::NoRoom { .. }), None) => break,
                (outcome, best) => {
                    prop_assert!(false, "placement {}: {:?} where the best is {:?}", n, outcome.map(|h| *h.handle), best);
                }
            }
        }
        // Busier hosts never got more of the burst than idler ones with as much room.
        for a in 0..32 {
            for b in 0..32 {
                let (ha, hb) = (&hosts[a], &hosts[b]);
                if ha.runnable > hb.runnable && ha.free_mib <= hb.free_mib && ha.hole_percent <= hb.hole_percent {
                    prop_assert!(placed[a] <= placed[b] + 1, "h{:02} {:?} got {}, h{:02} {:?} got {}",
                        a, ha, placed[a], b, hb, placed[b]);
                }
            }
        }
    }
}

proptest! {
    /// Placements count until a report shows their processes, then the
    /// report alone counts: after reports showing some of them, every host
    /// scores exactly as a host whose report shows what was created and
    /// whose pending placements are only the rest.
    #[test]
    fn pending_placements_disappear_once_reports_show_them_and_never_count_twice(
        shown_share in proptest::collection::vec(0u32..=100, 8),
        placements in 1usize..40,
        seed in any::<u64>(),
    ) {
        let config = Config::default();
        let mut pool = large_pool(8, 0, |_| idle());
        let mut placed = [0u32; 8];
        let mut rng = seeded(seed);
        for n in 0..placements {
            placed[*pool.place(&SMALL, 1000 + n as u64, rng.next_u64()).unwrap().handle] += 1;
        }
        let now = 100_000;
        for i in 0..8 {
            prop_assert_eq!(pool.hosts(now).nth(i).unwrap().pending_placements, placed[i] as usize);
            // Its report shows `shown` of the processes, running.
            let shown = placed[i] * shown_share[i] / 100;
            let report = HostInfo {
                runnable_milli: shown * UNIT,
                processes: 2 + shown,
                processes_created: 2 + u64::from(shown),
                free_bytes: idle().free_bytes - u64::from(shown) * SMALL.memory,
                largest_free: idle().largest_free - u64::from(shown) * SMALL.memory,
                ..idle()
            };
            pool.record_info(&large_name(i), report.clone(), now).unwrap();
            let pending = placed[i] - shown;
            prop_assert_eq!(pool.hosts(now).nth(i).unwrap().pending_placements, pending as usize);
            let estimate = Estimate {
                load_milli: report.load_milli() + u64::from(pending * UNIT),
                free_bytes: report.free_bytes - u64::from(pending) * SMALL.memory,
                largest_free: report.largest_free - u64::from(pending) * SMALL.memory,
                text_cached: false,
            };
            let score = pool.scores(&SMALL, now).find(|(name, _)| *name == large_name(i)).unwrap().1;
            prop_assert_eq!(score, suitability(Weights::default(), &estimate, &config.rule));
        }
        // Reports showing every process leave nothing pending; a repeated report retires nothing more.
        for (i, &all) in placed.iter().enumerate() {
            let report = HostInfo {
                runnable_milli: all * UNIT,
                processes: 2 + all,
                processes_created: 2 + u64::from(all),
                ..idle()
            };
            pool.record_info(&large_name(i), report.clone(), now + 1).unwrap();
            pool.record_info(&large_name(i), report, now + 2).unwrap();
        }
        prop_assert!(pool.hosts(now + 2).all(|h| h.pending_placements == 0));
    }
}
