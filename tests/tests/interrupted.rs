//! Blocking calls cut short by a signal leave nothing behind: an
//! interrupted `trans` is given up (no late write into the caller's memory,
//! the request ran at most once), an interrupted group receive loses no
//! message, and a join the runtime retries makes one member, not two.
//! The scenarios are the `interrupted` program's (see its header).

use amoeba_abi::{Capability, GetPort, Port};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::Value;
use pool_tests::{TestPool, Told, boot};
use qemu_pool::exec::Started;
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

/// Starts `program` with `argument` (and `capability` as `ARG`), with a
/// bootstrap object to report to.
fn start(
    pool: &TestPool,
    board: usize,
    program: &str,
    argument: u64,
    capability: Option<Capability>,
) -> Told {
    let mut exec = Exec::new(program, &[program]).with_argument(argument);
    if let Some(capability) = capability {
        exec = exec.with_capability("ARG", capability);
    }
    pool.start_told(board, &exec)
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
    let server = start(&pool, 1, "counter-server", 0x0000_0000_9999, None);
    let counter = server.serving();
    let client = start(&pool, 0, "interrupted", scenario(TRANS, 0), Some(counter));
    let status = wait_exit(&pool, 0, &client.started);
    assert!(client.flag("caller memory untouched"), "{}", console(&pool, 0));
    assert_eq!(status, 0, "{}", console(&pool, 0));
    // The server got the request once and ran it once; nothing ran it again.
    assert_eq!(server.figures("slow increment").len(), 1, "{}", console(&pool, 1));
    assert_eq!(client.unsigned("count"), 1, "{}", console(&pool, 0));
}

#[test]
fn an_interrupted_group_receive_loses_no_message() {
    let pool = boot(1);
    let receiver = start(&pool, 0, "interrupted", scenario(RECEIVE, 0x0a11_0001), None);
    let status = wait_exit(&pool, 0, &receiver.started);
    assert!(receiver.flag("got the message"), "{}", console(&pool, 0));
    assert_eq!(status, 0, "{}", console(&pool, 0));
}

#[test]
fn an_interrupted_join_retried_by_the_runtime_makes_one_member() {
    let pool = boot(2);
    let get_port = 0x0a11_0002;
    let creator = start(&pool, 0, "interrupted", scenario(CREATE, get_port), None);
    let capability = creator.group();
    assert_eq!(capability.port, GetPort(Port::from_u64(get_port)).put_port());
    // Every frame takes 200 ms through the switch: the join is still under
    // way when the signal comes 100 ms after it started.
    pool.switch().apply_faults("delay=200ms").unwrap();
    let joiner = start(&pool, 1, "interrupted", scenario(JOIN, 0), Some(capability));
    let status = wait_exit(&pool, 1, &joiner.started);
    pool.switch().apply_faults("clear").unwrap();
    assert_eq!(joiner.unsigned("joined members"), 2, "{}", console(&pool, 1));
    assert_eq!(status, 0, "{}", console(&pool, 1));
    // The creator saw one member join (and leave when its process ended),
    // never a third.
    let sizes = creator.figures("members");
    assert_eq!(sizes.first(), Some(&Value::Unsigned(2)), "{sizes:?}");
    assert!(
        sizes.iter().all(|size| matches!(size, Value::Unsigned(s) if *s <= 2)),
        "a ghost member joined: {sizes:?}"
    );
}
