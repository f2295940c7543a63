//! The group-communication demos, shared by `boot` (the `just` recipes) and
//! the pool tests: each runs on a booted pool, checks what the members saw
//! and fails with the evidence if they disagree.
//!
//! * [`replicated_counter`]: four boards and the host apply increments in
//!   the group's order and end with the same value and order.
//! * [`ordered_chat`]: every board sends lines concurrently; every board's
//!   log is the same.
//! * [`sequencer_crash`]: the sequencer's board is killed mid-stream; the
//!   others reset the group and go on, and everything any member delivered
//!   before the crash is in every survivor's log, in the same order.

use amoeba_abi::syscall::{GROUP_RIGHT_RECEIVE, GROUP_RIGHT_SEND};
use amoeba_abi::{GetPort, Port, Rights};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{Announcement, BOOTSTRAP_CAPABILITY_NAME, Value};
use amoeba_ipc::interfaces::{GROUP_LOG_ENTRY, GroupLogEntry, GroupLogWhat, OrderHash};
use anyhow::{Context, Result, bail, ensure};
use host_station::bootstrap_server::Expected;
use host_station::group_client::GroupClient;
use qemu_pool::board::Board;
use qemu_pool::pool::Pool;
use std::time::{Duration, Instant};

const CREATE: u64 = 1 << 63;

/// What a board member gets: receive and send, not the owner's rights.
fn member_rights() -> Rights {
    Rights(GROUP_RIGHT_RECEIVE | GROUP_RIGHT_SEND)
}

/// The replicated counter on every board of `pool` plus the host, which
/// creates the group. With `faults`, the switch applies them once every
/// member has started. Each board reports its value and order to the host's
/// bootstrap server.
pub fn replicated_counter(pool: &Pool, faults: Option<&str>) -> Result<()> {
    const INCREMENTS: u64 = 5;
    let members = pool.boards().len() as u64 + 1;
    let get_port = GetPort(Port::from_u64(0x0000_0000_dede_0001));
    let mut host = GroupClient::create(pool.new_host_port()?, get_port, sequencer::Config::default())?;
    let capability = host.capability().restrict(member_rights())?;
    println!("group {}: boards join with {capability}", capability.port);
    let mut told = Vec::new();
    for board in 0..pool.boards().len() {
        let exec = Exec::new("group-counter", &["group-counter"])
            .with_argument(members << 48)
            .with_capability("ARG", capability);
        told.push(start_told(pool, board, exec)?);
    }
    if let Some(faults) = faults {
        pool.switch().apply_faults(faults).map_err(|e| anyhow::anyhow!("faults {faults}: {e}"))?;
        println!("switch faults: {faults}");
    }
    host.wait_for_members(members as usize, Duration::from_secs(60))?;
    let me = host.view().0;
    println!("host: member {me} of {members}");
    let (mut value, mut applied, mut sent) = (0u64, 0u64, 0u64);
    let mut order_hash = OrderHash::default();
    while applied < members * INCREMENTS {
        if sent < INCREMENTS {
            host.send(&[b'+', me as u8])?;
            sent += 1;
        }
        let Some(message) = host.receive(Duration::from_secs(30))? else {
            bail!("the group went quiet after {applied} increments");
        };
        order_hash.add(message.seq, message.sender, &message.payload);
        if message.payload.len() == 2 && message.payload[0] == b'+' {
            value += 1 + message.payload[1] as u64;
            applied += 1;
        }
    }
    let order = order_hash.value();
    println!("host:    value {value} order {order:016x}");
    host.leave()?;
    let mut agree = true;
    for (board, told) in pool.boards().iter().zip(&told) {
        let result = told.wait(Duration::from_secs(120), |_, figures| {
            let find = |name: &str| figures.iter().rev().find(|f| f.name == name).map(|f| f.value.clone());
            Some((find("value")?, find("order")?))
        });
        let Some((Value::Unsigned(board_value), Value::Unsigned(board_order))) = result else {
            bail!("board {} has no result ({result:?}):\n{}", board.spec.id, board.console_tail(10));
        };
        println!("board {}: value {board_value} order {board_order:016x}", board.spec.id);
        agree &= (board_value, board_order) == (value, order);
    }
    ensure!(agree, "the members disagree");
    if faults.is_some() {
        let stats = pool.switch().stats();
        println!(
            "switch: {} frames dropped, {} duplicated, {} reordered",
            stats.dropped_loss, stats.duplicated, stats.reordered
        );
    }
    println!("group demo: every member has the same value and the same order");
    Ok(())
}

/// Starts `exec` on board `board` with an object of the host's bootstrap
/// server, which hears what it announces and reports.
fn start_told(pool: &Pool, board: usize, exec: Exec) -> Result<Expected> {
    let told = pool.bootstrap()?.open().map_err(|s| anyhow::anyhow!("no bootstrap object: {s}"))?;
    let exec = exec.with_capability(BOOTSTRAP_CAPABILITY_NAME, told.capability());
    pool.exec_with(board, &exec.name, &exec)?;
    Ok(told)
}

/// The entries a `group-log` member has reported so far, in order.
fn reported_log(member: &Expected) -> Result<Vec<GroupLogEntry>> {
    let series = member.series(GROUP_LOG_ENTRY).unwrap_or_default();
    GroupLogEntry::all(&series).context("group-log reported an entry that is not one")
}

/// The log from its first message on (members joined at different times,
/// so only the part after everyone is in is common).
fn from_first_message(log: &[GroupLogEntry]) -> &[GroupLogEntry] {
    let first = log.iter().position(GroupLogEntry::is_message).unwrap_or(log.len());
    &log[first..]
}

/// An entry as its member's console shows it, for people.
fn entry_text(entry: &GroupLogEntry) -> String {
    match entry.what {
        GroupLogWhat::Line(line) => format!("line {line} from member {}", entry.sender),
        GroupLogWhat::Bye => "bye".into(),
        GroupLogWhat::Joined => "[joined]".into(),
        GroupLogWhat::Left => "[left]".into(),
        GroupLogWhat::Reset(dropped) => {
            let ids: Vec<u32> = (0..64).filter(|id| dropped & 1 << id != 0).collect();
            format!("[reset, dropped {ids:?}]")
        }
        GroupLogWhat::Other(hash) => format!("<message {hash:016x}>"),
    }
}

/// `group-log`'s argument (see the program).
fn group_log_argument(get_port: u64, lines: u64, members: u64, pause_10ms: u64, resilience: u64) -> u64 {
    get_port | (lines << 32) | (members << 48) | (pause_10ms << 56) | (resilience << 60)
}

/// `group-log` with `argument`, reporting every entry it delivers.
fn group_log(argument: u64) -> Exec {
    let mut exec = Exec::new("group-log", &["group-log"]).with_argument(argument);
    exec.startup.environment.push("REPORT_ENTRIES=1".into());
    exec
}

/// Starts `group-log` on every board, board 0 creating the group; what each
/// board's member reports (by board).
fn start_group_log(pool: &Pool, lines: u64, pause_10ms: u64, resilience: u64) -> Result<Vec<Expected>> {
    let creator = &pool.boards()[0];
    let argument =
        group_log_argument(0x106_0001, lines, pool.boards().len() as u64, pause_10ms, resilience) | CREATE;
    let told = start_told(pool, 0, group_log(argument))?;
    let owner = told
        .wait(Duration::from_secs(30), |announcements, _| {
            announcements.iter().find_map(|a| match a {
                Announcement::Group(group) => Some(*group),
                _ => None,
            })
        })
        .with_context(|| format!("board 0 made no group:\n{}", creator.console_tail(10)))?;
    let capability = owner.restrict(member_rights())?;
    println!("board 0 created group {} (resilience {resilience}); the others join", owner.port);
    let mut members = vec![told];
    for board in 1..pool.boards().len() {
        let argument = group_log_argument(0, lines, pool.boards().len() as u64, pause_10ms, 0);
        let exec = group_log(argument).with_capability("ARG", capability);
        members.push(start_told(pool, board, exec)?);
    }
    Ok(members)
}

/// Waits for `group-log` to finish on `boards` (each with what its member
/// reports); their logs, which must be the same from the first message on:
/// (that common log, every log).
fn identical_logs(boards: &[(&Board, &Expected)]) -> Result<(Vec<GroupLogEntry>, Vec<Vec<GroupLogEntry>>)> {
    let mut logs = Vec::new();
    for (board, member) in boards {
        let delivered = member.wait_figure("delivered", Duration::from_secs(120)).with_context(|| {
            format!("board {} did not finish:\n{}", board.spec.id, board.console_tail(10))
        })?;
        let Value::Unsigned(delivered) = delivered else {
            bail!("board {}'s group-log reported {delivered:?} as delivered", board.spec.id)
        };
        println!("board {}: group-log delivered {delivered} messages", board.spec.id);
        logs.push(reported_log(member)?);
    }
    let reference = from_first_message(&logs[0]).to_vec();
    for ((board, _), log) in boards.iter().zip(&logs) {
        let log = from_first_message(log);
        if log != reference.as_slice() {
            let at = log
                .iter()
                .zip(&reference)
                .position(|(a, b)| a != b)
                .unwrap_or(log.len().min(reference.len()));
            bail!(
                "board {}'s log differs from board {}'s at entry {at}: {:?} vs {:?}",
                board.spec.id,
                boards[0].0.spec.id,
                log.get(at),
                reference.get(at)
            );
        }
    }
    Ok((reference, logs))
}

/// Every board sends `lines` lines at once; every log must be the same.
pub fn ordered_chat(pool: &Pool, lines: u64) -> Result<()> {
    ensure!(pool.boards().len() >= 2, "the chat needs two boards or more");
    let members = start_group_log(pool, lines, 0, 0)?;
    let boards: Vec<(&Board, &Expected)> = pool.boards().iter().zip(&members).collect();
    let (reference, logs) = identical_logs(&boards)?;
    // Everyone's lines, each once; interleaved, since all sent at once.
    let members = pool.boards().len();
    let messages: Vec<&GroupLogEntry> = reference.iter().filter(|e| e.is_message()).collect();
    ensure!(
        messages.len() == members * (lines as usize + 1),
        "expected {} lines, the log has {}",
        members * (lines as usize + 1),
        messages.len()
    );
    let switches = messages.windows(2).filter(|w| w[0].sender != w[1].sender).count();
    println!("the first lines of every member's log:");
    for entry in messages.iter().take(8) {
        println!("  {:>4}  member {}: {}", entry.sequence, entry.sender, entry_text(entry));
    }
    println!(
        "chat demo: {members} members sent {lines} lines each at once; all {} logs are identical ({} entries, the sender changes {switches} times)",
        logs.len(),
        reference.len()
    );
    Ok(())
}

/// Kills the sequencer's board (board 0, the creator) while every member
/// is sending, with resilience 1; the survivors must reset the group, go on,
/// and keep everything anyone delivered.
pub fn sequencer_crash(pool: &mut Pool) -> Result<()> {
    const LINES: u64 = 30;
    const KILL_AFTER: usize = 12;
    let members = pool.boards().len();
    ensure!(members >= 4, "the crash demo needs 4 boards (3 survivors are a majority)");
    let reporters = start_group_log(pool, LINES, 2, 1)?;
    let sequencer = &pool.boards()[0];
    let deadline = Instant::now() + Duration::from_secs(60);
    while from_first_message(&reported_log(&reporters[0])?).len() < KILL_AFTER {
        ensure!(Instant::now() < deadline, "the stream did not start:\n{}", sequencer.console_tail(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let sequencer_id = sequencer.spec.id;
    pool.kill_board(sequencer_id)?;
    let dead_log = reported_log(&reporters[0])?;
    let dead_log = from_first_message(&dead_log).to_vec();
    println!(
        "killed board {sequencer_id} (the sequencer) after it delivered {} entries, up to sequence {}",
        dead_log.len(),
        dead_log.last().map_or(0, |e| e.sequence)
    );
    let survivors: Vec<(&Board, &Expected)> = pool.boards().iter().zip(&reporters).skip(1).collect();
    let (reference, logs) = identical_logs(&survivors)?;
    // Nothing the dead sequencer delivered is lost, and it is in the same order.
    ensure!(
        reference.starts_with(&dead_log),
        "the survivors' log does not begin with what the sequencer delivered before it died:\n{dead_log:#?}\nvs\n{:#?}",
        &reference[..dead_log.len().min(reference.len())]
    );
    let reset = reference
        .iter()
        .find(|e| matches!(e.what, GroupLogWhat::Reset(_)))
        .context("the survivors' log shows no reset")?;
    ensure!(reset.what == GroupLogWhat::Reset(1), "the reset should drop member 0: {}", entry_text(reset));
    let after_reset = reference.iter().filter(|e| e.sequence > reset.sequence).count();
    // Every survivor's lines arrived, each once.
    for survivor in 1..members as u32 {
        let sent: Vec<GroupLogWhat> =
            reference.iter().filter(|e| e.sender == survivor && e.is_message()).map(|e| e.what).collect();
        let expected: Vec<GroupLogWhat> =
            (0..LINES).map(GroupLogWhat::Line).chain([GroupLogWhat::Bye]).collect();
        ensure!(sent == expected, "member {survivor}'s lines are not all there once, in order: {sent:?}");
    }
    println!(
        "the survivors reset the group at sequence {} (new sequencer: member {}) and delivered {after_reset} entries after it",
        reset.sequence, reset.sender
    );
    println!(
        "sequencer crash demo: all {} entries the dead sequencer delivered are in every survivor's log, in the same order; the {} survivors' logs are identical",
        dead_log.len(),
        logs.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_common_from_its_first_message_on() {
        let log = [
            GroupLogEntry { sequence: 3, sender: 0, what: GroupLogWhat::Joined },
            GroupLogEntry::message(4, 1, b"line 0 from member 1"),
            GroupLogEntry { sequence: 5, sender: 2, what: GroupLogWhat::Joined },
        ];
        assert_eq!(from_first_message(&log), &log[1..]);
        assert_eq!(entry_text(&log[1]), "line 0 from member 1");
        let reset = GroupLogEntry { sequence: 6, sender: 1, what: GroupLogWhat::Reset(0b101) };
        assert_eq!(entry_text(&reset), "[reset, dropped [0, 2]]");
    }
}
