//! The replicated directory service on a real pool: three clients (the host and
//! programs on two boards) keep a linearizable history while the sequencer's
//! replica is killed with its board, the replicas end identical and the killed
//! one rejoins; the tree survives the whole pool being stopped and started on
//! the same disk; rights columns and forged capabilities hold.

use amoeba_abi::{Capability, Check, Rights, Status};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::directory::{Listing, Lookup, NewRow, column_right};
use amoeba_ipc::interfaces::starter::Value;
use amoeba_ipc::interfaces::{soap, standard};
use directory_server::checker::lin::{Call, check};
use directory_server::checker::spec::Dirs;
use directory_server::report::Beginning;
use directory_server::workload::{self, Directories, In, NAMES, Out, Record, note_name, value_cap};
use host_station::rpc_client::RpcClient;
use pool_system::directory::{DirectoryService, replica_boards, retrying};
use pool_tests::{TestPool, Told, boot_with, config};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Updates each client makes in the crash test.
const UPDATES_PER_CLIENT: usize = 300;
/// Size of board 0's disk.
const DISK_MIB: u64 = 64;

/// A pool of `boards` boards whose board 0 has the disk at `disk`, with the
/// Bullet server and the directory replicas on `replicas` up.
fn pool_with_directory(
    boards: u16,
    disk: &Path,
    fresh: bool,
    replicas: &[usize],
) -> (TestPool, Capability, DirectoryService) {
    let (config, dir) = config(boards);
    let config = config.with_disk(disk, DISK_MIB << 20, fresh).unwrap();
    let pool = boot_with(config, dir);
    let bullet = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    let started = Instant::now();
    let service = DirectoryService::start(&pool, bullet, replicas).unwrap_or_else(|e| panic!("{e:#}"));
    println!("directory service on {} boards up in {:.1?}", replicas.len(), started.elapsed());
    (pool, bullet, service)
}

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

fn columns() -> Vec<String> {
    ["owner", "group", "other"].iter().map(|c| c.to_string()).collect()
}

// ---------------------------------------------------------------------- clocks

/// A board's clock against the host's epoch: host µs = board µs + `offset`,
/// right to within `uncertainty` µs.
#[derive(Clone, Copy, Debug)]
struct ClockOffset {
    offset: i64,
    uncertainty: i64,
}

fn clock_offset(pool: &TestPool, board: usize, epoch: Instant) -> ClockOffset {
    let port = pool.new_host_port().unwrap();
    let micros = |at: Instant| at.duration_since(epoch).as_micros() as i64;
    let readings = (0..20).map(|_| {
        port.board_clock(pool.boards()[board].mac, Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|| panic!("board {board} did not tell its time"))
    });
    let best = readings.min_by_key(|r| r.received - r.sent).unwrap();
    let (sent, received) = (micros(best.sent), micros(best.received));
    ClockOffset {
        offset: (sent + received) / 2 - best.board_micros as i64,
        uncertainty: (received - sent) / 2 + 1,
    }
}

/// A board's records on the host's time line, each interval widened by what the
/// clock offset may be wrong by (before and after the run): wider intervals only
/// allow more orders, so the check stays sound.
fn on_host_time(records: Vec<Record>, before: ClockOffset, after: ClockOffset) -> Vec<Record> {
    let margin = before.uncertainty.max(after.uncertainty) + (before.offset - after.offset).abs();
    let offset = before.offset;
    let shift = |t: u64, by: i64| (t as i64 + offset + by).max(0) as u64;
    records
        .into_iter()
        .map(|r| Record {
            invoked: shift(r.invoked, -margin),
            returned: r.returned.map(|(t, out)| (shift(t, margin), out)),
            ..r
        })
        .collect()
}

/// The records a `dir-client` reported, in order.
fn board_records(client: &Told) -> Vec<Record> {
    let hex = client.figures("record").into_iter().map(|value| match value {
        Value::Text(hex) => hex,
        other => panic!("a record that is no text: {other:?}"),
    });
    hex.map(|hex| Record::from_hex(&hex).unwrap_or_else(|| panic!("a damaged record: {hex}"))).collect()
}

// ---------------------------------------------------------------------- the crash test

/// Reads every cell and list at the end, as the history's last calls.
fn final_reads(rpc: &mut RpcClient, dirs: &Directories, epoch: Instant) -> Vec<Record> {
    let all: Vec<(usize, usize)> = (0..2).flat_map(|d| (0..NAMES.len()).map(move |n| (d, n))).collect();
    let now = || epoch.elapsed().as_micros() as u64;
    [In::List(0), In::List(1), In::SetLookup(all)]
        .into_iter()
        .map(|input| {
            let invoked = now();
            let out = retrying(|| workload::perform(&mut *rpc, dirs, &input)).unwrap();
            Record { client: 0, invoked, returned: Some((now(), out)), input }
        })
        .collect()
}

/// Median times of the host's answered updates and reads (its own clock).
fn print_latencies(records: &[Record]) {
    let median = |update: bool| {
        let mut times: Vec<u64> = records
            .iter()
            .filter(|r| r.client == 0 && workload::is_update(&r.input) == update)
            .filter_map(|r| r.returned.as_ref().map(|(t, _)| t - r.invoked))
            .collect();
        times.sort_unstable();
        Duration::from_micros(times.get(times.len() / 2).copied().unwrap_or(0))
    };
    println!("host client medians: update {:.1?}, read {:.1?}", median(true), median(false));
}

fn check_history(records: &[Record]) {
    let calls: Vec<Call<In, Out>> = records
        .iter()
        .map(|r| Call {
            client: r.client as usize,
            invoked: r.invoked,
            returned: r.returned.clone(),
            input: r.input.clone(),
        })
        .collect();
    let started = Instant::now();
    if let Err(why) = check(&Dirs::default(), &calls) {
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|r| r.invoked);
        let shown: Vec<String> = sorted.iter().map(|r| format!("  {r:?}")).collect();
        panic!("the history is not linearizable: {why}\n{}", shown.join("\n"));
    }
    println!("{} calls checked in {:.1?}", calls.len(), started.elapsed());
    // The same history with the last read claiming a value nobody wrote must fail.
    let mut tampered = calls;
    let last = tampered.last_mut().expect("the final reads are in the history");
    let Some((_, Out::Set(cells))) = &mut last.returned else {
        panic!("the last call is the final set lookup")
    };
    cells[0] = Some((1, 0xff));
    assert!(check(&Dirs::default(), &tampered).is_err(), "the checker took a value nobody wrote");
}

/// Every acknowledged note is in the notes directory, and nothing else is.
fn check_notes(records: &[Record], notes: &Listing) {
    let present: BTreeSet<&str> = notes.rows.iter().map(|r| r.name.as_str()).collect();
    let mut attempted = BTreeSet::new();
    for r in records {
        if let In::Note(v) = r.input {
            let name = note_name(v);
            if r.returned.is_some() {
                assert!(present.contains(name.as_str()), "acknowledged {name} is missing");
            }
            attempted.insert(name);
        }
    }
    for name in present {
        assert!(attempted.contains(name), "{name} was never written");
    }
}

/// What replica `index` answers on its own port for every row of the workload.
fn replica_view(service: &DirectoryService, rpc: &mut RpcClient, dirs: &Directories, index: u8) -> String {
    let (mut port, cap) = service.replica_client(&mut *rpc, index);
    let mut view = String::new();
    for dir in [dirs.root, dirs.sub, dirs.notes] {
        view += &format!("{:?}\n", port.list(&cap, &dir).unwrap());
        for name in NAMES {
            view += &format!("{name}: {:?}\n", port.lookup(&cap, &(dir, name.to_string())));
        }
    }
    view
}

#[test]
fn three_clients_stay_linearizable_while_the_sequencers_board_is_killed() {
    let disk = tempfile::tempdir().unwrap();
    // Replica 0 creates the group, so it is the sequencer: it runs on board 1,
    // which is killed. Board 0 has the disk and the Bullet server.
    let (mut pool, _bullet, mut service) =
        pool_with_directory(4, &disk.path().join("disk.img"), true, &[1, 2, 0]);
    let epoch = Instant::now();
    let mut rpc = client(&pool);
    let dirs = Directories::create(&mut rpc, &service.super_capability()).unwrap();
    let client_boards = [(0usize, 1u32), (3, 2)];
    let offsets_before: Vec<ClockOffset> =
        client_boards.iter().map(|(b, _)| clock_offset(&pool, *b, epoch)).collect();
    let started = Instant::now();
    let mut processes = Vec::new();
    for (board, client) in client_boards {
        let args = [
            "dir-client".to_string(),
            client.to_string(),
            UPDATES_PER_CLIENT.to_string(),
            (1000 + client).to_string(),
        ];
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let exec = Exec::new("dir-client", &argv)
            .with_capability("ROOT", dirs.root)
            .with_capability("SUB", dirs.sub)
            .with_capability("NOTES", dirs.notes);
        processes.push(pool.start_told(board, &exec));
    }
    let progress = Arc::new(AtomicUsize::new(0));
    let host = {
        let (progress, mut rpc) = (progress.clone(), client(&pool));
        std::thread::spawn(move || {
            let now = || {
                progress.fetch_add(1, Ordering::SeqCst);
                epoch.elapsed().as_micros() as u64
            };
            workload::run(&mut rpc, &dirs, 0, UPDATES_PER_CLIENT, 1000, now)
        })
    };
    // Kill the sequencer's board a third of the way into the host's calls.
    while progress.load(Ordering::SeqCst) < 2 * UPDATES_PER_CLIENT / 3 {
        assert!(!host.is_finished(), "the host client ended before the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    pool.kill_board(1).unwrap();
    let killed_at = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    pool.restart_board(1).unwrap();
    service.restart_replica(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    let rejoined_at = started.elapsed();
    assert!(!host.is_finished(), "the clients ended before the killed replica was back");
    let mut records = host.join().unwrap();
    for process in &processes {
        let status = pool.wait_process(&process.started, Duration::from_secs(600));
        assert_eq!(status, Some(0), "a board client failed:\n{}", pool.consoles(20));
    }
    let run_time = started.elapsed();
    for (k, ((board, _), process)) in client_boards.into_iter().zip(&processes).enumerate() {
        let after = clock_offset(&pool, board, epoch);
        let reported = board_records(process);
        assert!(
            reported.len() >= UPDATES_PER_CLIENT,
            "board {board}'s client reported {} calls",
            reported.len()
        );
        records.extend(on_host_time(reported, offsets_before[k], after));
    }
    let mut rpc = client(&pool);
    records.extend(final_reads(&mut rpc, &dirs, epoch));
    let unknown = records.iter().filter(|r| r.returned.is_none()).count();
    let updates = records.iter().filter(|r| workload::is_update(&r.input)).count();
    println!(
        "{} calls ({updates} updates, {unknown} of unknown outcome) in {run_time:.1?}; killed at {killed_at:.1?}, \
         back at {rejoined_at:.1?}",
        records.len()
    );
    assert!(updates >= 3 * UPDATES_PER_CLIENT, "{updates} updates");
    print_latencies(&records);
    check_history(&records);
    let notes = retrying(|| soap::Client::new(&mut rpc).list(&dirs.notes)).unwrap();
    check_notes(&records, &notes);
    let converged =
        service.wait_converged(&mut rpc, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:#}"));
    println!("replicas converged: {converged:?}");
    let answering = converged.iter().filter(|s| s.answered > 0).count();
    assert!(answering >= 2, "the clients' calls did not spread over the replicas: {converged:?}");
    let views: Vec<String> = (0..3).map(|i| replica_view(&service, &mut rpc, &dirs, i)).collect();
    assert_eq!(views[0], views[1], "the rejoined replica answers differently");
    assert_eq!(views[1], views[2]);
    if std::env::var("DIR_CONSOLES").is_ok() {
        println!("{}", pool.consoles(60));
    }
}

// ---------------------------------------------------------------------- whole-pool restart

/// Every row reachable from `root`, by path: its masks and capability set
/// (directories of the service are walked into).
fn tree(rpc: &mut RpcClient, service: &DirectoryService, root: &Capability) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), *root)];
    while let Some((path, dir)) = todo.pop() {
        let listing = retrying(|| soap::Client::new(&mut *rpc).list(&dir)).unwrap();
        for row in listing.rows {
            let here = format!("{path}/{}", row.name);
            let caps = match soap::Client::new(&mut *rpc).lookup(&dir, &row.name).unwrap() {
                Lookup::Found(caps) => caps,
                other => panic!("{here}: {other:?}"),
            };
            if let Some(sub) = caps.iter().find(|c| c.port == service.identity.port()) {
                todo.push((here.clone(), *sub));
            }
            out.insert(here, format!("{:?} {:?}", row.masks, caps));
        }
    }
    out
}

fn row(name: &str, cap: Capability) -> NewRow {
    NewRow { name: name.into(), caps: vec![cap], masks: vec![Rights(0xff), Rights(0x0f), Rights(0x02)] }
}

#[test]
fn the_tree_survives_the_whole_pool_stopped_and_started_on_the_same_disk() {
    let disk_dir = tempfile::tempdir().unwrap();
    let disk = disk_dir.path().join("disk.img");
    let boards = replica_boards(3);
    let (mut pool, bullet, service) = pool_with_directory(3, &disk, true, &boards);
    let root = service.root;
    let before = {
        let mut rpc = client(&pool);
        let mut soap = soap::Client::new(&mut rpc);
        let sup = service.super_capability();
        let home = soap.create(&sup, &columns()).unwrap();
        let deep = soap.create(&sup, &columns()).unwrap();
        soap.append(&root, &row("home", home)).unwrap();
        soap.append(&home, &row("deep", deep)).unwrap();
        // Enough rows that the log outgrows the anchor into files and a checkpoint.
        for i in 0..150 {
            soap.append(&deep, &row(&format!("file-{i}"), value_cap(i))).unwrap();
        }
        soap.delete(&deep, "file-7").unwrap();
        soap.chmod(
            &deep,
            &amoeba_ipc::interfaces::directory::MaskChange {
                name: "file-8".into(),
                masks: vec![Rights(0xff), Rights(0), Rights(0)],
            },
        )
        .unwrap();
        tree(&mut rpc, &service, &root)
    };
    assert_eq!(before.len(), 2 + 149);
    pool.shut_down();
    drop(pool);

    let (pool, bullet_again, service) = pool_with_directory(3, &disk, false, &boards);
    assert_eq!(bullet_again, bullet);
    assert_eq!(service.root, root, "the same root after a restart");
    let mut rpc = client(&pool);
    let creator = service.status(&mut rpc, 0).unwrap();
    println!("{creator}");
    match &creator.start.beginning {
        Beginning::Recovered(recovery) => assert!(recovery.updates >= 155, "{recovery:?}"),
        other => panic!("replica 0 did not recover: {other:?}"),
    }
    assert_eq!(tree(&mut rpc, &service, &root), before, "the tree changed");
    let converged =
        service.wait_converged(&mut rpc, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(converged[0].applied >= 155, "{converged:?}");
    // And it goes on from there.
    soap::Client::new(&mut rpc).append(&root, &row("after", value_cap(9999))).unwrap();
    assert!(tree(&mut rpc, &service, &root).contains_key("/after"));
}

// ---------------------------------------------------------------------- rights

#[test]
fn rights_columns_show_each_holder_its_mask_and_forged_capabilities_are_refused() {
    let disk = tempfile::tempdir().unwrap();
    let (pool, _bullet, service) =
        pool_with_directory(1, &disk.path().join("disk.img"), true, &replica_boards(1));
    let mut rpc = client(&pool);
    let root = service.root;
    let file = value_cap(42);
    let mut soap = soap::Client::new(&mut rpc);
    let row = |name: &str, other: u8| NewRow {
        name: name.into(),
        caps: vec![file],
        masks: vec![Rights(0xff), Rights(0x0f), Rights(other)],
    };
    soap.append(&root, &row("public", 0x02)).unwrap();
    soap.append(&root, &row("private", 0x00)).unwrap();
    let other = standard::Client::new(&mut rpc).restrict(&root, column_right(2)).unwrap();
    let group = standard::Client::new(&mut rpc).restrict(&root, column_right(1)).unwrap();
    let mut soap = soap::Client::new(&mut rpc);
    let found = |l: Lookup| match l {
        Lookup::Found(caps) => caps,
        other => panic!("{other:?}"),
    };
    assert_eq!(found(soap.lookup(&other, "public").unwrap()), vec![file.restrict(Rights(0x02)).unwrap()]);
    assert_eq!(found(soap.lookup(&other, "private").unwrap()), vec![file.restrict(Rights::NONE).unwrap()]);
    assert_eq!(found(soap.lookup(&group, "private").unwrap()), vec![file.restrict(Rights(0x0f)).unwrap()]);
    assert_eq!(found(soap.lookup(&root, "private").unwrap()), vec![file]);
    assert_eq!(soap.list(&other).unwrap().rows.len(), 2);
    // Column "other" may read, not change.
    assert_eq!(soap.append(&other, &row("mine", 0)), Err(Status::Denied));
    assert_eq!(soap.delete(&other, "public"), Err(Status::Denied));
    let mask_change = amoeba_ipc::interfaces::directory::MaskChange {
        name: "private".into(),
        masks: vec![Rights(0xff), Rights(0xff), Rights(0xff)],
    };
    assert_eq!(soap.chmod(&other, &mask_change), Err(Status::Denied));
    assert_eq!(soap.create(&other, &columns()).map(|_| ()), Ok(()), "any capability of the service creates");
    // Forged, raised and foreign capabilities.
    let forged = Capability { check: Check([0x5a; 6]), ..root };
    assert_eq!(soap.list(&forged), Err(Status::CapBad));
    assert_eq!(soap.append(&forged, &row("x", 0)), Err(Status::CapBad));
    let raised = Capability { rights: Rights::ALL, ..other };
    assert_eq!(soap.lookup(&raised, "public"), Err(Status::CapBad));
    let unknown = Capability { object: root.object + 1000, ..root };
    assert_eq!(soap.list(&unknown), Err(Status::CapBad));
    let mut std = standard::Client::new(&mut rpc);
    assert_eq!(std.destroy(&other), Err(Status::Denied));
    assert_eq!(std.restrict(&forged, Rights::ALL), Err(Status::CapBad));
    assert!(std.info(&other).unwrap().contains("2 rows"), "{:?}", std.info(&other));
    let text = std.status(&service.identity.replica_capability(0)).unwrap();
    assert!(text.starts_with("replica 0: ") && text.contains(", serving, "), "STD_STATUS says {text:?}");
    let status = service.status(&mut rpc, 0).unwrap();
    assert!(status.serving && status.applied >= 3, "{status:?}");
    // The replica's own port answers only the capability made for it.
    let (mut port, mine) = service.replica_client(&mut rpc, 0);
    assert_eq!(port.deliver(&Capability { check: Check([1; 6]), ..mine }, b"x"), Err(Status::CapBad));
    assert_eq!(port.list(&mine, &other).unwrap().rows.len(), 2);
}
