//! Blocking calls cut short by a signal leave nothing behind: an
//! interrupted `trans` is given up (no late write into the caller's memory,
//! the request ran at most once), an interrupted group receive loses no
//! message, and a join the runtime retries makes one member, not two.
//! The scenarios are the `interrupted` program's (see its header).

use amoeba_abi::{Capability, GetPort, Port};
use boot::exec::Started;
use pool_tests::{TestPool, boot};
use std::time::Duration;

/// Scenarios of the `interrupted` program (argument bits 56..64).
const TRANS: u64 = 1;
const RECEIVE: u64 = 2;
const CREATE: u64 = 3;
const JOIN: u64 = 4;

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn scenario(kind: u64, get_port: u64) -> u64 {
    (kind << 56) | get_port
}

fn start(
    pool: &TestPool,
    board: usize,
    program: &str,
    argument: u64,
    capability: Option<Capability>,
) -> Started {
    match capability {
        Some(capability) => pool.exec_with_capability(board, program, argument, capability),
        None => pool.exec(board, program, argument),
    }
    .unwrap_or_else(|e| panic!("{e:#}"))
}

fn wait_exit(pool: &TestPool, board: usize, started: &Started) -> i32 {
    pool.wait_process(started, EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!("process {} did not exit:\n{}", started.pid, pool.boards()[board].console_text())
    })
}

fn console(pool: &TestPool, board: usize) -> String {
    pool.boards()[board].console_text()
}

#[test]
fn an_interrupted_trans_is_given_up_and_ran_at_most_once() {
    let pool = boot(2);
    start(&pool, 1, "counter-server", 0x0000_0000_9999, None);
    let counter =
        pool.boards()[1].wait_for_capability("counter-server: capability ", Duration::from_secs(30)).unwrap();
    let client = start(&pool, 0, "interrupted", scenario(TRANS, 0), Some(counter));
    let status = wait_exit(&pool, 0, &client);
    let text = console(&pool, 0);
    assert!(text.contains("interrupted: trans: caller memory untouched"), "{text}");
    assert_eq!(status, 0, "{text}");
    // The server got the request once and ran it once; nothing ran it again.
    assert_eq!(
        console(&pool, 1).matches("counter-server: slow increment").count(),
        1,
        "{}",
        console(&pool, 1)
    );
    assert!(text.contains("interrupted: trans: count 1"), "{text}");
}

#[test]
fn an_interrupted_group_receive_loses_no_message() {
    let pool = boot(1);
    let receiver = start(&pool, 0, "interrupted", scenario(RECEIVE, 0x0a11_0001), None);
    let status = wait_exit(&pool, 0, &receiver);
    let text = console(&pool, 0);
    assert!(text.contains("interrupted: receive: got the message"), "{text}");
    assert_eq!(status, 0, "{text}");
}

#[test]
fn an_interrupted_join_retried_by_the_runtime_makes_one_member() {
    let pool = boot(2);
    let get_port = 0x0a11_0002;
    start(&pool, 0, "interrupted", scenario(CREATE, get_port), None);
    let capability =
        pool.boards()[0].wait_for_capability("interrupted: capability ", Duration::from_secs(30)).unwrap();
    assert_eq!(capability.port, GetPort(Port::from_u64(get_port)).put_port());
    // Every frame takes 200 ms through the switch: the join is still under
    // way when the signal comes 100 ms after it started.
    pool.switch().apply_faults("delay=200ms").unwrap();
    let joiner = start(&pool, 1, "interrupted", scenario(JOIN, 0), Some(capability));
    let status = wait_exit(&pool, 1, &joiner);
    pool.switch().apply_faults("clear").unwrap();
    let text = console(&pool, 1);
    assert!(text.contains("interrupted: joined; members 2"), "{text}");
    assert_eq!(status, 0, "{text}");
    // The creator saw one member join (and leave when its process ended),
    // never a third.
    let creator = console(&pool, 0);
    let sizes: Vec<u32> = creator
        .lines()
        .filter_map(|l| l.strip_prefix("interrupted: members ")?.trim().parse().ok())
        .collect();
    assert_eq!(sizes.first(), Some(&2), "{creator}");
    assert!(sizes.iter().all(|&size| size <= 2), "a ghost member joined: {sizes:?}\n{creator}");
}
