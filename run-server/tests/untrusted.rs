//! The run server trusts what it is told only within bounds: a host whose
//! report no board could give is never alive, a row that never answers
//! through its capability is never chosen, and handing out a processor needs
//! a right of its own (`RUN_PLACE`), which a read-only capability lacks.

use amoeba_abi::{Capability, Check, GetPort, Port, Rng, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::run::{HostReport, Placement, PlacementRequest, RUN_PLACE, RUN_READ};
use amoeba_ipc::interfaces::run_server as interface;
use proptest::prelude::*;
use run_server::{Config, HostInfo, Pool, Program, ReportRefused, UNIT, Weights};

const MIB: u64 = 1 << 20;
const SMALL: Program = Program { memory: MIB, text: None };

fn busy(threads: u32) -> HostInfo {
    HostInfo {
        runnable_milli: threads * UNIT,
        cpu_load_milli: if threads > 0 { UNIT } else { 0 },
        free_bytes: 200 * MIB,
        largest_free: 150 * MIB,
        processes: 2 + threads,
        processes_created: 2 + u64::from(threads),
        uptime_us: 30_000_000,
        cached_texts: Vec::new(),
        kernel_heap_free: 40 * MIB,
    }
}

/// What a fake host says to win every placement: nothing running, and more
/// memory free than a board has.
fn tempting() -> HostInfo {
    HostInfo { runnable_milli: 0, cpu_load_milli: 0, free_bytes: 1 << 40, largest_free: 1 << 40, ..busy(0) }
}

/// Plays `seconds` of polling at 50 ms steps: each due host answers with
/// `answer(name, now)` (`None`: no answer), and `check(pool, now)` runs after.
fn run_polls(
    pool: &mut Pool<u32>,
    seconds: u64,
    answer: impl Fn(&str, u64) -> Option<HostInfo>,
    mut check: impl FnMut(&Pool<u32>, u64),
) {
    for now in (0..=seconds * 1_000_000).step_by(50_000) {
        while let Some(host) = pool.next_poll(now) {
            let name = host.name.to_string();
            match answer(&name, now) {
                Some(info) => {
                    let _ = pool.record_info(&name, info, now);
                }
                None => {
                    pool.record_no_answer(&name);
                }
            }
        }
        check(pool, now);
    }
}

fn pool_of(names: &[&str]) -> Pool<u32> {
    let mut pool = Pool::new(Config::default());
    for (handle, name) in names.iter().enumerate() {
        pool.add_host(name, handle as u32, Weights::default(), 0);
    }
    pool
}

#[test]
fn a_fake_host_reporting_no_load_and_impossible_memory_is_never_chosen() {
    let mut pool = pool_of(&["board0", "board1", "fake"]);
    // The real boards are busy; the fake one would win every placement if believed.
    run_polls(
        &mut pool,
        5,
        |name, _| Some(if name == "fake" { tempting() } else { busy(3) }),
        |pool, now| {
            assert!(!pool.is_alive("fake", now), "at {now} µs");
            for random in 0..16 {
                assert_ne!(pool.choose(&SMALL, now, random).map(|h| h.name), Ok("fake"), "at {now} µs");
            }
        },
    );
    let fake = pool.hosts(5_000_000).find(|h| h.host.name == "fake").unwrap();
    assert!(fake.info.is_none(), "nothing it said is kept");
    assert!(fake.impossible_reports >= 19, "5 s of polls, each refused: {}", fake.impossible_reports);
    assert_eq!(pool.record_info("fake", tempting(), 5_000_000), Err(ReportRefused::Impossible));
}

#[test]
fn a_host_whose_reports_turn_impossible_counts_as_silent() {
    let limit = Config::default().silence_limit_us;
    let mut pool = pool_of(&["board0", "board1"]);
    // board1 answers believably for a second, then impossibly: silent from
    // the first poll it answered so.
    let first_refused = std::cell::Cell::new(None);
    run_polls(
        &mut pool,
        5,
        |name, now| {
            if name == "board1" && now >= 1_000_000 {
                if first_refused.get().is_none() {
                    first_refused.set(Some(now));
                }
                return Some(tempting());
            }
            Some(busy(1))
        },
        |pool, now| {
            let alive = first_refused.get().is_none_or(|t| now <= t + limit);
            assert_eq!(pool.is_alive("board1", now), alive, "at {now} µs");
            if !alive {
                assert!((0..16).all(|r| pool.choose(&SMALL, now, r).unwrap().name == "board0"));
            }
        },
    );
    assert!(!pool.is_alive("board1", 5_000_000));
}

/// A report with exactly one field beyond what a board can have.
fn impossible() -> impl Strategy<Value = HostInfo> {
    prop_oneof![
        ((1u64 << 30) + 1..u64::MAX).prop_map(|free| HostInfo {
            free_bytes: free,
            largest_free: 0,
            ..busy(0)
        }),
        (1u32 << 30..u32::MAX).prop_map(|runnable| HostInfo { runnable_milli: runnable, ..busy(0) }),
        (1001u32..u32::MAX).prop_map(|cpu| HostInfo { cpu_load_milli: cpu, ..busy(0) }),
        (3u32..u32::MAX).prop_map(|processes| HostInfo { processes, ..busy(0) }),
        Just(HostInfo { uptime_us: 0, ..busy(0) }),
        (1u64 << 60..u64::MAX).prop_map(|uptime| HostInfo { uptime_us: uptime, ..busy(0) }),
        (1u64..1 << 20).prop_map(|extra| HostInfo { largest_free: busy(0).free_bytes + extra, ..busy(0) }),
    ]
}

proptest! {
    #[test]
    fn no_impossible_report_makes_a_host_a_target(report in impossible()) {
        let mut pool = pool_of(&["board0", "fake"]);
        let mut chosen_fake = false;
        run_polls(
            &mut pool,
            2,
            |name, _| Some(if name == "fake" { report.clone() } else { busy(4) }),
            |pool, now| chosen_fake |= (0..4).any(|r| pool.choose(&SMALL, now, r).is_ok_and(|h| h.name == "fake")),
        );
        prop_assert!(!chosen_fake, "{:?} was believed", report);
    }
}

#[test]
fn a_row_that_never_answers_through_its_capability_is_never_chosen() {
    // "forged" and "nobody" stand for rows whose capability no server accepts
    // (a wrong check, a port nobody serves): every poll of them fails.
    let mut pool = pool_of(&["board0", "forged", "nobody"]);
    run_polls(
        &mut pool,
        5,
        |name, _| (name == "board0").then(|| busy(6)),
        |pool, now| {
            for random in 0..16 {
                if let Ok(host) = pool.choose(&SMALL, now, random) {
                    assert_eq!(host.name, "board0", "at {now} µs");
                }
            }
        },
    );
    assert!(pool.hosts(5_000_000).filter(|h| h.host.name != "board0").all(|h| !h.alive && h.info.is_none()));
}

/// A run server that places everything on one processor, to see which
/// capabilities its generated dispatcher lets through.
struct Stub {
    port: Port,
    random: Check,
}

impl Objects for Stub {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == 0).then_some(self.random)
    }
}

impl interface::Server for Stub {
    fn find_host(&mut self, _: &Call<'_>, _: PlacementRequest) -> Result<Placement, Status> {
        Ok(Placement { host: "board0".into(), capability: Capability::NULL })
    }
    fn hosts(&mut self, _: &Call<'_>) -> Result<Vec<HostReport>, Status> {
        Ok(Vec::new())
    }
}

#[test]
fn find_host_needs_the_place_right_and_a_read_only_capability_lists_only() {
    let mut rng = Rng::from_seed([7; 32]);
    let mut stub = Stub { port: GetPort::random(&mut rng).put_port(), random: rng.check() };
    let owner = Capability::owner(stub.port, 0, stub.random);
    let read_only = owner.restrict(RUN_READ).unwrap();
    let place_only = owner.restrict(RUN_PLACE).unwrap();
    let request = PlacementRequest { program: "hello".into(), memory: MIB, text: None };
    let find = |stub: &mut Stub, capability: &Capability| {
        let (header, buf) = interface::find_host::request(capability, &request).unwrap();
        let (reply, _) = interface::dispatch(stub, &header, &buf);
        reply.status()
    };
    assert_eq!(find(&mut stub, &owner), Status::Ok);
    assert_eq!(find(&mut stub, &place_only), Status::Ok);
    assert_eq!(find(&mut stub, &read_only), Status::Denied);
    let list = |stub: &mut Stub, capability: &Capability| {
        let (header, buf) = interface::hosts::request(capability).unwrap();
        interface::dispatch(stub, &header, &buf).0.status()
    };
    assert_eq!(list(&mut stub, &read_only), Status::Ok);
    assert_eq!(list(&mut stub, &place_only), Status::Denied);
}
