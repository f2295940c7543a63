//! Seeded simulation runs of three replicas under faults, with every client history
//! checked for linearizability, surviving replicas compared, and a whole-pool
//! restart from the simulated disk checked to lose nothing acknowledged, while
//! reads of anchors and files fail transiently at recovery.
//!
//! `DIR_SEEDS=N` runs N seeds (default 5000), `DIR_SEED=S` replays one,
//! `DIR_TRACE=1` prints what happens (`DIR_TRACE=2` also every group packet).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::sim::{
    CLIENTS_START, Faults, MS, RECOVERY_ATTEMPTS, ReadFaults, Rng, Sim, initial_state, recover,
};
use directory_server::ReplicaConfig;
use directory_server::checker::lin::{Call, check};
use directory_server::checker::spec::Dirs;
use directory_server::persist::PersistConfig;
use directory_server::store::read_anchor;
use directory_server::workload::{In, NAMES, Out};
use sequencer::Config;

/// Time spent in the linearizability checker, and calls checked (statistics).
static CHECK_NANOS: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Reads that failed at recovery (and were tried again).
static READ_FAULTS: AtomicU64 = AtomicU64::new(0);

fn group_config() -> Config {
    Config {
        resilience: 1,
        max_members: 8,
        history_size: 64,
        max_message_size: 8192,
        bb_threshold: 1024,
        retransmit_us: 20 * MS,
        heartbeat_us: 60 * MS,
        sequencer_timeout_us: 400 * MS,
        member_timeout_us: 400 * MS,
        join_timeout_us: 2000 * MS,
        max_send_queue: 8,
        min_reset_members: None,
        auto_reset: true,
        ..Config::default()
    }
}

fn replica_config(rng: &mut Rng) -> ReplicaConfig {
    ReplicaConfig {
        replicas: 3,
        index: 0,
        lease_us: 300 * MS,
        lease_margin_us: 30 * MS,
        renew_us: 80 * MS,
        confirm_repeat_us: 30 * MS,
        state_retry_us: 600 * MS,
        write_timeout_us: 2500 * MS,
        max_message_len: 8192,
        durable_before_apply: true,
        persist: {
            let mut p =
                PersistConfig { anchor_len: 0, max_log_files: rng.pick(&[1, 3, 8]), retry_us: 20 * MS };
            p.anchor_len = p.min_anchor_len() + rng.pick(&[0, 100, 500]);
            p
        },
    }
}

fn faults(rng: &mut Rng) -> Faults {
    Faults {
        loss: rng.pick(&[0.0, 0.01, 0.05, 0.1]),
        dup: rng.pick(&[0.0, 0.05]),
        delay: rng.range(100, 400),
        jitter: rng.pick(&[0, 300, 2000]),
    }
}

/// All replicas up, serving, at the same position, with nothing in flight.
fn quiet(sim: &Sim) -> bool {
    let first = sim.nodes[0].replica.as_ref().map(|r| r.state().applied);
    sim.nodes.iter().all(|n| {
        n.up && n.in_flight.is_empty()
            && n.replica.as_ref().is_some_and(|r| {
                r.is_serving()
                    && r.is_idle()
                    && Some(r.state().applied) == first
                    && r.visible_state().applied == r.state().applied
                    && r.durable_position() == Some(r.state().applied)
            })
    })
}

/// One run; returns a tag for the statistics.
fn run(seed: u64) -> Result<String, String> {
    let mut rng = Rng(seed);
    let rcfg = replica_config(&mut rng);
    let f = faults(&mut rng);
    let end = rng.range(500, 1200) * MS;
    let anchor_len = rcfg.persist.anchor_len;
    let mut sim = Sim::new(seed, group_config(), rcfg, f, 3, end);
    // Apart from the run's own generator, so every other decision of a seed stays as it was.
    let mut read_fault_rng = Rng(seed ^ 0x5ead_fa17_0000_0000);
    sim.disk.anchor_len = anchor_len;
    sim.disk_latency = rng.pick(&[(100, 3000), (2000, 15000)]);
    let (state, _) = initial_state();
    sim.create(0, state);
    for i in 1..3 {
        sim.restart_later(i, rng.range(0, 50) * MS);
    }
    // Faults while the clients work: crashes (restarted later) and partitions of
    // any replica or of the sequencer, and perhaps a whole-pool crash.
    let mut plan: Vec<(u64, Fault)> = (0..rng.pick(&[0, 1, 1, 2]))
        .map(|_| (rng.range(CLIENTS_START / MS + 50, end / MS) * MS, Fault::Replica))
        .collect();
    if rng.chance(0.3) {
        plan.push((rng.range(CLIENTS_START / MS + 50, end / MS) * MS, Fault::Pool));
    }
    plan.sort_by_key(|p| p.0);
    let mut tag = String::new();
    for (t, fault) in plan {
        sim.run_until(t);
        match fault {
            Fault::Pool => {
                restart_pool(&mut sim, &mut rng, &mut read_fault_rng)?;
                tag.push_str("pool-crash ");
            }
            Fault::Replica => replica_fault(&mut sim, &mut rng),
        }
    }
    let deadline = sim.now + 60_000 * MS;
    if !sim.run_until_cond(deadline, |s| s.clients_done()) {
        return Err("clients did not finish".into());
    }
    sim.partition = None;
    sim.faults = Faults { loss: 0.0, dup: 0.0, delay: 200, jitter: 100 };
    let settle_by = sim.now + 20_000 * MS;
    if !sim.run_until_cond(settle_by, quiet) {
        return Err(format!("replicas did not settle: {}", describe(&sim)));
    }
    let before = sim.nodes[0].replica.as_ref().expect("up").state().clone();
    for n in &sim.nodes {
        let s = n.replica.as_ref().expect("up").state();
        if s.encode() != before.encode() {
            return Err("surviving replicas differ".into());
        }
    }
    // Whole-pool restart from the disk, once everything is quiet: nothing lost.
    let recovered = restart_pool(&mut sim, &mut rng, &mut read_fault_rng)?;
    if recovered.dirs != before.dirs
        || recovered.applied != before.applied
        || recovered.epoch != before.epoch + 1
    {
        return Err(format!("recovered state differs (at {} vs {})", recovered.applied, before.applied));
    }
    let up_by = sim.now + 20_000 * MS;
    if !sim.run_until_cond(up_by, quiet) {
        return Err(format!("pool did not come back: {}", describe(&sim)));
    }
    check_no_leaked_files(&mut sim)?;
    final_reads(&mut sim, &mut rng)?;
    let history = sim.checked_history();
    let t0 = Instant::now();
    check(&Dirs::default(), &history).map_err(|e| format!("{e}\n{}", show(&history)))?;
    CHECK_NANOS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
    CALLS.fetch_add(history.len() as u64, Ordering::Relaxed);
    let acked = history.iter().filter(|c| c.returned.is_some() && is_update(&c.input)).count();
    tag.push_str(&format!("crashes={} partitions={}", sim.crashes_done, sim.partitions_done));
    if acked == 0 {
        tag.push_str(" no-update-acknowledged");
    }
    Ok(tag)
}

enum Fault {
    Replica,
    Pool,
}

/// Crash a replica (restarted later) or cut it off for a while, if the group has
/// settled and no replica is cut off: the group survives one failure at a time
/// (and cannot lose a member while a join is unfinished).
fn replica_fault(sim: &mut Sim, rng: &mut Rng) {
    let cut_off = sim.partition.is_some_and(|(_, until)| sim.now < until);
    if cut_off || !sim.all_settled_members() {
        return;
    }
    let victim = if rng.chance(0.5) { sim.sequencer().unwrap_or(0) } else { rng.below(3) as usize };
    if rng.chance(0.3) {
        // Cut off from the other replicas (clients still reach it).
        sim.partition = Some((victim, sim.now + rng.range(100, 1500) * MS));
        sim.partitions_done += 1;
    } else {
        sim.crash(victim);
        sim.crashes_done += 1;
        sim.restart_later(victim, rng.range(100, 1500) * MS);
    }
}

/// Crash every replica, recover the best state from the disk (some of whose reads
/// fail for a while), start the pool on it.
fn restart_pool(sim: &mut Sim, rng: &mut Rng, faults: &mut Rng) -> Result<directory_server::State, String> {
    for i in 0..3 {
        sim.crash(i);
    }
    sim.silence_network();
    sim.partition = None;
    sim.disk.read_faults = Some(ReadFaults {
        chance: faults.pick(&[0.0, 0.2, 0.5]),
        budget: faults.range(0, u64::from(RECOVERY_ATTEMPTS) - 1) as u32,
        rng: Rng(faults.next_u64()),
        injected: 0,
    });
    let recovered = recover(&mut sim.disk);
    let injected = sim.disk.read_faults.take().map_or(0, |f| f.injected);
    READ_FAULTS.fetch_add(u64::from(injected), Ordering::Relaxed);
    let recovered = recovered?;
    sim.create(0, recovered.clone());
    for i in 1..3 {
        sim.restart_later(i, rng.range(0, 50) * MS);
    }
    Ok(recovered)
}

fn is_update(i: &In) -> bool {
    matches!(i, In::Append(..) | In::Delete(..) | In::Replace(..) | In::Chmod(..) | In::Install(_))
}

/// Once every replica has checkpointed, the only files left are those their
/// anchors name, and those a crash left before any anchor named them.
fn check_no_leaked_files(sim: &mut Sim) -> Result<(), String> {
    let mut named = std::collections::BTreeSet::new();
    for i in 0..3 {
        let a = read_anchor(&mut sim.disk, i).map_err(|e| format!("{e:?}"))?.ok_or("no anchor")?;
        named.insert(a.checkpoint.object);
        named.extend(a.logs.iter().map(|c| c.object));
    }
    let files: std::collections::BTreeSet<u32> =
        sim.disk.files.keys().copied().filter(|f| !sim.orphans.contains(f)).collect();
    if files != named {
        return Err(format!("files {files:?} but anchors name {named:?}"));
    }
    Ok(())
}

/// Read everything back, through random replicas, as the history's last calls.
fn final_reads(sim: &mut Sim, rng: &mut Rng) -> Result<(), String> {
    let all: Vec<(usize, usize)> = (0..2).flat_map(|d| (0..NAMES.len()).map(move |n| (d, n))).collect();
    let reads = [In::List(0), In::List(1), In::SetLookup(all)];
    for input in reads {
        for _attempt in 0..20 {
            let before = sim.history.len();
            let to = rng.below(3) as usize;
            sim.call(0, to, input.clone());
            let deadline = sim.now + 5_000 * MS;
            sim.run_until_cond(deadline, |s| s.clients[0].busy.is_none());
            if sim.history[before].returned.is_some() {
                break;
            }
        }
    }
    Ok(())
}

fn describe(sim: &Sim) -> String {
    sim.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match &n.replica {
            None => format!("n{i} down"),
            Some(r) => format!(
                "n{i} serving={} applied={} visible={} durable={:?} idle={}",
                r.is_serving(),
                r.state().applied,
                r.visible_state().applied,
                r.durable_position(),
                r.is_idle()
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn show(h: &[Call<In, Out>]) -> String {
    h.iter()
        .map(|c| {
            format!(
                "  c{} [{} .. {:?}] {:?} -> {:?}",
                c.client,
                c.invoked,
                c.returned.as_ref().map(|r| r.0),
                c.input,
                c.returned.as_ref().map(|r| &r.1)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("DIR_SEED") {
        return vec![s.parse().expect("DIR_SEED must be a number")];
    }
    let n = std::env::var("DIR_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    (0..n).collect()
}

#[test]
fn replicated_directory_is_linearizable_under_faults() {
    let seeds = seeds();
    let t0 = Instant::now();
    let next = AtomicU64::new(0);
    let failed = std::sync::Mutex::new(None::<(u64, String)>);
    let stats = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if k >= seeds.len() || failed.lock().unwrap().is_some() {
                        return;
                    }
                    let seed = seeds[k];
                    let r = std::panic::catch_unwind(|| run(seed)).unwrap_or_else(|_| Err("panicked".into()));
                    match r {
                        Ok(tag) => *stats.lock().unwrap().entry(tag).or_default() += 1,
                        Err(e) => {
                            let mut f = failed.lock().unwrap();
                            if f.as_ref().is_none_or(|(s, _)| seed < *s) {
                                *f = Some((seed, e));
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some((seed, e)) = failed.into_inner().unwrap() {
        panic!(
            "seed {seed} failed: {e}\n  replay: DIR_SEED={seed} DIR_TRACE=1 cargo test -p directory-server --release --test sim -- --nocapture"
        );
    }
    let read_faults = READ_FAULTS.load(Ordering::Relaxed);
    println!(
        "{} seeds in {:.1?} ({} calls checked, {:.1?} in the checker; {read_faults} reads failed at \
         recovery and were tried again): {:?}",
        seeds.len(),
        t0.elapsed(),
        CALLS.load(Ordering::Relaxed),
        std::time::Duration::from_nanos(CHECK_NANOS.load(Ordering::Relaxed)),
        stats.into_inner().unwrap()
    );
    assert!(seeds.len() < 100 || read_faults > 0, "no read failed at recovery: the faults were not injected");
}

// ---------------------------------------------------------------------- the checker itself

fn done(client: usize, invoked: u64, returned: u64, input: In, out: Out) -> Call<In, Out> {
    Call { client, invoked, returned: Some((returned, out)), input }
}

fn pending(client: usize, invoked: u64, input: In) -> Call<In, Out> {
    Call { client, invoked, returned: None, input }
}

#[test]
fn checker_refuses_a_stale_read() {
    let h =
        vec![done(0, 0, 10, In::Append(0, 0, 7), Out::Ok), done(1, 20, 30, In::Lookup(0, 0), Out::NotFound)];
    assert!(check(&Dirs::default(), &h).is_err());
}

#[test]
fn checker_refuses_a_value_that_disappears() {
    // An update whose outcome is unknown is seen, then not seen, with nothing between.
    let h = vec![
        pending(0, 0, In::Append(0, 0, 7)),
        done(1, 5, 10, In::Lookup(0, 0), Out::Found(7, 0xff)),
        done(2, 20, 25, In::Lookup(0, 0), Out::NotFound),
    ];
    assert!(check(&Dirs::default(), &h).is_err());
}

#[test]
fn checker_refuses_a_lost_acknowledged_update() {
    let h = vec![
        done(0, 0, 10, In::Append(1, 2, 3), Out::Ok),
        done(0, 20, 30, In::Delete(1, 2), Out::Ok),
        done(1, 40, 50, In::SetLookup(vec![(1, 2)]), Out::Set(vec![Some((3, 0xff))])),
    ];
    assert!(check(&Dirs::default(), &h).is_err());
    let h =
        vec![done(0, 0, 10, In::Append(0, 1, 3), Out::Ok), done(1, 50, 60, In::List(0), Out::List(vec![]))];
    assert!(check(&Dirs::default(), &h).is_err());
}

#[test]
fn checker_refuses_an_impossible_reply() {
    let h = vec![done(0, 0, 10, In::Delete(0, 0), Out::Ok)];
    assert!(check(&Dirs::default(), &h).is_err());
}

#[test]
fn checker_accepts_concurrent_and_unknown_outcomes() {
    let h = vec![
        done(0, 0, 100, In::Append(0, 0, 7), Out::Ok),
        done(1, 10, 20, In::Lookup(0, 0), Out::NotFound),
        done(2, 30, 40, In::Lookup(0, 0), Out::Found(7, 0xff)),
        done(1, 50, 60, In::Lookup(0, 0), Out::Found(7, 0xff)),
        pending(2, 70, In::Delete(0, 0)),
        done(1, 80, 90, In::Lookup(0, 0), Out::Found(7, 0xff)),
        done(1, 95, 99, In::Lookup(0, 0), Out::NotFound),
    ];
    assert_eq!(check(&Dirs::default(), &h), Ok(()));
    // A pending update that never took effect.
    let h = vec![pending(0, 0, In::Append(0, 0, 1)), done(1, 10, 20, In::Lookup(0, 0), Out::NotFound)];
    assert_eq!(check(&Dirs::default(), &h), Ok(()));
}
