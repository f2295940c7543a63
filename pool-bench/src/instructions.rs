//! `just bench --instructions`: what each operation costs in instructions the
//! boards execute, figures that do not move with the host's load. The boards
//! run under QEMU's `-icount shift=0`, where the PMU's instructions-retired
//! event counts exactly the guest's instructions (time in `wfi` counts none);
//! the same operations are measured in two such pools, and once more in a
//! pool without `-icount` for the wall-clock figures beside them.
//!
//! Where the figures come from, never from a console:
//! * the `insn-bench` program on a board reports what its own board executed
//!   around many repetitions, by RPC to a `costs` server the host runs
//!   (null system call, context switch, process creation, local null RPC, the
//!   client side of a remote null RPC, a cached Bullet read, broadcast at the
//!   sequencer, the sender and a member);
//! * the host reads the server board's counters (pool control
//!   `CounterQuery`) before and after the remote calls: the server side of a
//!   remote null RPC, and the driver's instructions per frame received and
//!   sent and per device interrupt.

use crate::plots;
use amoeba_abi::{Capability, Check, GetPort, Port, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::{Cost, costs};
use anyhow::{Context, Result, bail};
use host_station::rpc_server::RpcServer;
use pool_control::BoardCounters;
use qemu_pool::exec::Started;
use qemu_pool::pool::{Pool, PoolConfig};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Boards of each pool: 0 serves (echo, Bullet) and sequences, 1 calls and
/// sends, 2 is one more group member.
pub const BOARDS: u16 = 3;
/// Board 0's disk, for the Bullet server.
pub const DISK_BYTES: u64 = 64 << 20;
/// Counts of two runs must agree within this share.
pub const AGREEMENT: f64 = 0.01;
/// The bar chart, in the run directory.
pub const PLOT: &str = "instructions.svg";

/// `insn-bench`'s modes and flags (see the program).
const MODE_NUCLEUS: u64 = 0;
const MODE_RPC: u64 = 1;
const MODE_BULLET: u64 = 2;
const MODE_GROUP_SEQUENCER: u64 = 3;
const MODE_GROUP_SENDER: u64 = 4;
const MODE_GROUP_MEMBER: u64 = 5;
const MODE_SERVER: u64 = 6;
const REMOTE: u64 = 1 << 48;
/// Remote calls and broadcasts paced (for instruction counts; see `insn-bench`).
const PACED: u64 = 1 << 49;
/// Get-ports of `insn-bench`'s server and of the host's `costs` server.
const SERVER_GET_SEED: u64 = 0x0000_0c05_ec40;
const COSTS_GET_SEED: u64 = 0x0000_0c05_7500;
/// How long one `insn-bench` may take (under `-icount` QEMU runs slower).
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a board may take to answer a counter query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one operation cost in one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub operation: String,
    /// Instructions per operation (zero in a run without `-icount`).
    pub instructions: f64,
    /// Microseconds per operation on the board's clock, if it has one here.
    pub micros: Option<f64>,
}

impl Figure {
    fn of(cost: &Cost) -> Figure {
        let repetitions = cost.repetitions.max(1) as f64;
        Figure {
            operation: cost.operation.clone(),
            instructions: cost.instructions as f64 / repetitions,
            // A board's count read by RPC comes without a time.
            micros: (cost.ticks_per_second > 0)
                .then(|| cost.ticks as f64 * 1e6 / cost.ticks_per_second as f64 / repetitions),
        }
    }
}

/// The goals the issue sets, by operation.
pub fn goal(operation: &str) -> Option<f64> {
    match operation {
        "local null RPC" => Some(2_000.0),
        "remote null RPC, client board" | "remote null RPC, server board" => Some(4_000.0),
        "broadcast at a member" => Some(3_000.0),
        _ => None,
    }
}

/// The operations in the order they are printed.
pub const OPERATIONS: [&str; 13] = [
    "null system call",
    "context switch",
    "process creation",
    "local null RPC",
    "remote null RPC, client board",
    "remote null RPC, server board",
    "driver: frame received",
    "driver: frame sent",
    "driver: device interrupt",
    "broadcast at the sequencer",
    "broadcast at the sender",
    "broadcast at a member",
    "Bullet cached 1 MiB read",
];

/// Shown, but their counts follow the host's timing (how many frames one
/// interrupt finds), so the two runs need not agree on them.
pub const INFORMATIONAL: [&str; 1] = ["driver: device interrupt"];

/// The host's `costs` server: keeps what the programs report.
#[derive(Default)]
struct Reports {
    costs: Vec<Cost>,
    announced: Option<Capability>,
    /// A program's `failed` status, if one failed.
    failed: Option<i32>,
}

struct CostsService {
    port: Port,
    reports: Arc<Mutex<Reports>>,
}

impl Objects for CostsService {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, _object: u32) -> Option<Check> {
        None
    }
}

impl costs::Server for CostsService {
    fn report(&mut self, _: &Call, cost: Cost) -> Result<(), Status> {
        self.reports.lock().map_err(|_| Status::SysErr)?.costs.push(cost);
        Ok(())
    }

    fn announce(&mut self, _: &Call, capability: &[u8]) -> Result<(), Status> {
        let bytes: [u8; 16] = capability.try_into().map_err(|_| Status::ArgBad)?;
        self.reports.lock().map_err(|_| Status::SysErr)?.announced = Some(Capability::decode(&bytes));
        Ok(())
    }

    fn null(&mut self, _: &Call) -> Result<(), Status> {
        Ok(())
    }

    /// The host has no instruction counter.
    fn instructions(&mut self, _: &Call) -> Result<u64, Status> {
        Err(Status::ComBad)
    }

    fn failed(&mut self, _: &Call, status: u32) -> Result<(), Status> {
        self.reports.lock().map_err(|_| Status::SysErr)?.failed = Some(status as i32);
        Ok(())
    }
}

/// Waits until `answers` (a call from the host to a server just started).
fn await_answer(pool: &Pool, server: &str, answers: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    while !answers() {
        if Instant::now() > deadline {
            bail!("{server} never answered:\n{}", pool.consoles(8));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// How many figures the programs have reported so far.
fn reported(reports: &Mutex<Reports>) -> Result<usize> {
    Ok(reports.lock().map_err(|_| anyhow::anyhow!("reports poisoned"))?.costs.len())
}

/// Waits until the programs have reported `count` more figures than the
/// `before` there were, watching nothing but the host's own `costs`
/// server: a wait for the process (an RPC its board answers, with FLIP's
/// enquiries every 100 ms to 1 s) would land in the board's counts by the
/// host's timing.
fn await_reports(
    pool: &Pool,
    reports: &Mutex<Reports>,
    before: usize,
    count: usize,
    what: &str,
) -> Result<()> {
    let total = before + count;
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    loop {
        {
            let reports = reports.lock().map_err(|_| anyhow::anyhow!("reports poisoned"))?;
            if let Some(code) = reports.failed {
                let status = Status::try_from(code).map_or(format!("status {code}"), |s| s.to_string());
                bail!("insn-bench ({what}) failed: {status}:\n{}", pool.consoles(8));
            }
            if reports.costs.len() >= total {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("insn-bench ({what}) reported nothing in {PROGRAM_TIMEOUT:?}:\n{}", pool.consoles(8));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `insn-bench` as `started`, waits for it; fails unless it exits 0.
fn finish(pool: &Pool, started: &Started, what: &str) -> Result<()> {
    match pool.wait_process(started, PROGRAM_TIMEOUT) {
        Some(0) => Ok(()),
        Some(status) => {
            bail!(
                "insn-bench ({what}) on board {} exited with {status}:\n{}",
                started.board,
                pool.consoles(8)
            )
        }
        None => bail!("insn-bench ({what}) on board {} did not finish:\n{}", started.board, pool.consoles(8)),
    }
}

fn counters(pool: &Pool, board: usize) -> Result<BoardCounters> {
    pool.host()
        .board_counters(pool.boards()[board].mac, QUERY_TIMEOUT)?
        .with_context(|| format!("board {board} did not answer a counter query"))
}

/// Measures every operation in `pool` (three boards, board 0 with a fresh
/// disk); one figure per operation. `paced`: remote calls and broadcasts
/// one at a time with pauses between them, so that each board handles one
/// operation's frames before the next come (for instruction counts that do
/// not follow the host's timing); back to back otherwise.
pub fn measure(pool: &Pool, paced: bool) -> Result<Vec<Figure>> {
    let paced = if paced { PACED } else { 0 };
    let reports = Arc::new(Mutex::new(Reports::default()));
    let costs_get = GetPort(Port::from_u64(COSTS_GET_SEED));
    let mut service = CostsService { port: costs_get.put_port(), reports: reports.clone() };
    let server = RpcServer::start(
        pool.new_host_port()?,
        costs_get,
        Box::new(move |header, buf| costs::dispatch(&mut service, header, buf)),
    );
    let report_to = server.port().to_u64();
    let echo = Capability::for_port(GetPort(Port::from_u64(SERVER_GET_SEED)).put_port());
    let before = reported(&reports)?;
    let nucleus = pool.exec_spawning(
        0,
        "insn-bench",
        MODE_NUCLEUS << 56 | report_to,
        amoeba_abi::syscall::SCHED_PREEMPTIVE,
    )?;
    await_reports(pool, &reports, before, 3, "nucleus")?;
    finish(pool, &nucleus, "nucleus")?;
    // The RPC server once the nucleus is measured: its process, made while
    // they ran, changed what a thread switch costs (one more thread to pass
    // over) by when the host's request came. The clients' warm-up calls wait
    // for it to serve.
    pool.exec(0, "insn-bench", MODE_SERVER << 56 | SERVER_GET_SEED)?;
    await_answer(pool, "the null RPC server", || costs::Client::new(&mut *pool.rpc()).null(&echo).is_ok())?;
    let before = reported(&reports)?;
    let local = pool.exec_with_capability(0, "insn-bench", MODE_RPC << 56 | report_to, echo)?;
    await_reports(pool, &reports, before, 1, "local null RPC")?;
    finish(pool, &local, "local null RPC")?;

    let mut figures = Vec::new();
    let before = counters(pool, 0)?;
    let reported_before = reported(&reports)?;
    let remote =
        pool.exec_with_capability(1, "insn-bench", MODE_RPC << 56 | REMOTE | paced | report_to, echo)?;
    // The client's figure and the server side's.
    await_reports(pool, &reports, reported_before, 2, "remote null RPC")?;
    finish(pool, &remote, "remote null RPC")?;
    let server_side = counters(pool, 0)?.since(&before);
    let per = |instructions: u32, count: u32| f64::from(instructions) / f64::from(count.max(1));
    figures.push(Figure {
        operation: "driver: frame received".into(),
        instructions: per(server_side.rx_instructions, server_side.rx_frames),
        micros: None,
    });
    figures.push(Figure {
        operation: "driver: frame sent".into(),
        instructions: per(server_side.tx_instructions, server_side.tx_frames),
        micros: None,
    });
    figures.push(Figure {
        operation: "driver: device interrupt".into(),
        instructions: per(server_side.interrupt_instructions, server_side.interrupts),
        micros: None,
    });

    let before = reported(&reports)?;
    let sequencer = pool.exec(0, "insn-bench", MODE_GROUP_SEQUENCER << 56 | paced | report_to)?;
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    let group = loop {
        if let Some(group) = reports.lock().map_err(|_| anyhow::anyhow!("reports poisoned"))?.announced {
            break group;
        }
        if Instant::now() > deadline {
            bail!("the group's sequencer announced no capability:\n{}", pool.consoles(8));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let sender =
        pool.exec_with_capability(1, "insn-bench", MODE_GROUP_SENDER << 56 | paced | report_to, group)?;
    let member =
        pool.exec_with_capability(2, "insn-bench", MODE_GROUP_MEMBER << 56 | paced | report_to, group)?;
    await_reports(pool, &reports, before, 3, "group")?;
    finish(pool, &sender, "group sender")?;
    finish(pool, &member, "group member")?;
    finish(pool, &sequencer, "group sequencer")?;

    // The Bullet server last: after it starts it goes on working in the
    // background a while (its disk), and that work landed in board 0's
    // counts of the operations measured after it, by the host's timing.
    let bullet = pool_system::start_bullet(pool, 0)?;
    // It announces itself before it serves; the read starts once it answers.
    await_answer(pool, "the Bullet server", || {
        amoeba_ipc::interfaces::standard::Client::new(&mut *pool.rpc()).info(&bullet).is_ok()
    })?;
    let before = reported(&reports)?;
    let read = pool.exec_with_capability(0, "insn-bench", MODE_BULLET << 56 | report_to, bullet)?;
    await_reports(pool, &reports, before, 1, "Bullet read")?;
    finish(pool, &read, "Bullet read")?;
    drop(server);

    let reported =
        std::mem::take(&mut reports.lock().map_err(|_| anyhow::anyhow!("reports poisoned"))?.costs);
    figures.extend(reported.iter().map(Figure::of));
    for operation in OPERATIONS {
        if !figures.iter().any(|f| f.operation == operation) {
            bail!("no figure for \"{operation}\"");
        }
    }
    Ok(figures)
}

fn find<'a>(figures: &'a [Figure], operation: &str) -> Option<&'a Figure> {
    figures.iter().find(|f| f.operation == operation)
}

/// How far apart two counts are, as a share of the first.
pub fn difference(first: f64, second: f64) -> f64 {
    if first == 0.0 {
        if second == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (second - first).abs() / first
    }
}

/// The table: each operation's instructions in both runs, their difference,
/// its goal, and the wall-clock figure; the operations whose runs disagree.
pub fn table(first: &[Figure], second: &[Figure], wall: &[Figure]) -> (String, Vec<String>) {
    use std::fmt::Write;
    let mut text = format!(
        "{:<32} {:>12} {:>12} {:>8} {:>9} {:>12}\n",
        "operation", "run 1 insns", "run 2 insns", "diff", "goal", "wall us"
    );
    let mut disagree = Vec::new();
    for operation in OPERATIONS {
        let (Some(a), Some(b)) = (find(first, operation), find(second, operation)) else { continue };
        let diff = difference(a.instructions, b.instructions);
        if diff > AGREEMENT && !INFORMATIONAL.contains(&operation) {
            disagree.push(operation.to_string());
        }
        let goal = goal(operation).map_or("-".to_string(), |g| {
            format!("{}{:.0}", if a.instructions.max(b.instructions) <= g { "<=" } else { "> " }, g)
        });
        let micros =
            find(wall, operation).and_then(|w| w.micros).map_or("-".to_string(), |us| format!("{us:.2}"));
        let _ = writeln!(
            text,
            "{operation:<32} {:>12.0} {:>12.0} {:>7.2}% {goal:>9} {micros:>12}",
            a.instructions,
            b.instructions,
            diff * 100.0
        );
    }
    (text, disagree)
}

/// The whole measurement: two pools under `-icount` and one without, each
/// booted by `boot` (given a config of `BOARDS` boards with board 0's disk),
/// the table printed and the bar chart drawn into `plot_dir`. Fails if a
/// count of the two runs differs by more than [`AGREEMENT`].
pub fn run(run_dir: &Path, nucleus: &Path, mut boot: impl FnMut(PoolConfig) -> Result<Pool>) -> Result<()> {
    std::fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut runs = Vec::new();
    for (label, count_instructions) in [("run 1", true), ("run 2", true), ("wall clock", false)] {
        let mut config = PoolConfig::new(run_dir.join("instructions"), nucleus, BOARDS).with_disk(
            run_dir.join("instructions-disk.img"),
            DISK_BYTES,
            true,
        )?;
        for board in &mut config.boards {
            board.count_instructions = count_instructions;
        }
        let started = Instant::now();
        let pool = boot(config)?;
        let figures = measure(&pool, count_instructions);
        pool.shutdown();
        let figures = figures.context(label)?;
        println!("{label}: measured in {:.1} s", started.elapsed().as_secs_f64());
        runs.push(figures);
    }
    let (text, disagree) = table(&runs[0], &runs[1], &runs[2]);
    print!("{text}");
    let path = run_dir.join(PLOT);
    let bars: Vec<(String, f64, Option<f64>)> = OPERATIONS
        .iter()
        .filter_map(|op| find(&runs[0], op).map(|f| (op.to_string(), f.instructions, goal(op))))
        .collect();
    plots::instruction_bars(&path, "instructions per operation (QEMU -icount, PMU)", &bars)?;
    println!("bar chart drawn in {}", path.display());
    if !disagree.is_empty() {
        bail!(
            "counts of the two runs differ by more than {:.0} %: {}",
            AGREEMENT * 100.0,
            disagree.join(", ")
        );
    }
    println!("every count of the two runs agrees within {:.0} %", AGREEMENT * 100.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(operation: &str, instructions: f64) -> Figure {
        Figure { operation: operation.into(), instructions, micros: Some(1.5) }
    }

    #[test]
    fn runs_that_differ_by_more_than_one_percent_are_named() {
        let first = vec![figure("null system call", 100.0), figure("local null RPC", 2_000.0)];
        let second = vec![figure("null system call", 100.5), figure("local null RPC", 2_100.0)];
        let (text, disagree) = table(&first, &second, &first);
        assert_eq!(disagree, vec!["local null RPC".to_string()]);
        assert!(text.contains("null system call"), "{text}");
        assert!(text.contains("> 2000"), "over its goal: {text}");
    }

    #[test]
    fn a_cost_is_spread_over_its_repetitions() {
        let cost = Cost {
            operation: "x".into(),
            repetitions: 4,
            instructions: 1000,
            ticks: 62_500,
            ticks_per_second: 62_500_000,
        };
        let f = Figure::of(&cost);
        assert_eq!(f.instructions, 250.0);
        assert!((f.micros.unwrap() - 250.0).abs() < 1e-9);
        assert_eq!(difference(0.0, 0.0), 0.0);
        assert!(difference(0.0, 1.0).is_infinite());
    }
}
