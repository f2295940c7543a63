//! Group communication on a real pool: members on several boards see the
//! same messages in the same order.

use amoeba::syscall::SCHED_PREEMPTIVE;
use pool_tests::boot;
use std::time::Duration;

#[test]
fn a_replicated_counter_on_three_boards_ends_with_one_value_and_one_order() {
    let pool = boot(3);
    let port = 0x0000_0000_6c6f_6767u64;
    let members = 3u64;
    let creator = port | (members << 48) | (1 << 63);
    let joiner = port | (members << 48);
    let mut started = Vec::new();
    for (index, argument) in [creator, joiner, joiner].into_iter().enumerate() {
        let mac = pool.boards()[index].mac;
        started
            .push((index, pool.host().exec(mac, "group-counter", argument, SCHED_PREEMPTIVE as u8).unwrap()));
        if index == 0 {
            std::thread::sleep(Duration::from_millis(300)); // the group exists before anyone joins
        }
    }
    let mut results = Vec::new();
    for (index, process) in started {
        let board = &pool.boards()[index];
        let status = pool.host().wait_exit(board.mac, process.pid, Duration::from_secs(60));
        let console = board.console_text();
        assert_eq!(status, Some(0), "group-counter on board {index}:\n{console}");
        let line = console
            .lines()
            .find(|l| l.starts_with("group-counter: value"))
            .expect("a result line")
            .to_string();
        results.push(line);
    }
    assert!(results.iter().all(|r| *r == results[0]), "members disagree: {results:#?}");
}

#[test]
fn the_replicated_counter_agrees_under_loss_duplication_and_reordering() {
    let pool = boot(3);
    let port = 0x0000_0000_6c6f_7373u64;
    let members = 3u64;
    for index in 0..3 {
        let argument = port | (members << 48) | if index == 0 { 1 << 63 } else { 0 };
        let mac = pool.boards()[index].mac;
        pool.host().exec(mac, "group-counter", argument, SCHED_PREEMPTIVE as u8).unwrap();
        if index == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // Joins, sends and deliveries all cross the lossy switch. (The host's own
    // control frames do not retry, so the results are read from the consoles.)
    pool.switch().apply_faults("loss=20 dup=5 reorder=5").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut results = Vec::new();
    for board in pool.boards() {
        loop {
            let console = board.console_text();
            if let Some(line) = console.lines().find(|l| l.starts_with("group-counter: value")) {
                results.push(line.to_string());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "board {} has no result:\n{console}",
                board.spec.id
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let stats = pool.switch().stats();
    assert!(stats.dropped_loss > 0 && stats.duplicated > 0, "the faults must have happened: {stats:?}");
    assert!(results.iter().all(|r| *r == results[0]), "members disagree: {results:#?}");
}

#[test]
fn the_host_is_a_group_member_like_the_boards() {
    use boot::group_client::GroupClient;
    let pool = boot(2);
    let port = 0x0000_0000_0a57_0001u64;
    let members = 3u64; // two boards and the host
    for index in 0..2 {
        let argument = port | (members << 48) | if index == 0 { 1 << 63 } else { 0 };
        pool.host()
            .exec(pool.boards()[index].mac, "group-counter", argument, SCHED_PREEMPTIVE as u8)
            .unwrap();
        if index == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let mut host = GroupClient::join(pool.new_host_port().unwrap(), port, Duration::from_secs(30)).unwrap();
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
    for board in pool.boards() {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !board.console_text().contains("group-counter: value") {
            assert!(
                std::time::Instant::now() < deadline,
                "board {}:\n{}",
                board.spec.id,
                board.console_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
