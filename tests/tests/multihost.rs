//! One pool across two hosts, on one machine, as root: two network
//! namespaces, one per part of the pool, joined through a third that holds a
//! Linux bridge with two kernel `vxlan` devices (`vswitch::lab`), so
//! that the halves talk only through the kernel's VXLAN and bridge. Each half
//! is its own `boot up` process run with `ip netns exec`: part A (boards 0–3)
//! starts the servers, part B (boards 4 and 5) joins them with a copy of A's
//! capabilities file. Then, as a user would:
//!
//! - `ax --on 5 hello` from A's namespace runs on a board of B, and the
//!   reverse; `hosts`, `ps` and `kill` see and reach every board from either side;
//! - a file `put` on one side is read back on the other, both ways;
//! - a group with members on both sides (a host station and a board on each)
//!   keeps one order: every member ends with the same value and order hash;
//! - `fault partition=vx0` on A cuts B off until `fault heal`.
//!
//! The namespaces go when the test ends, failed or not (the lab's Drop);
//! without root or where the kernel refuses namespaces, veth, bridges or
//! vxlan devices, the test fails and says which.

use amoeba_abi::syscall::{GROUP_RIGHT_RECEIVE, GROUP_RIGHT_SEND};
use amoeba_abi::{GetPort, Port, Rights};
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interfaces::process_server;
use host_station::HostPort;
use host_station::group_client::GroupClient;
use host_station::tty_server::{Sink, TtyServer};
use pool_tests::up::{Up, text};
use std::time::{Duration, Instant};
use vswitch::lab::Lab;

/// How long a part has to come up (boot, servers, join) on a loaded machine.
const UP_TIMEOUT: Duration = Duration::from_secs(240);

/// Starts `boot up ARGS --vxlan ...` in part `index`'s namespace and waits
/// until it says the system is up; its commands run in that namespace too.
fn start_part(lab: &Lab, index: usize, args: &[&str]) -> Up {
    let part = &lab.parts[index];
    let vxlan = part.vxlan.to_string();
    let mut all = args.to_vec();
    all.extend(["--vxlan", &vxlan]);
    Up::with_args(&all).in_namespace(&part.namespace).timeout(UP_TIMEOUT).start()
}

/// Alive processors in `hosts` output.
fn alive(hosts: &str) -> usize {
    hosts.lines().filter(|l| l.starts_with("board") && l.contains(" yes ")).count()
}

#[test]
fn one_pool_across_two_hosts_through_the_kernels_vxlan_and_bridge() {
    let lab = Lab::create().unwrap_or_else(|error| {
        panic!(
            "this test needs two hosts made of network namespaces, veth pairs, a bridge and kernel vxlan \
             devices, which takes root: {error:#}"
        )
    });
    let a = start_part(&lab, 0, &["4", "--fresh-disk"]);
    // The hand-over: A's capabilities, copied the way an owner copies a
    // private key (`scp -p`: owner-only), named with --join.
    let hand_over = tempfile::Builder::new().prefix("mh-join-").tempdir_in("/tmp").unwrap();
    let join_file = hand_over.path().join("capabilities-of-a");
    std::fs::copy(a.run_dir().join("capabilities"), &join_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&join_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let b = start_part(&lab, 1, &["2", "--first-board", "4", "--join", join_file.to_str().unwrap()]);

    // The run server, asked from either side, counts all six boards alive.
    for part in [&a, &b] {
        let hosts = part.until(&["hosts"], Duration::from_secs(60), |o| alive(&text(o)) == 6);
        println!("hosts from {}:\n{}", part.namespace(), text(&hosts));
    }

    // ax --on 5 from A's namespace runs on a board of B (once A's `up` has
    // read B's boards from the directory), and --on 1 from B on one of A.
    let on_five = a.until(&["ax", "--on", "5", "hello", "from", "a"], Duration::from_secs(30), |o| {
        !text(o).contains("has no board 5")
    });
    println!("ax --on 5 from A:\n{}", text(&on_five));
    assert_eq!(on_five.status.code(), Some(7), "{}", text(&on_five));
    assert!(String::from_utf8_lossy(&on_five.stdout).contains("hello: from a"), "{}", text(&on_five));
    let on_one = b.command(&["ax", "--on", "1", "hello", "from", "b"]);
    assert_eq!(on_one.status.code(), Some(7), "{}", text(&on_one));
    assert!(String::from_utf8_lossy(&on_one.stdout).contains("hello: from b"), "{}", text(&on_one));

    // ps from B sees the servers on A's boards and a program on its own board
    // started from A; kill from B ends it.
    a.ok(&["ax", "--on", "5", "--detach", "ticker"]);
    let ps = b.ok(&["ps"]);
    println!("ps from B:\n{ps}");
    assert!(ps.contains("bullet-server") && ps.contains("run-server"), "{ps}");
    assert!(ps.lines().any(|l| l.starts_with("board5") && l.contains("ticker")), "{ps}");
    b.ok(&["kill", "ticker"]);
    assert!(!a.ok(&["ps"]).contains("ticker"), "the ticker still runs");

    // Files: put on one side, read back on the other, both ways.
    let local = hand_over.path().join("file");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&local, &bytes).unwrap();
    b.ok(&["put", local.to_str().unwrap(), "/from-b"]);
    let fetched = hand_over.path().join("fetched");
    a.ok(&["get", "/from-b", fetched.to_str().unwrap()]);
    assert!(std::fs::read(&fetched).unwrap() == bytes, "the file B put reads back differently on A");
    a.ok(&["put", local.to_str().unwrap(), "/from-a"]);
    let fetched_b = hand_over.path().join("fetched-b");
    b.ok(&["get", "/from-a", fetched_b.to_str().unwrap()]);
    assert!(std::fs::read(&fetched_b).unwrap() == bytes, "the file A put reads back differently on B");

    group_across_the_uplink(&a, &b);

    // `just fault` applies to the uplink: cut off, B's boards are gone for A
    // (the run server on A counts them dead); healed, they are back.
    a.ok(&["fault", "partition=vx0"]);
    a.until(&["hosts"], Duration::from_secs(30), |o| alive(&text(o)) == 4);
    let status = a.ok(&["status"]);
    println!("status of A, cut off:\n{status}");
    assert!(status.contains("uplink vx0") && status.contains("partition=vx0"), "{status}");
    a.ok(&["fault", "heal"]);
    a.until(&["hosts"], Duration::from_secs(30), |o| alive(&text(o)) == 6);
    let again = a.command(&["ax", "--on", "4", "hello", "again"]);
    assert_eq!(again.status.code(), Some(7), "{}", text(&again));

    println!("part B's up:\n{}", b.output());
    drop(b);
    drop(a);
    drop(lab);
}

/// The replicated counter (`group-counter`'s rule) of one host member:
/// sends its five increments, applies every member's; its result line.
fn count(host: &mut GroupClient, members: u64) -> String {
    let me = host.view().0;
    let (mut value, mut applied, mut sent) = (0u64, 0u64, 0u64);
    let mut order = 0xcbf2_9ce4_8422_2325u64;
    while applied < members * 5 {
        if sent < 5 {
            host.send(&[b'+', me as u8]).unwrap();
            sent += 1;
        }
        let message = host.receive(Duration::from_secs(60)).unwrap().expect("the group went quiet");
        for byte in
            message.seq.to_le_bytes().iter().chain(&message.sender.to_le_bytes()).chain(&message.payload)
        {
            order = (order ^ *byte as u64).wrapping_mul(0x100_0000_01b3);
        }
        if message.payload.len() == 2 && message.payload[0] == b'+' {
            value += 1 + message.payload[1] as u64;
            applied += 1;
        }
    }
    format!("group-counter: value {value} order {order:016x}")
}

/// A group with a host station and a board on each side: A's host creates it
/// (and so sequences it), B's host joins, `group-counter` runs on board 1 (A)
/// and board 5 (B) with its output sent back to a terminal of the test's own.
/// Every member must end with the same value and the same order.
fn group_across_the_uplink(a: &Up, b: &Up) {
    const MEMBERS: u64 = 4;
    let get_port = GetPort(Port::from_u64(0x0000_0000_dede_0024));
    let mut host_a = GroupClient::create(
        HostPort::connect(&a.run_dir().join("host.sock")).unwrap(),
        get_port,
        Default::default(),
    )
    .unwrap();
    let member = host_a.capability().restrict(Rights(GROUP_RIGHT_RECEIVE | GROUP_RIGHT_SEND)).unwrap();
    let port_b = HostPort::connect(&b.run_dir().join("host.sock")).unwrap();
    let host_b = std::thread::spawn(move || {
        let mut host = GroupClient::join(port_b, &member, Duration::from_secs(60)).unwrap();
        host.wait_for_members(MEMBERS as usize, Duration::from_secs(120)).unwrap();
        let line = count(&mut host, MEMBERS);
        host.leave().unwrap();
        line
    });

    let mut workstation = workstation::Workstation::connect(a.run_dir()).unwrap();
    let tty = TtyServer::start(HostPort::connect(&a.run_dir().join("host.sock")).unwrap());
    let program = std::fs::read(workstation::program_path("group-counter").unwrap()).unwrap();
    let mut boards = Vec::new();
    for board in [1u16, 5] {
        let terminal = tty.terminal(Sink::Buffer);
        let exec = Exec::new("group-counter", &["group-counter"])
            .with_argument(MEMBERS << 48)
            .with_capability("ARG", member)
            .with_capability("STDOUT", terminal.capability);
        let host = workstation.host_capability(board).unwrap();
        let process = amoeba_client::exec::exec(workstation.rpc(), &host, Program::Bytes(&program), &exec)
            .unwrap_or_else(|error| panic!("starting group-counter on board {board}: {error}"));
        boards.push((board, process, terminal));
    }

    host_a.wait_for_members(MEMBERS as usize, Duration::from_secs(120)).unwrap();
    let line_a = count(&mut host_a, MEMBERS);
    // The sequencer stays until every other member has its result.
    let mut lines = vec![(String::from("host on A"), line_a.clone())];
    for (board, _, terminal) in &boards {
        let deadline = Instant::now() + Duration::from_secs(120);
        let output = loop {
            if let Some(output) = terminal.wait_for("group-counter: value", Duration::from_millis(50)) {
                break output;
            }
            let _ = host_a.receive(Duration::from_millis(50)).unwrap();
            assert!(Instant::now() < deadline, "board {board} has no result: {}", terminal.text());
        };
        let line = output.lines().find(|l| l.starts_with("group-counter: value")).unwrap().to_string();
        lines.push((format!("board {board}"), line));
    }
    while !host_b.is_finished() {
        let _ = host_a.receive(Duration::from_millis(50)).unwrap();
    }
    lines.push((String::from("host on B"), host_b.join().unwrap()));
    for (board, process, _) in &boards {
        let status = process_server::Client::new(workstation.rpc()).wait(process);
        assert_eq!(status, Ok(0), "group-counter on board {board}");
    }
    host_a.leave().unwrap();
    println!("group members: {lines:#?}");
    assert!(lines.iter().all(|(_, line)| *line == line_a), "the members disagree: {lines:#?}");
}
