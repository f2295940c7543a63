//! A reader always sees a whole file. Eight host clients, each a workstation of
//! its own (its own host port and RPC client), `put`, `get` and `rm` three paths
//! for a minute, the way people type the commands, while the switch loses 10 %
//! of the frames, duplicates 3 % and reorders 10 %, and the directory replica
//! that created the group (its sequencer) is killed half way. The history, as
//! recorded, is checked for linearizability against files by path
//! (`directory_server::checker::files`): every `get` returns the whole contents
//! of some `put`, or "no such path" only where an `rm` explains it. A call that
//! failed because a server could not be reached stays in the history as a call
//! whose outcome is unknown; nothing else is set aside.

use amoeba_abi::Capability;
use boot::exec::Control;
use boot::system::directory::{DirectoryService, replica_boards};
use boot::system::{self};
use boot::workstation::{self, Workstation};
use directory_server::checker::files::{FileAnswer, FileCall, check_paths};
use directory_server::checker::lin::Call;
use pool_tests::{TestPool, boot_with, config};
use sim_support::SplitMix64;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Host clients.
const CLIENTS: usize = 8;
/// The paths they fight over.
const PATHS: [&str; 3] = ["/lin/a", "/lin/b", "/lin/c"];
/// How long they work.
const RUN: Duration = Duration::from_secs(60);
/// The switch's faults meanwhile.
const FAULTS: &str = "loss=10 dup=3 reorder=10";
/// Boards (the directory's replicas on 0–2, the Bullet server on 0).
const BOARDS: u16 = 4;
/// Size of board 0's disk.
const DISK_MIB: u64 = 64;

/// One recorded call: its path (index into [`PATHS`]) and the call.
type Recorded = (usize, Call<FileCall, FileAnswer>);

/// The contents a `put` of value `v` writes: the value, spread over a size that
/// depends on it (from a tenth of a kilobyte to a few kilobytes).
fn contents(v: u32) -> Vec<u8> {
    let word = format!("value {v} ");
    let len = 100 + (v as usize % 7) * 500;
    word.repeat(len / word.len() + 1).into_bytes()[..len].to_vec()
}

/// What a `get` returned, to the model: the value whose contents it is, whole,
/// or anything else as it is.
fn answer_of_contents(bytes: &[u8]) -> FileAnswer {
    let text = String::from_utf8_lossy(bytes);
    let value = text.strip_prefix("value ").and_then(|rest| rest.split(' ').next()?.parse::<u32>().ok());
    match value {
        Some(v) if contents(v) == bytes => FileAnswer::Value(v),
        _ => FileAnswer::Other(format!(
            "contents of no put: {} bytes, {:?}",
            bytes.len(),
            &text[..text.len().min(40)]
        )),
    }
}

/// A failed command, to the model: "no such path" is an answer; a server that
/// could not be reached leaves the outcome unknown (`None`); anything else is
/// an answer the model never gives.
fn answer_of_error(text: String) -> Option<FileAnswer> {
    if text.contains("no such path") {
        Some(FileAnswer::NotFound)
    } else if text.contains("is not reachable") {
        None
    } else {
        Some(FileAnswer::Other(text))
    }
}

/// Makes `call` on `path` as the workstation command does; its answer (`None`:
/// outcome unknown).
fn perform(ws: &mut Workstation, path: &str, call: &FileCall) -> Option<FileAnswer> {
    let result = match call {
        FileCall::Put(v) => ws.put(&contents(*v), path).map(|_| FileAnswer::Ok),
        FileCall::Get => ws.get(path).map(|bytes| answer_of_contents(&bytes)),
        FileCall::Rm => ws.rm(path).map(|()| FileAnswer::Ok),
    };
    result.map(Some).unwrap_or_else(|error| answer_of_error(format!("{error:#}")))
}

/// Client `client`'s calls until `until`, on the host's clock from `epoch` (µs).
fn client_run(run_dir: &Path, client: usize, epoch: Instant, until: Instant) -> Vec<Recorded> {
    let mut ws = Workstation::connect(run_dir).unwrap();
    let mut rng = SplitMix64(0x11_9e57 + client as u64);
    let mut next_value = (client as u32 + 1) * 1_000_000;
    let mut records = Vec::new();
    let now = || epoch.elapsed().as_micros() as u64;
    while Instant::now() < until {
        let path = rng.below(PATHS.len() as u64) as usize;
        let call = match rng.below(10) {
            0..=3 => {
                next_value += 1;
                FileCall::Put(next_value)
            }
            4..=7 => FileCall::Get,
            _ => FileCall::Rm,
        };
        let invoked = now();
        let answer = perform(&mut ws, PATHS[path], &call);
        let returned = answer.map(|a| (now(), a));
        records.push((path, Call { client, invoked, returned, input: call }));
    }
    records
}

fn pool_with_files(disk: &Path) -> (TestPool, DirectoryService) {
    let (config, dir) = config(BOARDS);
    let pool = boot_with(config.with_disk(disk, DISK_MIB << 20, true).unwrap(), dir);
    let bullet = system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    let service = DirectoryService::start(&pool, bullet, &replica_boards(BOARDS as usize))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let capabilities: Vec<(String, Capability)> =
        vec![(String::from("bullet"), bullet), (String::from("root"), service.root)];
    workstation::save_capabilities(pool.run_dir(), &capabilities).unwrap();
    (pool, service)
}

/// Counts of the history, for the report: (call kind, answer kind) → calls.
fn tally(records: &[Recorded]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, call) in records {
        let kind = match call.input {
            FileCall::Put(_) => "put",
            FileCall::Get => "get",
            FileCall::Rm => "rm",
        };
        let answer = match &call.returned {
            None => "unknown",
            Some((_, FileAnswer::Ok)) => "ok",
            Some((_, FileAnswer::Value(_))) => "value",
            Some((_, FileAnswer::NotFound)) => "no such path",
            Some((_, FileAnswer::Other(_))) => "other",
        };
        *counts.entry(format!("{kind} {answer}")).or_default() += 1;
    }
    counts
}

#[test]
fn eight_clients_see_whole_files_under_faults_while_a_replica_is_killed() {
    let disk = tempfile::tempdir().unwrap();
    let (pool, service) = pool_with_files(&disk.path().join("disk.img"));
    let run_dir = pool.run_dir().to_path_buf();
    Workstation::connect(&run_dir).unwrap().mkdir("/lin").unwrap();

    pool.switch().apply_faults(FAULTS).unwrap();
    let epoch = Instant::now();
    let until = epoch + RUN;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let run_dir = run_dir.clone();
            std::thread::spawn(move || client_run(&run_dir, client, epoch, until))
        })
        .collect();
    // Half way, the group's creator (its sequencer) goes.
    std::thread::sleep(RUN / 2);
    let sequencer = service.replicas[0].process;
    pool.control(&sequencer.capability, Control::Destroy).unwrap();
    let killed_at = epoch.elapsed();
    let mut records: Vec<Recorded> = clients.into_iter().flat_map(|c| c.join().unwrap()).collect();
    let stats = pool.switch().stats();
    pool.switch().apply_faults("clear").unwrap();

    // The last word on each path, read once everything has settled.
    let mut ws = Workstation::connect(&run_dir).unwrap();
    for (path, name) in PATHS.iter().enumerate() {
        let invoked = epoch.elapsed().as_micros() as u64;
        let answer = perform(&mut ws, name, &FileCall::Get);
        let returned = answer.map(|a| (epoch.elapsed().as_micros() as u64, a));
        records.push((path, Call { client: CLIENTS, invoked, returned, input: FileCall::Get }));
    }
    let counts = tally(&records);
    println!(
        "{} calls in {:.1?}, the sequencer's replica killed at {killed_at:.1?}: {counts:?}\nswitch: {stats:?}",
        records.len(),
        epoch.elapsed()
    );
    assert!(stats.dropped_loss > 0 && stats.duplicated > 0 && stats.reordered > 0, "no faults: {stats:?}");
    let odd: Vec<&Recorded> =
        records.iter().filter(|(_, c)| matches!(c.returned, Some((_, FileAnswer::Other(_))))).collect();
    assert!(odd.is_empty(), "answers the model never gives: {odd:#?}");
    let count = |key: &str| counts.get(key).copied().unwrap_or(0);
    assert!(count("get value") >= 100 && count("put ok") >= 100, "too few calls answered: {counts:?}");
    assert!(count("get no such path") > 0 && count("rm ok") > 0, "no path was ever removed: {counts:?}");
    // Reads are in the history as they ended; one that failed for want of a
    // server stays there with its outcome unknown. Such failures must be rare.
    let gets = count("get value") + count("get no such path") + count("get unknown");
    assert!(count("get unknown") * 100 <= gets, "too many reads failed: {counts:?}");
    let killed_at_us = killed_at.as_micros() as u64;
    assert!(
        records.iter().any(|(_, c)| c.invoked > killed_at_us + 5_000_000 && c.returned.is_some()),
        "nothing was answered after the kill"
    );

    let started = Instant::now();
    if let Err(why) = check_paths(&records) {
        let mut sorted: Vec<&Recorded> = records.iter().collect();
        sorted.sort_by_key(|(_, c)| c.invoked);
        let shown: Vec<String> = sorted.iter().map(|(p, c)| format!("  {} {c:?}", PATHS[*p])).collect();
        panic!("the history is not linearizable: {why}\n{}", shown.join("\n"));
    }
    println!("linearizable, checked in {:.1?}", started.elapsed());
    // The same history with one read claiming contents nobody wrote must fail.
    let mut tampered = records.clone();
    let read = tampered
        .iter_mut()
        .find_map(|(_, c)| match &mut c.returned {
            Some((_, FileAnswer::Value(v))) => Some(v),
            _ => None,
        })
        .expect("a read that found a file");
    *read = 7;
    assert!(check_paths(&tampered).is_err(), "the checker took contents nobody wrote");
}
