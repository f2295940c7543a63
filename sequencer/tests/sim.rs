//! Seeded simulation runs of whole groups under faults.
//!
//! `SEQ_SEEDS=N` runs N seeds per test instead of the default, `SEQ_SEED=S`
//! replays one seed, `SEQ_TRACE=1` prints every event and action.

mod common;

use common::{Action, Faults, Rng, Sim, for_seeds, payload};
use sequencer::Config;

const MS: u64 = 1000;

fn sim_config(rng: &mut Rng, n: usize) -> Config {
    Config {
        resilience: rng.below(n.min(3) as u64) as u16,
        max_members: 16,
        history_size: [6u32, 16, 64][rng.below(3) as usize],
        max_message_size: 4096,
        bb_threshold: 48,
        retransmit_us: 20 * MS,
        heartbeat_us: 60 * MS,
        sequencer_timeout_us: 400 * MS,
        member_timeout_us: 400 * MS,
        join_timeout_us: 3000 * MS,
        max_send_queue: 4,
        min_reset_members: None,
        auto_reset: true,
        max_batch_bytes: 1400,
    }
}

fn faults(rng: &mut Rng) -> Faults {
    Faults {
        loss: [0.0, 0.02, 0.1, 0.2][rng.below(4) as usize],
        dup: [0.0, 0.05][rng.below(2) as usize],
        delay_min: rng.range(50, 500),
        jitter: [0, 300, 3000][rng.below(3) as usize],
    }
}

struct Scenario {
    crashes: bool,
    partitions: bool,
    leaves: bool,
    over_budget: bool,
}

/// One randomized run; returns a tag for statistics.
fn run(seed: u64, sc: &Scenario) -> Result<String, String> {
    let mut rng = Rng(seed);
    let n = rng.range(3, 6) as usize;
    let cfg = sim_config(&mut rng, n);
    let r = cfg.resilience as usize;
    let mut sim = Sim::new(seed, n, cfg);
    sim.faults = faults(&mut rng);
    sim.create(0);
    for i in 1..n {
        let t = rng.range(0, 60) * MS;
        sim.schedule(t, Action::Join(i));
    }
    // Messages.
    let bb = rng.chance(0.5);
    for i in 0..n {
        let k = rng.range(2, 6) as u32;
        for m in 0..k {
            let t = rng.range(0, 900) * MS;
            let len = if bb && rng.chance(0.3) { rng.range(49, 300) } else { rng.range(8, 40) } as usize;
            sim.schedule(t, Action::Send(i, payload(i, m, len)));
        }
    }
    // Faults.
    let max_crash = (n - 1) / 2;
    let budget = if sc.over_budget { max_crash } else { r.min(max_crash) };
    let mut crashes = 0;
    let mut leaves = 0;
    if sc.crashes && budget > 0 {
        crashes = rng.range(1, budget as u64) as usize;
        for _ in 0..crashes {
            let t = rng.range(100, 1200) * MS;
            if rng.chance(0.5) {
                sim.schedule(t, Action::CrashSequencer);
            } else {
                sim.schedule(t, Action::Crash(rng.range(1, n as u64 - 1) as usize));
            }
        }
    }
    if sc.leaves && crashes < max_crash {
        leaves = 1;
        let t = rng.range(100, 1200) * MS;
        if rng.chance(0.5) {
            sim.schedule(t, Action::LeaveSequencer);
        } else {
            sim.schedule(t, Action::Leave(rng.range(0, n as u64 - 1) as usize));
        }
    }
    if sc.partitions {
        let k = rng.range(1, 2);
        for _ in 0..k {
            let size = rng.range(1, (n / 2) as u64) as usize;
            let mut side: Vec<usize> = (0..n).collect();
            for j in (1..n).rev() {
                side.swap(j, rng.below(j as u64 + 1) as usize);
            }
            side.truncate(size);
            let start = rng.range(100, 1200) * MS;
            let len = [100, 300, 700][rng.below(3) as usize] * MS;
            sim.schedule(start, Action::Partition(side));
            sim.schedule(start + len, Action::Heal);
        }
    }
    let fault_end = 2000 * MS;
    sim.schedule(fault_end, Action::Heal);
    sim.schedule(fault_end, Action::SetFaults(Faults { loss: 0.01, dup: 0.0, delay_min: 200, jitter: 200 }));
    sim.run_until(fault_end);
    // Liveness: after faults stop the group settles within bounded time.
    // Safety is checked once it has: only then does every member cut off
    // by a partition know it is out, so that survivors can be told apart.
    let deadline = fault_end + 10_000 * MS;
    let ok = sim.run_until_cond(deadline, |s| s.settled());
    sim.classify_leavers();
    let strict = sim.failures() <= r;
    sim.check(strict, true)?;
    // Liveness is only owed while a majority of the group survives (resets
    // need one, by design): crashes, expulsions and unseen leaves count.
    let joined = sim.nodes.iter().filter(|n| n.joined && (!n.left || n.left_lost)).count();
    let majority_alive = sim.failures() * 2 < joined;
    if !ok && majority_alive {
        if std::env::var("SEQ_TRACE").is_ok() {
            for (i, n) in sim.nodes.iter().enumerate() {
                println!("node {i}: {:#?}", n.m);
            }
        }
        return Err(format!(
            "no progress: not settled {} ms after faults stopped (n={n} r={r} failures={} crashes={crashes} leaves={leaves})",
            (deadline - fault_end) / MS,
            sim.failures()
        ));
    }
    if !ok {
        return Ok("no-majority".into());
    }
    sim.check_complete(strict)?;
    let _ = leaves;
    Ok(format!(
        "{}{}",
        if sim.failures() > 0 { "failures" } else { "clean" },
        if strict { "" } else { "+over-budget" }
    ))
}

#[test]
fn lossy_network_no_crashes() {
    let sc = Scenario { crashes: false, partitions: false, leaves: false, over_budget: false };
    for_seeds("lossy_network_no_crashes", 1500, 1, |s| run(s, &sc));
}

#[test]
fn crashes_within_resilience() {
    let sc = Scenario { crashes: true, partitions: false, leaves: false, over_budget: false };
    for_seeds("crashes_within_resilience", 1500, 2, |s| run(s, &sc));
}

#[test]
fn crashes_leaves_and_partitions() {
    let sc = Scenario { crashes: true, partitions: true, leaves: true, over_budget: false };
    for_seeds("crashes_leaves_and_partitions", 1500, 3, |s| run(s, &sc));
}

#[test]
fn over_budget_still_safe_for_survivors() {
    let sc = Scenario { crashes: true, partitions: true, leaves: false, over_budget: true };
    for_seeds("over_budget_still_safe_for_survivors", 1000, 4, |s| run(s, &sc));
}
