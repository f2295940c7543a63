//! The group-broadcast benchmark of `just bench`: latency from a send to
//! its delivery at every member, and throughput, for PB and BB groups of
//! several sizes, each next to a board-to-board null RPC measured in the
//! same pool as the unit.
//!
//! Every member (program `group-bench`, one per board) notes its own
//! delivery times on its board's clock. The boards' clocks run off the
//! host's monotonic clock under QEMU, each with its own constant offset (the
//! board booted at its own moment), so the host reads each board's clock a
//! few times (pool control `TimeQuery`) and takes the offset from the
//! reading with the shortest round trip; half that round trip bounds the
//! error. A round's latency is the last member's delivery minus the send,
//! both on the host's clock.
//!
//! Next to each run stands the host CPU the pool's boards used during it
//! and how busy the whole host was: on a host of two shared cores, a large
//! group's figures may measure the lack of CPU rather than the protocol.
//! The curves by group size go into `group-latency.svg` and
//! `group-throughput.svg` in the run directory.

use crate::host_cpu::{CpuReading, CpuUse};
use crate::plots::{self, BySize};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::starter::{self, Announcement, Figure, Value};
use anyhow::{Context, Result, bail};
use qemu_pool::exec::Control;
use qemu_pool::pool::Pool;
use std::path::Path;
use std::time::{Duration, Instant};

/// Sends timed in the latency phase of each run.
const ROUNDS: u64 = 200;
/// Messages delivered in the throughput phase of each run (spread evenly
/// over the members, each sending its share as fast as the group takes it).
/// Kept small: 16 members sending 1 KiB by BB at once congest the pool
/// (every unstamped message is broadcast again every retransmission
/// interval), and more messages only make that run longer.
const THROUGHPUT_MESSAGES: u64 = 128;
/// Payload sizes: a short message, and the largest the nucleus carries
/// (the case the BB method exists for).
const MESSAGE_SIZES: [u64; 2] = [32, 1024];
/// Clock readings per board; the one with the shortest round trip counts.
const CLOCK_READINGS: usize = 30;
/// Get-port of the echo server answering the unit's null RPCs.
const RPC_UNIT_PUT_SEED: u64 = 0x0000_00be_0c12;
/// `rpc-bench` argument bit: null calls only.
const RPC_BENCH_NULL_ONLY: u64 = 1 << 63;
/// How long one run of the group program may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The files the curves go to, in the run directory.
pub const LATENCY_PLOT: &str = "group-latency.svg";
pub const THROUGHPUT_PLOT: &str = "group-throughput.svg";

/// `group-bench` argument bits (see the program).
const CREATE: u64 = 1 << 63;
const BY_BB: u64 = 1 << 62;
const LATENCY_SENDER: u64 = 1 << 61;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// Point-to-point to the sequencer, which broadcasts the message.
    Pb,
    /// The sender broadcasts, the sequencer broadcasts a short accept.
    Bb,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Pb => "PB",
            Method::Bb => "BB",
        })
    }
}

/// A board's clock against the host's: host µs = board µs + `offset_us`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ClockOffset {
    pub(crate) offset_us: f64,
    /// Half the shortest round trip: the offset is right to within this.
    pub(crate) uncertainty_us: f64,
}

/// The offset from readings `(sent, received, board)` (host µs, host µs,
/// board µs): the reading with the shortest round trip, taking the board's
/// time to be the middle of it.
fn clock_offset(readings: &[(f64, f64, u64)]) -> Option<ClockOffset> {
    let &(sent, received, board) = readings.iter().min_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))?;
    Some(ClockOffset {
        offset_us: (sent + received) / 2.0 - board as f64,
        uncertainty_us: (received - sent) / 2.0,
    })
}

/// The value at quantile `q` of `values` (sorted in place), as
/// [`crate::Summary`] picks them.
pub(crate) fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Host µs since `epoch`.
pub(crate) fn host_micros(epoch: Instant, at: Instant) -> f64 {
    at.duration_since(epoch).as_secs_f64() * 1e6
}

/// Every board's clock offset against `epoch`, read through a fresh host
/// port (one with no backlog of group traffic to wade through).
pub(crate) fn clock_offsets(pool: &Pool, epoch: Instant) -> Result<Vec<ClockOffset>> {
    let port = pool.new_host_port()?;
    pool.boards()
        .iter()
        .map(|board| {
            let mut readings = Vec::with_capacity(CLOCK_READINGS);
            for _ in 0..CLOCK_READINGS {
                let reading = port
                    .board_clock(board.mac, Duration::from_secs(2))?
                    .with_context(|| format!("board {} did not tell its time", board.spec.id))?;
                readings.push((
                    host_micros(epoch, reading.sent),
                    host_micros(epoch, reading.received),
                    reading.board_micros,
                ));
            }
            clock_offset(&readings).context("no clock readings")
        })
        .collect()
}

/// What one member reported (its board's clock, µs).
#[derive(Debug, Default, PartialEq)]
struct MemberTimes {
    delivered: Vec<u64>,
    sent: Vec<u64>,
    /// (start, end, count) of the throughput phase.
    throughput: Option<(u64, u64, u64)>,
    done: bool,
}

impl MemberTimes {
    /// From the figures a `group-bench` member reported to its starter.
    fn of(figures: &[Figure]) -> Result<MemberTimes> {
        let series = |name| starter::series(figures, name).with_context(|| format!("{name} is no series"));
        let throughput = match series("throughput")?[..] {
            [] => None,
            [start, end, count] => Some((start, end, count)),
            ref other => bail!("throughput of {} numbers", other.len()),
        };
        let done = figures.iter().any(|f| f.name == "done" && f.value == Value::Flag(true));
        Ok(MemberTimes { delivered: series("delivered")?, sent: series("sent")?, throughput, done })
    }
}

/// What one run (one group, one method) measured, in host µs.
pub(crate) struct RunResult {
    /// Per round: the last member's delivery minus the send.
    pub(crate) everywhere: Vec<f64>,
    /// Per round: the sender's own delivery minus its send (one clock).
    pub(crate) at_sender: Vec<f64>,
    /// Messages per second delivered at every member.
    pub(crate) throughput: f64,
    /// Where a round's time goes: the sequencer's (board 0's) delivery, the
    /// first and the last delivery at another member, each minus the send;
    /// and which member delivered last.
    pub(crate) parts: Vec<RoundParts>,
}

/// One latency round taken apart (host clock, µs after the send).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RoundParts {
    pub(crate) sequencer: f64,
    pub(crate) first_other: f64,
    pub(crate) last: f64,
    pub(crate) last_board: usize,
}

/// One group of `members` boards (0..members) with `resilience`: the
/// creator (sequencer) on board 0, the latency sender on board 1.
fn run_group(
    pool: &Pool,
    members: u16,
    resilience: u16,
    method: Method,
    message_size: u64,
    tag: u8,
) -> Result<(Vec<MemberTimes>, CpuUse, Vec<f64>)> {
    let pids: Vec<u32> = pool.boards().iter().filter_map(|b| b.pid()).collect();
    let cpu_before = CpuReading::take(&pids);
    let each_before: Vec<CpuReading> = pids.iter().map(|pid| CpuReading::take(&[*pid])).collect();
    let per_member = THROUGHPUT_MESSAGES / members as u64;
    let plan = (resilience as u64) << 56
        | (members as u64) << 48
        | (tag as u64) << 40
        | ROUNDS << 24
        | per_member << 12
        | message_size;
    let boards = &pool.boards()[..members as usize];
    let creator_argument = plan | CREATE | if method == Method::Bb { BY_BB } else { 0 };
    let creator = Exec::new("group-bench", &["group-bench"]).with_argument(creator_argument);
    let mut started = vec![pool_system::start_expecting(pool, 0, &creator)?];
    let capability = pool_system::wait_announced(
        pool,
        &started[0].0,
        &started[0].1,
        "group-bench",
        Duration::from_secs(30),
        |announcement| match announcement {
            Announcement::Group(capability) => Some(*capability),
            _ => None,
        },
    )?;
    for index in 1..boards.len() {
        let argument = plan | if index == 1 { LATENCY_SENDER } else { 0 };
        let member = Exec::new("group-bench", &["group-bench"])
            .with_argument(argument)
            .with_capability("ARG", capability);
        started.push(pool_system::start_expecting(pool, index, &member)?);
    }
    for (board, (process, _)) in boards.iter().zip(&started) {
        let status = pool.wait_process(process, RUN_TIMEOUT);
        if status != Some(0) {
            bail!(
                "group-bench ({method}, {members} members, {message_size} bytes) on board {} ended with \
                 {status:?}:\n{}",
                board.spec.id,
                pool.consoles(12)
            );
        }
    }
    let cpu = cpu_before.until(&CpuReading::take(&pids));
    let each = pids.iter().zip(&each_before).map(|(pid, b)| b.until(&CpuReading::take(&[*pid])).processes);
    let times = started.iter().map(|(_, told)| MemberTimes::of(&told.figures())).collect::<Result<_>>()?;
    Ok((times, cpu, each.collect()))
}

/// Puts one run's local times on the host's clock.
fn align(members: &[MemberTimes], offsets: &[ClockOffset]) -> Result<RunResult> {
    let rounds = ROUNDS as usize;
    let on_host = |member: usize, micros: u64| micros as f64 + offsets[member].offset_us;
    for (index, member) in members.iter().enumerate() {
        if member.delivered.len() != rounds || !member.done {
            bail!(
                "member on board {index} did not finish ({} of {rounds} deliveries)",
                member.delivered.len()
            );
        }
    }
    let sender = &members[1];
    if sender.sent.len() != rounds {
        bail!("the sender reported {} of {rounds} sends", sender.sent.len());
    }
    let mut everywhere = Vec::with_capacity(rounds);
    let mut at_sender = Vec::with_capacity(rounds);
    let mut parts = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let sent = on_host(1, sender.sent[round]);
        let after_send: Vec<f64> =
            (0..members.len()).map(|m| on_host(m, members[m].delivered[round]) - sent).collect();
        let (last_board, last) = after_send
            .iter()
            .copied()
            .enumerate()
            .fold((0, f64::MIN), |best, (m, t)| if t > best.1 { (m, t) } else { best });
        let first_other = after_send[1..].iter().copied().fold(f64::MAX, f64::min);
        everywhere.push(last);
        at_sender.push(sender.delivered[round] as f64 - sender.sent[round] as f64);
        parts.push(RoundParts { sequencer: after_send[0], first_other, last, last_board });
    }
    let expected = THROUGHPUT_MESSAGES / members.len() as u64 * members.len() as u64;
    let (mut start, mut end) = (f64::MAX, f64::MIN);
    for (index, member) in members.iter().enumerate() {
        let (first, last, count) =
            member.throughput.with_context(|| format!("no throughput from board {index}"))?;
        if count != expected {
            bail!("board {index} delivered {count} of {expected} messages");
        }
        start = start.min(on_host(index, first));
        end = end.max(on_host(index, last));
    }
    Ok(RunResult { everywhere, at_sender, throughput: expected as f64 / ((end - start) / 1e6), parts })
}

/// Median and 99th percentile of board-to-board null RPCs (µs), measured
/// by `rpc-bench` on board 1 against an echo server on board 0.
fn null_rpc(pool: &Pool) -> Result<(f64, f64)> {
    let put = amoeba_abi::GetPort(amoeba_abi::Port::from_u64(RPC_UNIT_PUT_SEED)).put_port();
    let echo = pool.exec(0, "echo-server", RPC_UNIT_PUT_SEED)?;
    let bench = Exec::new("rpc-bench", &["rpc-bench"]).with_argument(put.to_u64() | RPC_BENCH_NULL_ONLY);
    let reported = crate::run_reporting(pool, 1, &bench, Duration::from_secs(120));
    // The server would otherwise sit on board 0 through the group runs.
    let _ = pool.control(&echo.capability, Control::Destroy);
    let null = crate::timings(&reported?).into_iter().find(|(kind, _)| kind == "null");
    let (_, null) = null.context("rpc-bench reported no null timing")?;
    Ok((null.median.as_secs_f64() * 1e6, null.p99.as_secs_f64() * 1e6))
}

/// One line of the table: what one run (group size, method, message size)
/// measured, in µs and messages per second.
struct Row {
    size: u16,
    method: Method,
    message_size: u64,
    median: f64,
    p99: f64,
    at_sender: f64,
    throughput: f64,
    /// Host CPU during the run.
    cpu: CpuUse,
    /// Host cores each board used during the run (board 0 the sequencer,
    /// board 1 the latency sender).
    board_cores: Vec<f64>,
    /// The latency rounds taken apart.
    parts: Vec<RoundParts>,
    /// The unit: the board-to-board null RPC median of the same pool.
    rpc_median: f64,
}

impl Row {
    fn print(&self) {
        let rpc_rate = 1e6 / self.rpc_median;
        println!(
            "{:>4} {:>6} {:>5}  {:>8.0} us {:>5.2}x  {:>8.0} us {:>5.2}x  {:>6.0} us  {:>6.0} msg/s {:>5.2}x  {}{}",
            self.size,
            self.method,
            self.message_size,
            self.median,
            self.median / self.rpc_median,
            self.p99,
            self.p99 / self.rpc_median,
            self.at_sender,
            self.throughput,
            self.throughput / rpc_rate,
            self.cpu,
            self.per_board(),
        );
    }

    /// Where a round's time goes (medians): until the sequencer delivers,
    /// until the first other member does, until the last; and how often
    /// the board most often last was last (the same board each time points
    /// at the switch's fan-out order, any board at the host's scheduling).
    fn print_parts(&self) {
        let median = |value: &dyn Fn(&RoundParts) -> f64| {
            quantile(&mut self.parts.iter().map(value).collect::<Vec<f64>>(), 0.5)
        };
        let mut last_counts = vec![0usize; self.board_cores.len().max(self.size as usize)];
        for part in &self.parts {
            if let Some(count) = last_counts.get_mut(part.last_board) {
                *count += 1;
            }
        }
        let (board, count) =
            last_counts.iter().copied().enumerate().max_by_key(|&(_, c)| c).unwrap_or((0, 0));
        println!(
            "{:>4} {:>6} {:>5}  after the send (median us): sequencer delivers {:.0}, first other member {:.0}, \
             last {:.0}; the last was board {board} in {count} of {} rounds",
            self.size,
            self.method,
            self.message_size,
            median(&|p| p.sequencer),
            median(&|p| p.first_other),
            median(&|p| p.last),
            self.parts.len(),
        );
    }

    /// The sequencer's, the sender's and the busiest other board's cores:
    /// whether one board's processor, not the host, bounds the run.
    fn per_board(&self) -> String {
        let others = self.board_cores.get(2..).unwrap_or_default();
        let busiest = others.iter().copied().fold(0.0, f64::max);
        match self.board_cores.get(..2) {
            Some([sequencer, sender]) => {
                format!("; sequencer {sequencer:.2}, sender {sender:.2}, others at most {busiest:.2}")
            }
            _ => String::new(),
        }
    }
}

/// The figures of every run in one pool of `size` boards; prints the unit
/// line of the pool.
fn measure_size(pool: &Pool, size: u16, tag: &mut u8) -> Result<Vec<Row>> {
    let epoch = Instant::now();
    let (rpc_median, rpc_p99) = null_rpc(pool)?;
    let before = clock_offsets(pool, epoch)?;
    let mut runs = Vec::new();
    for message_size in MESSAGE_SIZES {
        for method in [Method::Pb, Method::Bb] {
            *tag = tag.wrapping_add(1);
            runs.push((method, message_size, run_group(pool, size, 0, method, message_size, *tag)?));
        }
    }
    let after = clock_offsets(pool, epoch)?;
    // The offsets should not move; how far they did is part of the error.
    let drift = before.iter().zip(&after).map(|(b, a)| (a.offset_us - b.offset_us).abs()).fold(0.0, f64::max);
    let offsets: Vec<ClockOffset> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| ClockOffset {
            offset_us: (a.offset_us + b.offset_us) / 2.0,
            uncertainty_us: a.uncertainty_us.max(b.uncertainty_us),
        })
        .collect();
    let uncertainty = offsets.iter().map(|o| o.uncertainty_us).fold(0.0, f64::max);
    let mut rows = Vec::new();
    for (method, message_size, (members, cpu, board_cores)) in runs {
        let mut result = align(&members, &offsets)?;
        rows.push(Row {
            size,
            method,
            message_size,
            median: quantile(&mut result.everywhere, 0.5),
            p99: quantile(&mut result.everywhere, 0.99),
            at_sender: quantile(&mut result.at_sender, 0.5),
            throughput: result.throughput,
            cpu,
            board_cores,
            parts: result.parts,
            rpc_median,
        });
    }
    rows.iter().for_each(Row::print);
    rows.iter().for_each(Row::print_parts);
    println!(
        "{size:>4} unit          null RPC board to board median {rpc_median:.0} us, p99 {rpc_p99:.0} us \
         ({:.0} calls/s); each board's clock aligned to +-{uncertainty:.0} us (drift {drift:.0} us)",
        1e6 / rpc_median
    );
    Ok(rows)
}

/// One run of PB broadcasts of `message_size` bytes in a group of boards
/// 0..`members` with `resilience` (as another benchmark's unit): its latency
/// and throughput on the host's clock, the largest error of the clock
/// alignment (µs), and the host CPU during the run.
pub(crate) fn pb_run(
    pool: &Pool,
    members: u16,
    resilience: u16,
    message_size: u64,
    tag: u8,
) -> Result<(RunResult, f64, CpuUse)> {
    let epoch = Instant::now();
    let before = clock_offsets(pool, epoch)?;
    let (times, cpu, _) = run_group(pool, members, resilience, Method::Pb, message_size, tag)?;
    let after = clock_offsets(pool, epoch)?;
    let offsets: Vec<ClockOffset> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| ClockOffset {
            offset_us: (a.offset_us + b.offset_us) / 2.0,
            uncertainty_us: a.uncertainty_us.max(b.uncertainty_us) + (a.offset_us - b.offset_us).abs(),
        })
        .collect();
    let error = offsets.iter().map(|o| o.uncertainty_us).fold(0.0, f64::max);
    Ok((align(&times, &offsets)?, error, cpu))
}

/// Draws latency (median and p99, in null RPCs) and throughput (in null
/// RPCs per second) by group size into `plot_dir`; the files drawn.
fn draw(rows: &[Row], plot_dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut latency = Vec::new();
    let mut throughput = Vec::new();
    for (colour, (message_size, method)) in
        MESSAGE_SIZES.iter().flat_map(|&b| [(b, Method::Pb), (b, Method::Bb)]).enumerate()
    {
        let of_run: Vec<&Row> =
            rows.iter().filter(|r| r.method == method && r.message_size == message_size).collect();
        let curve = |name: String, dashed: bool, value: &dyn Fn(&Row) -> f64| BySize {
            name,
            points: of_run.iter().map(|r| (r.size, value(r))).collect(),
            dashed,
            colour,
        };
        latency.push(curve(format!("{method} {message_size} B median"), false, &|r| r.median / r.rpc_median));
        latency.push(curve(format!("{method} {message_size} B p99"), true, &|r| r.p99 / r.rpc_median));
        throughput
            .push(curve(format!("{method} {message_size} B"), false, &|r| r.throughput * r.rpc_median / 1e6));
    }
    let (latency_path, throughput_path) = (plot_dir.join(LATENCY_PLOT), plot_dir.join(THROUGHPUT_PLOT));
    plots::by_group_size(
        &latency_path,
        "broadcast latency to delivery at every member",
        "latency (board-to-board null RPCs, log scale)",
        &latency,
        true,
    )?;
    plots::by_group_size(
        &throughput_path,
        "broadcast throughput, delivered at every member",
        "messages per null RPC time",
        &throughput,
        false,
    )?;
    Ok(vec![latency_path, throughput_path])
}

/// Runs the benchmark on a fresh pool of each size in `sizes` (booted by
/// `boot_pool`), prints the table and draws its curves into `plot_dir`.
pub fn run(sizes: &[u16], plot_dir: &Path, mut boot_pool: impl FnMut(u16) -> Result<Pool>) -> Result<()> {
    println!(
        "latency: {ROUNDS} sends, one at a time from a member that is not the sequencer, to delivery at \
         every member; throughput: {THROUGHPUT_MESSAGES} messages sent by all members at once, delivered at \
         every member"
    );
    println!(
        "{:>4} {:>6} {:>5}  {:>18} {:>18}  {:>9}  {:>20}  host CPU in the run",
        "size", "method", "bytes", "latency median", "latency p99", "at sender", "throughput",
    );
    let mut tag = 0u8;
    let mut rows = Vec::new();
    for &size in sizes {
        if size < 2 {
            bail!("a group needs at least 2 boards (got {size})");
        }
        let pool = boot_pool(size)?;
        let measured = measure_size(&pool, size, &mut tag);
        pool.shutdown();
        rows.extend(measured?);
    }
    println!(
        "(x: latency in null RPC medians, throughput in null RPCs per second; at sender: the sender's own \
         delivery, one clock; host CPU: cores the boards' QEMU processes used, and all of the host)"
    );
    for path in draw(&rows, plot_dir)? {
        println!("drawn: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_takes_the_shortest_round_trip() {
        // The board's clock reads 1000 us behind the host's.
        let readings = [(0.0, 400.0, 0), (1000.0, 1100.0, 50), (2000.0, 2600.0, 1200)];
        let offset = clock_offset(&readings).unwrap();
        assert_eq!(offset, ClockOffset { offset_us: 1000.0, uncertainty_us: 50.0 });
        assert!(clock_offset(&[]).is_none());
    }

    #[test]
    fn member_figures_are_read() {
        let figure = |name: &str, value| Figure { name: String::from(name), value };
        let figures = [
            figure("delivered", Value::Numbers(vec![10, 20])),
            figure("delivered", Value::Numbers(vec![30])),
            figure("sent", Value::Numbers(vec![5, 15, 25])),
            figure("throughput", Value::Numbers(vec![100, 200, 64])),
            figure("done", Value::Flag(true)),
        ];
        let times = MemberTimes::of(&figures).unwrap();
        assert_eq!(
            times,
            MemberTimes {
                delivered: vec![10, 20, 30],
                sent: vec![5, 15, 25],
                throughput: Some((100, 200, 64)),
                done: true
            }
        );
        let unfinished = MemberTimes::of(&figures[..3]).unwrap();
        assert_eq!((unfinished.throughput, unfinished.done), (None, false));
        assert!(MemberTimes::of(&[figure("throughput", Value::Numbers(vec![1]))]).is_err());
        assert!(MemberTimes::of(&[figure("sent", Value::Flag(true))]).is_err());
    }

    #[test]
    fn quantiles_match_the_summary() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        values.reverse();
        assert_eq!(quantile(&mut values, 0.5), 51.0);
        assert_eq!(quantile(&mut values, 0.99), 99.0);
    }
}
