//! Group communication on a real pool: members on several boards see the
//! same messages in the same order, and only holders of a capability for
//! the group get in.

use amoeba_abi::syscall::GROUP_RIGHT_RECEIVE;
use amoeba_abi::{Capability, Check, Rights, Status};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{Value, series};
use host_station::group_client::GroupClient;
use pool_tests::{TestPool, Told, boot};
use std::time::Duration;

const CREATE: u64 = 1 << 63;

/// Starts `group-counter` on board 0 as the creator of a group of
/// `members`; it and the group's owner capability, which it announces.
fn create_counter_group(pool: &TestPool, get_port: u64, members: u64) -> (Told, Capability) {
    let creator = pool.run_told(0, "group-counter", get_port | (members << 48) | CREATE);
    let capability = creator.group();
    (creator, capability)
}

/// Starts `group-counter` on board `index`, joining with `capability`.
fn join_counter_group(pool: &TestPool, index: usize, members: u64, capability: Capability) -> Told {
    let exec = Exec::new("group-counter", &["group-counter"])
        .with_argument(members << 48)
        .with_capability("ARG", capability);
    pool.start_told(index, &exec)
}

/// The value and order a `group-counter` member reported once done.
fn counter_result(member: &Told, timeout: Duration) -> (Value, Value) {
    let order = member.told.wait_figure("order", timeout);
    let order = order.unwrap_or_else(|| panic!("process {} has no result", member.started.pid));
    (member.figure("value").expect("the value comes before the order"), order)
}

// The demos' own checks (`just group-demo`, `chat-demo`,
// `sequencer-crash-demo`) are the tests: each fails with the evidence.

#[test]
fn group_demo_every_member_ends_with_the_same_value_and_order() {
    let pool = boot(4);
    pool_demos::replicated_counter(&pool, None).unwrap();
}

#[test]
fn group_demo_agrees_under_loss_duplication_and_reordering() {
    let pool = boot(4);
    pool_demos::replicated_counter(&pool, Some("loss=20 dup=5 reorder=5")).unwrap();
    let stats = pool.switch().stats();
    assert!(
        stats.dropped_loss > 0 && stats.duplicated > 0 && stats.reordered > 0,
        "the faults must have happened: {stats:?}"
    );
}

#[test]
fn chat_demo_every_log_is_the_same() {
    let pool = boot(4);
    pool_demos::ordered_chat(&pool, 10).unwrap();
}

#[test]
fn sequencer_crash_demo_loses_nothing_delivered() {
    let mut pool = boot(4);
    pool_demos::sequencer_crash(&mut pool).unwrap();
}

#[test]
fn the_host_is_a_group_member_like_the_boards() {
    let pool = boot(2);
    let members = 3; // two boards and the host
    let (creator, capability) = create_counter_group(&pool, 0x0a57_0001, members);
    let joiner = join_counter_group(&pool, 1, members, capability);
    let mut host =
        GroupClient::join(pool.new_host_port().unwrap(), &capability, Duration::from_secs(30)).unwrap();
    host.wait_for_members(members as usize, Duration::from_secs(60)).unwrap();
    let me = host.view().0 as u8;
    let mut order = Vec::new();
    for _ in 0..5 {
        host.send(&[b'+', me]).unwrap();
    }
    while order.iter().filter(|(_, _, p): &&(u64, u32, Vec<u8>)| p.first() == Some(&b'+')).count() < 15 {
        let message = host.receive(Duration::from_secs(30)).unwrap().expect("the group goes on");
        order.push((message.seq, message.sender, message.payload));
    }
    // The host saw the boards' messages and its own, each once, in sequence.
    assert!(order.windows(2).all(|w| w[0].0 < w[1].0), "sequence numbers must grow: {order:?}");
    assert_eq!(order.iter().filter(|(_, _, p)| p == &vec![b'+', me]).count(), 5);
    host.leave().unwrap();
    let results: Vec<(Value, Value)> =
        [&creator, &joiner].iter().map(|member| counter_result(member, Duration::from_secs(60))).collect();
    assert_eq!(results[0], results[1], "the boards disagree");
}

#[test]
fn forged_and_receive_only_capabilities_are_held_to_what_they_allow() {
    let pool = boot(2);
    let members = 2;
    let (_creator, capability) = create_counter_group(&pool, 0x0bad_0001, members);
    // The host with a forged check, and with rights raised over a
    // receive-only check: refused.
    let mut forged = capability;
    forged.check = Check([0x42; 6]);
    let receive_only = capability.restrict(Rights(GROUP_RIGHT_RECEIVE)).unwrap();
    let mut raised = receive_only;
    raised.rights = Rights::ALL;
    for bad in [forged, raised] {
        let error = GroupClient::join(pool.new_host_port().unwrap(), &bad, Duration::from_secs(10))
            .err()
            .expect("a bad capability must not get in");
        assert!(error.to_string().contains("refused"), "{error}");
    }
    // A process on board 1 with the forged capability: the nucleus refuses
    // the join with CapBad.
    let board = &pool.boards()[1];
    let joiner = join_counter_group(&pool, 1, members, forged);
    let status = pool.wait_process(&joiner.started, Duration::from_secs(30));
    assert_eq!(status, Some(1), "{}", board.console_text());
    assert_eq!(joiner.figure("enter failed"), Some(Value::Signed(Status::CapBad as i64)));
    // With the receive-only capability it gets in, but may not send.
    let joiner = join_counter_group(&pool, 1, members, receive_only);
    let status = pool.wait_process(&joiner.started, Duration::from_secs(30));
    assert_eq!(status, Some(1), "{}", board.console_text());
    assert_eq!(joiner.figure("enter failed"), None);
    assert_eq!(joiner.figure("send failed"), Some(Value::Signed(Status::Denied as i64)));
}

/// `group-log`'s argument (see its header): lines, members, pause, resilience.
fn group_log_argument(lines: u64, members: u64, pause_10ms: u64) -> u64 {
    (lines << 32) | (members << 48) | (pause_10ms << 56)
}

/// A pair running `group-log` (board 0 creating the group, `min_reset`
/// members needed for a reset, or a majority without); board 0 is killed
/// once board 1 has heard 20 of its lines. Board 1's exit status (if it ended
/// within `wait`), what it reported, and its console (for failures).
fn pair_losing_its_sequencer(min_reset: Option<u16>, wait: Duration) -> (Option<i32>, Told, String) {
    let mut pool = boot(2);
    let mut creator = amoeba_client::exec::Exec::new("group-log", &["group-log"])
        .with_argument(group_log_argument(300, 2, 1) | 0x0000_0000_0777_0001 | CREATE);
    if let Some(min) = min_reset {
        creator.startup.environment.push(format!("MIN_RESET={min}"));
    }
    let creator = pool.start_told(0, &creator);
    let owner = creator.group();
    let rights = Rights(amoeba_abi::syscall::GROUP_RIGHT_RECEIVE | amoeba_abi::syscall::GROUP_RIGHT_SEND);
    let member = owner.restrict(rights).unwrap();
    let survivor = amoeba_client::exec::Exec::new("group-log", &["group-log"])
        .with_argument(group_log_argument(300, 2, 1))
        .with_capability("ARG", member);
    let survivor = pool.start_told(1, &survivor);
    let heard = survivor.wait_reports("heard", 2, Duration::from_secs(60));
    assert!(heard, "the pair did not talk:\n{}", pool.boards()[1].console_text());
    pool.kill_board(0).unwrap();
    let status = pool.wait_process(&survivor.started, wait);
    let console = pool.boards()[1].console_text();
    (status, survivor, console)
}

#[test]
fn a_pair_that_asked_for_it_goes_on_alone_after_its_peers_board_is_killed() {
    // Asked for: the survivor resets the group alone, sends all its lines, says done.
    let (status, survivor, log) = pair_losing_its_sequencer(Some(1), Duration::from_secs(120));
    assert_eq!(status, Some(0), "{log}");
    let figures = survivor.told.figures();
    assert_eq!(series(&figures, "reset-dropped"), Some(vec![0]), "{figures:?}\n{log}");
    // Its lines went on after the reset: all 300 and its bye, most of them
    // after it.
    let (at_reset, own) = (survivor.unsigned("own-at-reset"), survivor.unsigned("own-delivered"));
    assert_eq!(own, 301, "its own lines delivered, of 300 and a bye:\n{log}");
    assert!(at_reset < 300, "{at_reset} of its lines were delivered before the reset:\n{log}");
    // By default a lone survivor is no majority: it stops instead (in the
    // time the pair above took to finish several times over).
    let (status, survivor, log) = pair_losing_its_sequencer(None, Duration::from_secs(20));
    assert_ne!(status, Some(0), "a default pair went on alone:\n{log}");
    assert!(survivor.figures("own-at-reset").is_empty(), "it reset the group alone:\n{log}");
}
