//! The directory benchmark of `just bench` (`--only directory`): the
//! replicated directory service against what it is made of, measured side by
//! side in one pool of four boards — board 0 with a fresh disk and the Bullet
//! server, the three replicas on boards 0–2, clients on board 3 and the host —
//! and reported as ratios (the goals of issues 13 and 22):
//!
//! * a lookup of a one-name path, from the host and from board 3, in units of
//!   a null RPC on the same path (to an echo server on board 1, a replica's
//!   board); a replica holding a read lease answers it alone;
//! * an update (a chmod), in units of the broadcast latency of a group like
//!   the directory's own — three members on boards 0–2, resilience 1, PB, a
//!   message as long as the update's envelope — run by `group-bench` before
//!   and after the latency measurements (send to delivery at every member);
//! * updates per second from several clients at once against the same
//!   group's messages per second (every member sending at once);
//! * lookups per second directed at one, two and three replicas by their own
//!   ports (reads should scale with replicas), and through the service port.
//!
//! Where an update's time goes is printed next to it: its parts measured
//! apart (the client's RPC and a confirmation ~ a null RPC, the broadcast, a
//! raw write and a flush of one and of eight blocks from board 3 to board 0's
//! disk, as a replica's anchor write), and the replicas' own account of the
//! updates they took (`STD_STATUS`: request to delivery in the order, to
//! applied after their log write, to stable after every lease holder's
//! confirmation). The throughput clients start together (the host reads every
//! board's clock and gives each client its start on its own clock); the loads
//! take turns, round by round, and each line gives the host cores each board,
//! this program (the switch and the host's clients) and the whole host used.

use crate::Summary;
use crate::group::ClockOffset;
use crate::host_cpu::CpuReading;
use crate::system::{board_pids, called, cpu_line, kind_of, null_calls, row, summary, timed, times};
use amoeba_abi::{Capability, Check, GetPort, Port, Rights};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::directory::{MaskChange, NewRow};
use amoeba_ipc::interfaces::{disk, soap};
use anyhow::{Context, Result};
use directory_server::protocol::Envelope;
use directory_server::{ReplicaReport, Update, UpdateTimings};
use host_station::bootstrap_server::Expected;
use host_station::rpc_client::RpcClient;
use pool_system::{self, directory::DirectoryService};
use qemu_pool::pool::Pool;
use std::time::{Duration, Instant};

/// Boards of the section's pool.
pub const DIRECTORY_BOARDS: u16 = 4;
/// Size of board 0's disk.
pub const DIRECTORY_DISK_BYTES: u64 = 64 << 20;
/// The replicas' boards.
const REPLICA_BOARDS: [usize; 3] = [0, 1, 2];
/// The board of the board client (no replica there).
const CLIENT_BOARD: usize = 3;
/// The board of the echo server of the null-RPC unit (a replica's board).
const ECHO_BOARD: usize = 1;
/// Get-port seed of that echo server.
const ECHO_SEED: u64 = 0x0000_00be_0c31;
/// Bytes at the end of the disk kept from the Bullet server for raw writes.
const RAW_AREA: u64 = 1 << 20;
/// Rounds of (null RPC, lookup, update) from the host and from the board.
const LATENCY_ROUNDS: usize = 300;
/// How long each throughput run lasts, and the rounds of runs.
const THROUGHPUT_RUN: Duration = Duration::from_secs(2);
const THROUGHPUT_ROUNDS: usize = 3;
/// Time the host gives the clients to start before a throughput run.
const START_DELAY: Duration = Duration::from_millis(1000);
/// Client threads on the client board, and on the host, in throughput runs.
const BOARD_THREADS: usize = 12;
const HOST_THREADS: usize = 4;
/// How long a board program may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// Tag of the `group-bench` run (names its group's port and its output).
const GROUP_TAG: u8 = 0xd1;
/// Amoeba's triplicated group directory service (1993, with NVRAM).
const AMOEBA_LOOKUPS_PER_SECOND: f64 = 627.0;
const AMOEBA_UPDATES_PER_SECOND: f64 = 88.0;
/// The row every lookup finds, and the rows the updates change.
const TARGET: &str = "target";
const HOST_ROW: &str = "row-host";
const BOARD_ROW: &str = "row-board";

fn row_name(n: usize) -> String {
    format!("row-{n}")
}

/// Column masks for update `n` (alternating, so each one changes the row).
fn masks(n: usize) -> Vec<Rights> {
    vec![Rights(0xff), Rights(if n.is_multiple_of(2) { 0x0f } else { 0x07 }), Rights(0x02)]
}

fn echo_service() -> Capability {
    Capability::for_port(GetPort(Port::from_u64(ECHO_SEED)).put_port())
}

/// A capability of no server, for the rows.
fn some_file(n: u32) -> Capability {
    Capability::owner(Port::from_u64(0x0000_00f1_1e00), n, Check([n as u8, 1, 2, 3, 4, 5]))
}

/// The directory service up, with the rows the measurements use.
struct Setup {
    service: DirectoryService,
    root: Capability,
    /// Raw blocks at the end of board 0's disk.
    raw: Capability,
}

fn set_up(pool: &Pool) -> Result<Setup> {
    let whole = pool_system::disk_capability(pool, 0, 0, 0)?;
    let geometry = called("disk geometry", disk::Client::new(&mut *pool.rpc()).geometry(&whole))?;
    let raw_blocks = RAW_AREA / geometry.block_size as u64;
    let raw_first = geometry.block_count.checked_sub(raw_blocks).context("the disk is too small")?;
    let bullet_blocks =
        u32::try_from(raw_first - pool_system::ANCHOR_BLOCKS).context("the disk is too large")?;
    let raw = pool_system::disk_capability(pool, 0, raw_first, raw_blocks as u32)?;
    let (_, bullet) = pool_system::start_bullet_in(pool, 0, pool_system::ANCHOR_BLOCKS, bullet_blocks, &[])?;
    let service = DirectoryService::start(pool, bullet, &REPLICA_BOARDS)?;
    let root = service.root;
    let mut rpc = pool.rpc();
    let mut soap = soap::Client::new(&mut *rpc);
    let rows = [TARGET, HOST_ROW, BOARD_ROW]
        .map(String::from)
        .into_iter()
        .chain((0..BOARD_THREADS + HOST_THREADS).map(row_name));
    for (n, name) in rows.enumerate() {
        let new = NewRow { name, caps: vec![some_file(n as u32)], masks: masks(0) };
        called("appending a row", soap.append(&root, &new))?;
    }
    Ok(Setup { service, root, raw })
}

/// Every replica's status.
fn statuses(setup: &Setup, rpc: &mut RpcClient) -> Result<Vec<ReplicaReport>> {
    (0..REPLICA_BOARDS.len() as u8)
        .map(|r| called("replica status", setup.service.status(&mut *rpc, r)))
        .collect()
}

/// What the replicas did between two readings of their statuses: the calls
/// each answered on the service port, and the parts of the updates they
/// took, summed over the replicas.
fn replicas_since(before: &[ReplicaReport], after: &[ReplicaReport]) -> (Vec<u64>, UpdateTimings) {
    let answered = after.iter().zip(before).map(|(a, b)| a.answered - b.answered).collect();
    let mut parts = UpdateTimings::default();
    for (a, b) in after.iter().zip(before) {
        let (a, b) = (a.updates, b.updates);
        parts.count += a.count - b.count;
        parts.ordering_us += a.ordering_us - b.ordering_us;
        parts.logging_us += a.logging_us - b.logging_us;
        parts.confirming_us += a.confirming_us - b.confirming_us;
    }
    (answered, parts)
}

/// The replicas' own account of the updates they took: mean µs per part.
fn parts_line(who: &str, (answered, parts): &(Vec<u64>, UpdateTimings)) -> String {
    let mean = |sum: u64| sum as f64 / parts.count.max(1) as f64;
    let answered: Vec<String> = answered.iter().map(u64::to_string).collect();
    format!(
        "  {who}: calls answered by replicas 0/1/2: {}; at the replica taking it, an update's mean us: \
         request to delivery in the order {:.0}, to applied (own log write) {:.0}, to stable (peers' \
         confirmations) {:.0} ({} updates)",
        answered.join("/"),
        mean(parts.ordering_us),
        mean(parts.logging_us),
        mean(parts.confirming_us),
        parts.count
    )
}

/// The host's null RPCs, lookups and updates, taking turns.
struct HostLatency {
    null: Summary,
    lookup: Summary,
    update: Summary,
    replicas: (Vec<u64>, UpdateTimings),
}

fn host_latency(setup: &Setup, rpc: &mut RpcClient) -> Result<HostLatency> {
    let service = echo_service();
    let before = statuses(setup, rpc)?;
    let (mut null, mut lookups, mut updates) = (Vec::new(), Vec::new(), Vec::new());
    null_calls(rpc, &service, 5)?;
    for n in 0..LATENCY_ROUNDS {
        null.extend(null_calls(rpc, &service, 1)?);
        let mut soap = soap::Client::new(&mut *rpc);
        lookups.push(timed(|| called("lookup", soap.lookup(&setup.root, TARGET)))?.0);
        let change = MaskChange { name: HOST_ROW.into(), masks: masks(n) };
        updates.push(timed(|| called("update", soap.chmod(&setup.root, &change)))?.0);
    }
    Ok(HostLatency {
        null: summary(&mut null)?,
        lookup: summary(&mut lookups)?,
        update: summary(&mut updates)?,
        replicas: replicas_since(&before, &statuses(setup, rpc)?),
    })
}

/// `dir-bench` on `board` with `argv` (after the program's name) and the
/// capabilities it needs; what it reported.
fn dir_bench(pool: &Pool, setup: &Setup, board: usize, argv: &[String]) -> Result<Expected> {
    let mut args = vec![String::from("dir-bench")];
    args.extend_from_slice(argv);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut exec = Exec::new("dir-bench", &args)
        .with_capability("ROOT", setup.root)
        .with_capability("ECHO", echo_service())
        .with_capability("DISK", setup.raw);
    for r in 0..REPLICA_BOARDS.len() as u8 {
        exec = exec.with_capability(&format!("REPLICA{r}"), setup.service.identity.replica_capability(r));
    }
    // Each throughput thread holds a transaction in flight, and reporting
    // takes one more: more than the default quota allows.
    exec.quotas.transactions = exec.quotas.transactions.max(BOARD_THREADS as u32 + 2);
    crate::run_reporting(pool, board, &exec, RUN_TIMEOUT).with_context(|| format!("dir-bench {argv:?}"))
}

// ------------------------------------------------------------------ throughput

/// What a throughput run does: lookups at the first `n` replicas' own ports
/// (0: through the service port), or updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Lookups(usize),
    Updates,
}

/// Calls made in one throughput run, and the window they were made in (host µs).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Made {
    calls: usize,
    from: f64,
    to: f64,
}

impl Made {
    /// All of `parts` together: their calls over the union of their windows.
    fn together(parts: &[Made]) -> Made {
        Made {
            calls: parts.iter().map(|p| p.calls).sum(),
            from: parts.iter().map(|p| p.from).fold(f64::MAX, f64::min),
            to: parts.iter().map(|p| p.to).fold(f64::MIN, f64::max),
        }
    }
}

/// What a throughput run of `dir-bench` reported (`figure` gives its
/// unsigned figures: `calls`, `from-us`, `to-us`), with the board's clock
/// put on the host's.
fn made_on_board(figure: impl Fn(&str) -> Result<u64>, offset: &ClockOffset) -> Result<Made> {
    Ok(Made {
        calls: figure("calls")? as usize,
        from: figure("from-us")? as f64 + offset.offset_us,
        to: figure("to-us")? as f64 + offset.offset_us,
    })
}

/// One host client thread's calls from `start` until `end` (µs since `epoch`).
fn host_client(
    rpc: &mut RpcClient,
    setup: &Setup,
    load: Load,
    thread: usize,
    epoch: Instant,
    (start, end): (f64, f64),
) -> Result<Made> {
    let now = || crate::group::host_micros(epoch, Instant::now());
    let ports: Vec<Capability> =
        (0..REPLICA_BOARDS.len() as u8).map(|r| setup.service.identity.replica_capability(r)).collect();
    let call = |rpc: &mut RpcClient, n: usize| -> Result<()> {
        match load {
            Load::Lookups(0) => {
                called("lookup", soap::Client::new(rpc).lookup(&setup.root, TARGET)).map(drop)
            }
            Load::Lookups(replicas) => {
                let port = &ports[n % replicas];
                let mut client = directory_server::service::replica_port::Client::new(rpc);
                called("lookup", client.lookup(port, &(setup.root, TARGET.into()))).map(drop)
            }
            Load::Updates => {
                let change = MaskChange { name: row_name(BOARD_THREADS + thread), masks: masks(n) };
                called("update", soap::Client::new(rpc).chmod(&setup.root, &change))
            }
        }
    };
    call(rpc, thread)?; // locate the server
    std::thread::sleep(Duration::from_secs_f64(((start - now()) / 1e6).max(0.0)));
    let from = now();
    let mut calls = 0;
    while now() < end {
        call(rpc, thread + calls)?;
        calls += 1;
    }
    Ok(Made { calls, from, to: now() })
}

/// CPU use in the window of a throughput run: the boards together, each
/// board, this program (the switch and the host's clients), the whole host.
#[derive(Clone, Debug, Default)]
struct WindowCpu {
    boards: f64,
    by_board: Vec<f64>,
    this_program: f64,
    host: f64,
}

/// Readings of every board, of this program, and of all of them at once.
fn cpu_readings(pids: &[u32]) -> (CpuReading, Vec<CpuReading>) {
    let mut each: Vec<CpuReading> = pids.iter().map(|pid| CpuReading::take(&[*pid])).collect();
    each.push(CpuReading::take(&[std::process::id()]));
    (CpuReading::take(pids), each)
}

fn window_cpu(pids: &[u32], (all, each): &(CpuReading, Vec<CpuReading>)) -> WindowCpu {
    let (all_after, each_after) = cpu_readings(pids);
    let mut used: Vec<f64> = each.iter().zip(&each_after).map(|(a, b)| a.until(b).processes).collect();
    let this_program = used.pop().unwrap_or(0.0);
    let total = all.until(&all_after);
    WindowCpu { boards: total.processes, by_board: used, this_program, host: total.host.unwrap_or(0.0) }
}

/// One throughput run: `dir-bench` on the client board and the host's threads
/// at once; the calls of each, and the CPU used while they ran.
fn throughput(pool: &Pool, setup: &Setup, load: Load) -> Result<(Made, Made, WindowCpu)> {
    let epoch = Instant::now();
    let offsets = crate::group::clock_offsets(pool, epoch)?;
    let offset = offsets[CLIENT_BOARD];
    let start = crate::group::host_micros(epoch, Instant::now() + START_DELAY);
    let end = start + THROUGHPUT_RUN.as_secs_f64() * 1e6;
    let (mode, which) = match load {
        Load::Lookups(n) => ("lookups", n),
        Load::Updates => ("updates", 0),
    };
    let argv = [
        mode.to_string(),
        format!("{:.0}", start - offset.offset_us),
        THROUGHPUT_RUN.as_micros().to_string(),
        BOARD_THREADS.to_string(),
        which.to_string(),
    ];
    let pids = board_pids(pool);
    let sleep_until = |at: f64| {
        let now = crate::group::host_micros(epoch, Instant::now());
        std::thread::sleep(Duration::from_secs_f64(((at - now) / 1e6).max(0.0)));
    };
    std::thread::scope(|scope| {
        let cpu = scope.spawn(|| {
            sleep_until(start);
            let readings = cpu_readings(&pids);
            sleep_until(end);
            window_cpu(&pids, &readings)
        });
        let threads: Vec<_> = (0..HOST_THREADS)
            .map(|thread| {
                let port = pool.new_host_port();
                scope.spawn(move || {
                    let mut rpc = RpcClient::new(port?);
                    host_client(&mut rpc, setup, load, thread, epoch, (start, end))
                })
            })
            .collect();
        let reported = dir_bench(pool, setup, CLIENT_BOARD, &argv);
        let host = threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow::anyhow!("a host client panicked"))?)
            .collect::<Result<Vec<Made>>>()?;
        let cpu = cpu.join().map_err(|_| anyhow::anyhow!("the CPU reader panicked"))?;
        let reported = reported?;
        let board = made_on_board(|name| crate::unsigned(&reported, name), &offset)?;
        Ok((board, Made::together(&host), cpu))
    })
}

/// Calls and seconds, summed over runs.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    calls: usize,
    seconds: f64,
}

impl Rate {
    fn add(&mut self, made: &Made) {
        self.calls += made.calls;
        self.seconds += (made.to - made.from) / 1e6;
    }
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }
}

/// The throughput runs of one load, over every round.
#[derive(Clone, Debug, Default)]
struct Tally {
    board: Rate,
    host: Rate,
    all: Rate,
    cpu: Vec<WindowCpu>,
}

impl Tally {
    fn add(&mut self, (board, host, cpu): (Made, Made, WindowCpu)) {
        self.board.add(&board);
        self.host.add(&host);
        self.all.add(&Made::together(&[board, host]));
        self.cpu.push(cpu);
    }

    /// The mean cores `boards` used together in the runs.
    fn mean_cores(&self, boards: &[usize]) -> f64 {
        let used: f64 =
            self.cpu.iter().map(|c| boards.iter().filter_map(|b| c.by_board.get(*b)).sum::<f64>()).sum();
        used / self.cpu.len().max(1) as f64
    }

    /// Its line: the rate of all clients and of each, and the mean CPU use.
    fn line(&self, label: &str) -> String {
        let runs = self.cpu.len().max(1) as f64;
        let mean = |f: &dyn Fn(&WindowCpu) -> f64| self.cpu.iter().map(f).sum::<f64>() / runs;
        let boards = self.cpu.first().map_or(0, |c| c.by_board.len());
        let by_board: Vec<String> = (0..boards)
            .map(|b| format!("{:.2}", mean(&|c| c.by_board.get(b).copied().unwrap_or(0.0))))
            .collect();
        format!(
            "{label:<40} {:>6.0}/s (board {CLIENT_BOARD} {:>5.0}/s, host {:>5.0}/s)  cores: boards {:.2} \
             ({}), this program {:.2}, host busy {:.2}",
            self.all.per_second(),
            self.board.per_second(),
            self.host.per_second(),
            mean(&|c| c.boards),
            by_board.join("/"),
            mean(&|c| c.this_program),
            mean(&|c| c.host),
        )
    }
}

/// Every load's throughput runs, taking turns round by round so that
/// drifting load on the host hits them alike.
fn throughputs(pool: &Pool, setup: &Setup, loads: &[Load]) -> Result<Vec<Tally>> {
    let mut tallies = vec![Tally::default(); loads.len()];
    for _ in 0..THROUGHPUT_ROUNDS {
        for (load, tally) in loads.iter().zip(&mut tallies) {
            tally.add(throughput(pool, setup, *load)?);
        }
    }
    Ok(tallies)
}

// ------------------------------------------------------------------ the section

/// The length of an update's envelope in the group (a chmod of a row).
fn update_message_len(root: &Capability) -> u64 {
    let update = Update::Chmod { dir: *root, name: row_name(0), masks: masks(0) };
    Envelope::Update { req: 1, update }.encode().len() as u64
}

fn micros(summary: &Summary) -> f64 {
    summary.median.as_secs_f64() * 1e6
}

/// The broadcast unit: PB broadcasts in a group like the directory's, run
/// before and after the latency measurements (whose drift they then share).
struct Broadcast {
    message_len: u64,
    /// Per send (µs): delivery at every member, and at the sender.
    everywhere: Vec<f64>,
    at_sender: Vec<f64>,
    /// Messages per second of each run, every member sending at once.
    throughputs: Vec<f64>,
    clock_error: f64,
    cpu: Vec<crate::host_cpu::CpuUse>,
}

impl Broadcast {
    /// One run of `group-bench` on the replicas' boards, named `tag`.
    fn measure(pool: &Pool, message_len: u64, tag: u8) -> Result<Broadcast> {
        let members = REPLICA_BOARDS.len() as u16;
        let (run, clock_error, cpu) = crate::group::pb_run(pool, members, 1, message_len, tag)?;
        Ok(Broadcast {
            message_len,
            everywhere: run.everywhere,
            at_sender: run.at_sender,
            throughputs: vec![run.throughput],
            clock_error,
            cpu: vec![cpu],
        })
    }

    fn merged(mut self, other: Broadcast) -> Broadcast {
        self.everywhere.extend(other.everywhere);
        self.at_sender.extend(other.at_sender);
        self.throughputs.extend(other.throughputs);
        self.clock_error = self.clock_error.max(other.clock_error);
        self.cpu.extend(other.cpu);
        self
    }

    /// Median latency to delivery at every member (µs): the unit of updates.
    fn median(&self) -> f64 {
        crate::group::quantile(&mut self.everywhere.clone(), 0.5)
    }

    fn throughput(&self) -> f64 {
        self.throughputs.iter().sum::<f64>() / self.throughputs.len().max(1) as f64
    }

    fn print(&self) {
        let cpu: Vec<String> = self.cpu.iter().map(ToString::to_string).collect();
        println!(
            "{:<48} median {:>9.1} us  p99 {:>9.1} us  ({}) at the sender {:.1} us; clocks +-{:.0} us; {}",
            format!("broadcast, group of 3, r=1, PB, {} B", self.message_len),
            self.median(),
            crate::group::quantile(&mut self.everywhere.clone(), 0.99),
            self.everywhere.len(),
            crate::group::quantile(&mut self.at_sender.clone(), 0.5),
            self.clock_error,
            cpu.join("; ")
        );
    }
}

/// What the board client measured, and what the replicas said of its calls.
struct BoardLatency {
    figures: Vec<(String, Summary)>,
    replicas: (Vec<u64>, UpdateTimings),
}

fn board_latency(pool: &Pool, setup: &Setup, rpc: &mut RpcClient) -> Result<BoardLatency> {
    let before = statuses(setup, rpc)?;
    let argv = ["latency".into(), LATENCY_ROUNDS.to_string(), BOARD_ROW.into()];
    let reported = dir_bench(pool, setup, CLIENT_BOARD, &argv)?;
    Ok(BoardLatency {
        figures: crate::timings(&reported),
        replicas: replicas_since(&before, &statuses(setup, rpc)?),
    })
}

fn print_latency(host: &HostLatency, board: &BoardLatency, broadcast: &Broadcast) -> Result<()> {
    let kind = |name: &str| kind_of(&board.figures, name);
    let (board_null, board_lookup, board_update) = (kind("null")?, kind("lookup")?, kind("update")?);
    row(&format!("null RPC host -> board {ECHO_BOARD}"), &host.null, "");
    let note = format!("= {:>5.2}x null RPC (goal <= 1.3)", times(&host.lookup, &host.null));
    row("lookup from the host", &host.lookup, &note);
    row(&format!("null RPC board {CLIENT_BOARD} -> board {ECHO_BOARD}"), &board_null, "");
    let note = format!("= {:>5.2}x null RPC (goal <= 1.3)", times(&board_lookup, &board_null));
    row(&format!("lookup from board {CLIENT_BOARD}"), &board_lookup, &note);
    broadcast.print();
    let host_label = String::from("update from the host");
    let board_label = format!("update from board {CLIENT_BOARD}");
    for (label, update, null) in
        [(host_label, &host.update, &host.null), (board_label, &board_update, &board_null)]
    {
        let note = format!(
            "= {:>5.2}x broadcast (goal <= 2.5 on one shared disk), {:>5.1}x null RPC",
            micros(update) / broadcast.median(),
            times(update, null)
        );
        row(&label, update, &note);
    }
    let disk_op = |op: &str, blocks: usize| kind(&format!("{op}-{blocks}")).map(|s| micros(&s));
    println!(
        "  an update's parts (median us): the client's RPC ~ null RPC {:.0}; broadcast {:.0}; each replica's \
         anchor write to board 0's disk (one operation at a time there), as from board {CLIENT_BOARD}: \
         1 block {:.0} + flush {:.0}, 8 blocks {:.0} + flush {:.0}; a confirmation ~ null RPC {:.0}",
        micros(&board_null),
        broadcast.median(),
        disk_op("write", 1)?,
        disk_op("flush", 1)?,
        disk_op("write", 8)?,
        disk_op("flush", 8)?,
        micros(&board_null)
    );
    println!("{}", parts_line("host's calls", &host.replicas));
    println!("{}", parts_line(&format!("board {CLIENT_BOARD}'s calls"), &board.replicas));
    Ok(())
}

fn load_label(load: Load) -> String {
    match load {
        Load::Updates => String::from("updates (chmod, each thread its own row)"),
        Load::Lookups(0) => String::from("lookups through the service port"),
        Load::Lookups(1) => String::from("lookups at 1 replica"),
        Load::Lookups(n) => format!("lookups at {n} replicas"),
    }
}

/// The throughput runs and their ratios; (lookups/s at 3 replicas, updates/s).
fn print_throughput(pool: &Pool, setup: &Setup, broadcast: &Broadcast) -> Result<(f64, f64)> {
    println!(
        "-- throughput: {THROUGHPUT_ROUNDS} rounds of {} s per load, the loads taking turns; clients: \
         {BOARD_THREADS} threads on board {CLIENT_BOARD} and {HOST_THREADS} on the host, starting together; \
         cores used in the runs (boards {})",
        THROUGHPUT_RUN.as_secs(),
        (0..pool.boards().len()).map(|b| b.to_string()).collect::<Vec<_>>().join("/")
    );
    let loads = [Load::Updates, Load::Lookups(1), Load::Lookups(2), Load::Lookups(3), Load::Lookups(0)];
    let tallies = throughputs(pool, setup, &loads)?;
    let rate =
        |load: Load| loads.iter().position(|l| *l == load).map_or(0.0, |i| tallies[i].all.per_second());
    for (load, tally) in loads.iter().zip(&tallies) {
        println!("{}", tally.line(&load_label(*load)));
        if *load == Load::Updates {
            println!(
                "{:<40} {:>6.0}/s  updates / group messages = {:.2} (goal >= 0.8)",
                "group messages (3 members at once)",
                broadcast.throughput(),
                rate(Load::Updates) / broadcast.throughput()
            );
        }
    }
    let one = rate(Load::Lookups(1));
    let per_core: Vec<String> = (1..=REPLICA_BOARDS.len())
        .map(|k| {
            let tally = &tallies[loads.iter().position(|l| *l == Load::Lookups(k)).unwrap_or(0)];
            format!("{:.0}", tally.all.per_second() / tally.mean_cores(&REPLICA_BOARDS[..k]))
        })
        .collect();
    println!(
        "  lookups/s at 1, 2, 3 replicas = 1.00, {:.2}, {:.2} (reads should scale with replicas); \
         per core the replicas' boards used: {}",
        rate(Load::Lookups(2)) / one,
        rate(Load::Lookups(3)) / one,
        per_core.join(", ")
    );
    Ok((rate(Load::Lookups(3)), rate(Load::Updates)))
}

/// The `directory` section on a pool of [`DIRECTORY_BOARDS`] boards whose
/// board 0 has a fresh disk of [`DIRECTORY_DISK_BYTES`].
pub fn directory(pool: &Pool) -> Result<()> {
    let before = CpuReading::take(&board_pids(pool));
    let started = Instant::now();
    let setup = set_up(pool)?;
    println!("Bullet and 3 replicas up in {:.1?}", started.elapsed());
    pool.exec(ECHO_BOARD, "echo-server", ECHO_SEED)?;
    let message_len = update_message_len(&setup.root);
    let mut rpc = RpcClient::new(pool.new_host_port()?);
    let first = Broadcast::measure(pool, message_len, GROUP_TAG)?;
    let host = host_latency(&setup, &mut rpc)?;
    let board = board_latency(pool, &setup, &mut rpc)?;
    let broadcast = first.merged(Broadcast::measure(pool, message_len, GROUP_TAG + 1)?);
    println!("-- latency (lookup: one-name path; update: chmod of a row)");
    print_latency(&host, &board, &broadcast)?;
    let (lookups, updates) = print_throughput(pool, &setup, &broadcast)?;
    println!(
        "  anchor: Amoeba's triplicated group directory (1993, NVRAM) did {AMOEBA_LOOKUPS_PER_SECOND:.0} \
         lookups/s and {AMOEBA_UPDATES_PER_SECOND:.0} updates/s; here {lookups:.0} lookups/s (3 replicas) \
         and {updates:.0} updates/s"
    );
    println!("{}", cpu_line(&before, &board_pids(pool)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_figures_are_put_on_the_host_clock() {
        let reported = [("calls", 20), ("from-us", 5000), ("to-us", 6000)];
        let figure =
            |name: &str| reported.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).context("not reported");
        let offset = ClockOffset { offset_us: 50.0, uncertainty_us: 1.0 };
        let made = made_on_board(figure, &offset).unwrap();
        assert_eq!(made, Made { calls: 20, from: 5050.0, to: 6050.0 });
        let without_end = |name: &str| if name == "to-us" { figure("nothing") } else { figure(name) };
        assert!(made_on_board(without_end, &offset).is_err());
    }

    #[test]
    fn clients_together_count_over_the_union_of_their_windows() {
        let a = Made { calls: 100, from: 0.0, to: 1e6 };
        let b = Made { calls: 50, from: 0.5e6, to: 2e6 };
        let all = Made::together(&[a, b]);
        assert_eq!(all, Made { calls: 150, from: 0.0, to: 2e6 });
        let mut rate = Rate::default();
        rate.add(&all);
        assert_eq!(rate.per_second(), 75.0);
        rate.add(&Made { calls: 50, from: 5e6, to: 6e6 });
        assert_eq!(rate.per_second(), 200.0 / 3.0, "runs add their calls and their seconds");
    }
}
