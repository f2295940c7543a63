//! The RPC benchmark of `just bench`: null-call latency and throughput,
//! local (client and server on one board), board to board and host to
//! board, all in one pool of two boards, each next to a raw frame echo over
//! the same path as the unit:
//!
//! * host to board: the host times a pool-control echo of board 0;
//! * board to board: board 1 times a pool-control echo of board 0 (the
//!   peer echo: the host asks board 1, board 1 echoes board 0 from its
//!   network thread and reports the round trip on its own clock), half
//!   before and half after board 1's RPC run, so that drifting load on the
//!   host hits both alike.
//!
//! It prints the table and draws the latency distributions into
//! `rpc-latency.svg` in the run directory.
//!
//! [`across_uplink`] then measures a board-to-board null RPC between two
//! parts of a pool joined by their switches' VXLAN uplinks through the Linux
//! kernel's `vxlan` devices and bridge (the network namespaces of
//! `switch::lab`, which need root), against the same call within one switch,
//! in one run.

use crate::plots::{self, Samples};
use crate::{Summary, echo_round_trips};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::echo;
use anyhow::{Context, Result};
use qemu_pool::pool::{Pool, PoolConfig, UplinkSetting};
use std::path::Path;
use std::time::{Duration, Instant};
use vswitch::lab::Lab;

/// Get-port seed of the echo server the calls go to.
const ECHO_PUT_SEED: u64 = 0x0000_00be_0c11;
/// Round trips of each frame echo, and null calls from the host.
const ROUND_TRIPS: usize = 2000;
/// Requests of each size in the host's throughput run.
const THROUGHPUT_RUNS: [(usize, usize); 2] = [(8 << 10, 200), (1 << 20, 8)];
/// How long an `rpc-bench` run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// The file the distributions go to, in the run directory.
pub const LATENCY_PLOT: &str = "rpc-latency.svg";

/// What `rpc-bench` reported from one board.
struct BoardRun {
    label: &'static str,
    null: Summary,
    samples_us: Vec<f64>,
    kib_per_second_8k: Option<f64>,
    kib_per_second_1m: Option<f64>,
}

fn micros(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e6).collect()
}

fn summary_of_micros(samples: &[f64]) -> Option<Summary> {
    let mut durations: Vec<Duration> = samples.iter().map(|&us| Duration::from_secs_f64(us / 1e6)).collect();
    Summary::of(&mut durations)
}

/// Runs `rpc-bench` on `board` against the echo server; what it reported.
fn board_run(pool: &Pool, index: usize, label: &'static str, put: amoeba_abi::Port) -> Result<BoardRun> {
    let exec = Exec::new("rpc-bench", &["rpc-bench"]).with_argument(put.to_u64());
    let reported = crate::run_reporting(pool, index, &exec, RUN_TIMEOUT)
        .with_context(|| format!("rpc-bench {label}"))?;
    let samples: Vec<f64> = reported
        .series("samples")
        .with_context(|| format!("rpc-bench {label}: samples that are no series"))?
        .into_iter()
        .map(|us| us as f64)
        .collect();
    let null = summary_of_micros(&samples).with_context(|| format!("rpc-bench {label}: no samples"))?;
    let kib_per_second = |name: &str| crate::unsigned(&reported, name).ok().map(|value| value as f64);
    Ok(BoardRun {
        label,
        null,
        samples_us: samples,
        kib_per_second_8k: kib_per_second("8KiB-KiB/s"),
        kib_per_second_1m: kib_per_second("1MiB-KiB/s"),
    })
}

/// `rounds` peer echoes: board `via` echoes board `target`; its round trips.
fn peer_echoes(
    pool: &Pool,
    via: usize,
    target: usize,
    rounds: usize,
    first_id: u32,
) -> Result<Vec<Duration>> {
    let (via, target) = (pool.boards()[via].mac, pool.boards()[target].mac);
    (0..rounds)
        .map(|i| {
            let id = first_id.wrapping_add(i as u32);
            pool.host()
                .peer_echo_round_trip(via, target, id, Duration::from_secs(2))?
                .with_context(|| format!("peer echo {id} from {via} to {target} was not answered"))
        })
        .collect()
}

/// Null calls and throughput from the host, through its own FLIP client.
fn host_calls(pool: &Pool, put: amoeba_abi::Port) -> Result<(Vec<Duration>, Vec<f64>)> {
    let mut host = host_station::rpc_client::RpcClient::new(pool.new_host_port()?);
    let service = amoeba_abi::Capability::for_port(put);
    let mut call = |size: usize| -> Result<Duration> {
        let buf = vec![0x5a; size];
        let start = Instant::now();
        echo::Client::new(&mut host)
            .sink(&service, &buf)
            .map_err(|status| anyhow::anyhow!("host trans failed: {status}"))?;
        Ok(start.elapsed())
    };
    for _ in 0..10 {
        call(0)?; // locate the server, warm up
    }
    let null = (0..ROUND_TRIPS).map(|_| call(0)).collect::<Result<Vec<_>>>()?;
    let mut throughput = Vec::new();
    for (size, count) in THROUGHPUT_RUNS {
        let total: Duration = (0..count).map(|_| call(size)).sum::<Result<Duration>>()?;
        throughput.push((size * count) as f64 / 1024.0 / total.as_secs_f64());
    }
    Ok((null, throughput))
}

/// Runs the benchmark on `pool` (two boards or more), prints it, and draws
/// the distributions into `plot_dir`.
pub fn run(pool: &Pool, plot_dir: &Path) -> Result<()> {
    let put = amoeba_abi::GetPort(amoeba_abi::Port::from_u64(ECHO_PUT_SEED)).put_port();
    pool.exec(0, "echo-server", ECHO_PUT_SEED)?;

    let mut host_echo = echo_round_trips(pool.host(), pool.boards()[0].mac, ROUND_TRIPS, 1)?;
    let (host_null, host_throughput) = host_calls(pool, put)?;
    let local = board_run(pool, 0, "local (same board)", put)?;
    let mut peer_echo = peer_echoes(pool, 1, 0, ROUND_TRIPS / 2, 1)?;
    let remote = board_run(pool, 1, "board to board", put)?;
    peer_echo.extend(peer_echoes(pool, 1, 0, ROUND_TRIPS / 2, 1 + ROUND_TRIPS as u32 / 2)?);

    let (host_echo_us, host_null_us, peer_echo_us) =
        (micros(&host_echo), micros(&host_null), micros(&peer_echo));
    let host_frame = Summary::of(&mut host_echo).context("no samples")?;
    let peer_frame = Summary::of(&mut peer_echo).context("no samples")?;
    let host_rpc = Summary::of(&mut host_null.clone()).context("no samples")?;
    let unit = |summary: &Summary, of: &Summary| summary.median.as_secs_f64() / of.median.as_secs_f64();
    let tail = |summary: &Summary| summary.p99.as_secs_f64() / summary.median.as_secs_f64();

    println!("frame echo host->board      {host_frame}");
    println!("frame echo board to board   {peer_frame}  (timed by board 1)");
    println!(
        "null RPC host->board        {host_rpc}  = {:.2}x host frame echo, p99 {:.2}x median",
        unit(&host_rpc, &host_frame),
        tail(&host_rpc)
    );
    for run in [&local, &remote] {
        println!(
            "null RPC {:<18}  {}  = {:.2}x board frame echo, p99 {:.2}x median",
            run.label,
            run.null,
            unit(&run.null, &peer_frame),
            tail(&run.null)
        );
    }
    println!(
        "throughput host->board      8 KiB requests {:>8.0} KiB/s, 1 MiB requests {:>8.0} KiB/s",
        host_throughput[0], host_throughput[1]
    );
    for run in [&local, &remote] {
        if let (Some(kib8), Some(mib1)) = (run.kib_per_second_8k, run.kib_per_second_1m) {
            println!(
                "throughput {:<18}  8 KiB requests {kib8:>8.0} KiB/s, 1 MiB requests {mib1:>8.0} KiB/s",
                run.label
            );
        }
    }

    let path = plot_dir.join(LATENCY_PLOT);
    let sets = [
        Samples { name: "frame echo, board to board", micros: &peer_echo_us },
        Samples { name: "null RPC, board to board", micros: &remote.samples_us },
        Samples { name: "frame echo, host to board", micros: &host_echo_us },
        Samples { name: "null RPC, host to board", micros: &host_null_us },
        Samples { name: "null RPC, local (same board)", micros: &local.samples_us },
    ];
    plots::latency_distribution(&path, "null RPC and frame echo latency", &sets)?;
    println!("latency distributions drawn in {}", path.display());
    Ok(())
}

/// Board-to-board null RPC across a VXLAN uplink against the same within one
/// switch: part A (boards 0 and 1) and part B (board 2), each on a switch
/// whose uplink lives in a network namespace of a [`Lab`]; the echo server
/// on board 0 is called by board 1 (same switch) and by board 2 (through the
/// kernel's VXLAN and bridge). Without the namespaces (not root), it says so
/// and skips the figure.
pub fn across_uplink(run_dir: &Path, nucleus: &Path) -> Result<()> {
    let lab = match Lab::create() {
        Ok(lab) => lab,
        Err(error) => {
            println!("null RPC across a VXLAN uplink: skipped, no network namespaces here: {error:#}");
            return Ok(());
        }
    };
    let uplink = |index: usize| UplinkSetting {
        vxlan: lab.parts[index].vxlan.clone(),
        namespace: Some(lab.parts[index].namespace.clone()),
    };
    let mut config_a = PoolConfig::new(run_dir.join("uplink-a"), nucleus, 2);
    config_a.uplink = Some(uplink(0));
    let mut config_b = PoolConfig::new(run_dir.join("uplink-b"), nucleus, 1).with_first_board(2)?;
    config_b.uplink = Some(uplink(1));
    let part_a = Pool::boot(config_a)?;
    let part_b = Pool::boot(config_b)?;
    let put = amoeba_abi::GetPort(amoeba_abi::Port::from_u64(ECHO_PUT_SEED)).put_port();
    part_a.exec(0, "echo-server", ECHO_PUT_SEED)?;
    let local = board_run(&part_a, 1, "within one switch", put)?;
    let across = board_run(&part_b, 0, "across the uplink", put)?;
    let tail = |summary: &Summary| summary.p99.as_secs_f64() / summary.median.as_secs_f64();
    println!(
        "null RPC within one switch   {}  (board 1 -> board 0), p99 {:.2}x median",
        local.null,
        tail(&local.null)
    );
    println!(
        "null RPC across the uplink   {}  (board 2 -> board 0 through the kernel's vxlan and bridge) = {:.2}x within one switch, p99 {:.2}x median",
        across.null,
        across.null.median.as_secs_f64() / local.null.median.as_secs_f64(),
        tail(&across.null)
    );
    let uplink = part_b.switch().uplink_stats();
    if let Some(uplink) = uplink {
        println!("part B's {uplink}");
    }
    part_b.shutdown();
    part_a.shutdown();
    drop(lab);
    Ok(())
}
