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
use amoeba_abi::{Capability, GetPort, Port, Rights};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{Announcement, BOOTSTRAP_CAPABILITY_NAME, Value};
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
    let mut order = 0xcbf2_9ce4_8422_2325u64;
    while applied < members * INCREMENTS {
        if sent < INCREMENTS {
            host.send(&[b'+', me as u8])?;
            sent += 1;
        }
        let Some(message) = host.receive(Duration::from_secs(30))? else {
            bail!("the group went quiet after {applied} increments");
        };
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

/// One line of a `group-log` console: an entry of the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub sequence: u64,
    pub sender: u32,
    pub text: String,
}

/// The entries a `group-log` member printed, in order. Only whole lines
/// count: a board killed mid-line leaves a partial one.
pub fn parse_log(console: &str) -> Vec<LogEntry> {
    let whole = match console.rfind('\n') {
        Some(end) => &console[..=end],
        None => "",
    };
    whole
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("group-log: ")?.splitn(3, ' ');
            let sequence = words.next()?.parse().ok()?;
            let sender = words.next()?.parse().ok()?;
            Some(LogEntry { sequence, sender, text: words.next().unwrap_or("").to_string() })
        })
        .collect()
}

/// The log from its first message on (members joined at different times,
/// so only the part after everyone is in is common).
fn from_first_message(log: &[LogEntry]) -> &[LogEntry] {
    let first = log.iter().position(|e| !e.text.starts_with('[')).unwrap_or(log.len());
    &log[first..]
}

/// `group-log`'s argument (see the program).
fn group_log_argument(get_port: u64, lines: u64, members: u64, pause_10ms: u64, resilience: u64) -> u64 {
    get_port | (lines << 32) | (members << 48) | (pause_10ms << 56) | (resilience << 60)
}

/// Starts `group-log` on every board, board 0 creating the group; returns
/// the group's owner capability.
fn start_group_log(pool: &Pool, lines: u64, pause_10ms: u64, resilience: u64) -> Result<Capability> {
    let members = pool.boards().len() as u64;
    let creator = &pool.boards()[0];
    let argument = group_log_argument(0x106_0001, lines, members, pause_10ms, resilience) | CREATE;
    let exec = Exec::new("group-log", &["group-log"]).with_argument(argument);
    let told = start_told(pool, 0, exec)?;
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
    for board in 1..pool.boards().len() {
        let argument = group_log_argument(0, lines, members, pause_10ms, 0);
        pool.exec_with_capability(board, "group-log", argument, capability)?;
    }
    Ok(owner)
}

/// Waits for `group-log` to finish on `boards`; their logs, which must be
/// the same from the first message on: (that common log, every log).
fn identical_logs(boards: &[Board]) -> Result<(Vec<LogEntry>, Vec<Vec<LogEntry>>)> {
    let mut logs = Vec::new();
    for board in boards {
        let done = board.wait_for_line("group-log: done", Duration::from_secs(120)).with_context(|| {
            format!("board {} did not finish:\n{}", board.spec.id, board.console_tail(10))
        })?;
        println!("board {}: {done}", board.spec.id);
        logs.push(parse_log(&board.console_text()));
    }
    let reference = from_first_message(&logs[0]).to_vec();
    for (board, log) in boards.iter().zip(&logs) {
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
                boards[0].spec.id,
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
    start_group_log(pool, lines, 0, 0)?;
    let (reference, logs) = identical_logs(pool.boards())?;
    // Everyone's lines, each once; interleaved, since all sent at once.
    let members = pool.boards().len();
    let messages: Vec<&LogEntry> = reference.iter().filter(|e| !e.text.starts_with('[')).collect();
    ensure!(
        messages.len() == members * (lines as usize + 1),
        "expected {} lines, the log has {}",
        members * (lines as usize + 1),
        messages.len()
    );
    let switches = messages.windows(2).filter(|w| w[0].sender != w[1].sender).count();
    println!("the first lines of every member's log:");
    for entry in messages.iter().take(8) {
        println!("  {:>4}  member {}: {}", entry.sequence, entry.sender, entry.text);
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
    start_group_log(pool, LINES, 2, 1)?;
    let sequencer = &pool.boards()[0];
    let deadline = Instant::now() + Duration::from_secs(60);
    while from_first_message(&parse_log(&sequencer.console_text())).len() < KILL_AFTER {
        ensure!(Instant::now() < deadline, "the stream did not start:\n{}", sequencer.console_tail(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let sequencer_id = sequencer.spec.id;
    pool.kill_board(sequencer_id)?;
    let dead_log = parse_log(&pool.boards()[0].console_text());
    let dead_log = from_first_message(&dead_log).to_vec();
    println!(
        "killed board {sequencer_id} (the sequencer) after it delivered {} entries, up to sequence {}",
        dead_log.len(),
        dead_log.last().map_or(0, |e| e.sequence)
    );
    let (reference, logs) = identical_logs(&pool.boards()[1..])?;
    // Nothing the dead sequencer delivered is lost, and it is in the same order.
    ensure!(
        reference.starts_with(&dead_log),
        "the survivors' log does not begin with what the sequencer delivered before it died:\n{dead_log:#?}\nvs\n{:#?}",
        &reference[..dead_log.len().min(reference.len())]
    );
    let reset = reference
        .iter()
        .find(|e| e.text.starts_with("[reset"))
        .context("the survivors' log shows no reset")?;
    ensure!(reset.text.contains("dropped [0]"), "the reset should drop member 0: {}", reset.text);
    let after_reset = reference.iter().filter(|e| e.sequence > reset.sequence).count();
    // Every survivor's lines arrived, each once.
    for survivor in 1..members as u32 {
        let sent: Vec<&str> = reference
            .iter()
            .filter(|e| e.sender == survivor && !e.text.starts_with('['))
            .map(|e| &e.text[..])
            .collect();
        ensure!(
            sent.len() == LINES as usize + 1 && sent.last() == Some(&"bye"),
            "member {survivor}'s lines are not all there once: {sent:?}"
        );
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
    fn a_log_keeps_whole_entry_lines_only() {
        let console = "nucleus: started\ngroup-log: capability 1:2:3:4\ngroup-log: 3 0 [joined]\n\
                       group-log: 4 1 line 0 from member 1\r\ngroup-log: 5 0 by";
        let log = parse_log(console);
        assert_eq!(log.len(), 2);
        assert_eq!(log[1], LogEntry { sequence: 4, sender: 1, text: "line 0 from member 1".into() });
        assert_eq!(from_first_message(&log), &log[1..]);
    }
}
