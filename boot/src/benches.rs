//! `ping` and `bench`: each bench section boots the pool it needs and prints
//! its figures (the measuring is in `pool-bench`).

use crate::cli::*;
use crate::running::*;
use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use pool_bench::{EchoResponder, Summary, echo_round_trips};
use qemu_pool::Pool;
use qemu_pool::PoolConfig;
use std::time::{Duration, Instant};

pub(crate) fn ping(boards: u16, args: &PoolArgs) -> Result<()> {
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), boards);
    let (pool, elapsed) = boot_pool(config)?;
    println!("pool of {boards} boards ready in {:.2} s", elapsed.as_secs_f64());
    let mut unanswered = Vec::new();
    for (index, board) in pool.boards().iter().enumerate() {
        let payload = b"ping from the host";
        match pool.host().echo(board.mac, index as u32 + 1, payload, Duration::from_secs(2))? {
            Some(rtt) => println!(
                "board {:<3} {}  echo {} bytes  time {:.3} ms",
                board.spec.id,
                board.mac,
                payload.len(),
                rtt.as_secs_f64() * 1e3
            ),
            None => {
                println!("board {:<3} {}  no answer", board.spec.id, board.mac);
                unanswered.push(board.spec.id);
            }
        }
    }
    pool.shutdown();
    if !unanswered.is_empty() {
        bail!("boards {unanswered:?} did not answer");
    }
    Ok(())
}

pub(crate) fn bench(rounds: usize, boot_sizes: &[u16], args: &PoolArgs) -> Result<()> {
    println!("== frame echo: host -> board vs host -> host, same switch, {rounds} round trips each");
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), 1);
    let (pool, _) = boot_pool(config)?;
    let responder = EchoResponder::start(pool.new_host_port()?);
    let board = pool.boards()[0].mac;
    // Interleave the two in blocks so drifting machine load hits both alike.
    let block = 500.min(rounds.max(1));
    let (mut to_board, mut to_host) = (Vec::new(), Vec::new());
    let bar = ProgressBar::new((2 * rounds) as u64);
    let mut id = 1u32;
    while to_board.len() < rounds {
        let n = block.min(rounds - to_board.len());
        to_board.extend(echo_round_trips(pool.host(), board, n, id)?);
        id = id.wrapping_add(n as u32);
        to_host.extend(echo_round_trips(pool.host(), responder.mac(), n, id)?);
        id = id.wrapping_add(n as u32);
        bar.inc(2 * n as u64);
    }
    bar.finish_and_clear();
    drop(responder);
    pool.shutdown();
    let board_summary = Summary::of(&mut to_board).context("no samples")?;
    let host_summary = Summary::of(&mut to_host).context("no samples")?;
    println!("host -> board  {board_summary}");
    println!("host -> host   {host_summary}");
    println!(
        "ratio board/host-only: median {:.2}x  p99 {:.2}x",
        board_summary.median.as_secs_f64() / host_summary.median.as_secs_f64(),
        board_summary.p99.as_secs_f64() / host_summary.p99.as_secs_f64()
    );

    println!("\n== RPC: null call latency and throughput, with the frame echo as the unit");
    rpc_bench(args)?;

    println!("\n== idle boards: host CPU they use");
    idle_bench(args)?;

    println!("\n== nucleus: null syscall, thread switch, process creation (counter ticks, on one board)");
    nucleus_bench(args)?;

    println!("\n== pool boot time (start of QEMU to every board ready)");
    let mut times = Vec::new();
    for &size in boot_sizes {
        let config = PoolConfig::new(&args.run_dir, nucleus_path(args), size);
        let start = Instant::now();
        let (pool, _) = boot_pool(config)?;
        let elapsed = start.elapsed();
        pool.shutdown();
        println!("{size:>3} boards  {:.2} s", elapsed.as_secs_f64());
        times.push((size, elapsed));
    }
    if let (Some(first), Some(last)) = (times.first(), times.last())
        && first.0 != last.0
    {
        println!(
            "ratio {} boards / {} boards: {:.2}x",
            last.0,
            first.0,
            last.1.as_secs_f64() / first.1.as_secs_f64()
        );
    }
    Ok(())
}

pub(crate) fn group_bench(sizes: &[u16], args: &PoolArgs) -> Result<()> {
    println!(
        "\n== group broadcast: latency and throughput by group size, PB and BB, with a null RPC as the unit"
    );
    pool_bench::group::run(sizes, &args.run_dir, |size| {
        boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), size)).map(|(pool, _)| pool)
    })
}

/// Guest instruction counts per operation (see `pool_bench::instructions`).
pub(crate) fn instructions_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "== instructions: each operation's guest instructions under QEMU -icount (two runs), wall clock without"
    );
    pool_bench::instructions::run(&args.run_dir, &nucleus_path(args), |config| {
        boot_pool(config).map(|(pool, _)| pool)
    })
}

/// RPC latency and throughput (see `pool_bench::rpc`) in a pool of two boards, then a
/// board-to-board call across a VXLAN uplink against one within a switch.
pub(crate) fn rpc_bench(args: &PoolArgs) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 2))?;
    let result = pool_bench::rpc::run(&pool, &args.run_dir);
    pool.shutdown();
    result?;
    pool_bench::rpc::across_uplink(&args.run_dir, &nucleus_path(args))
}

/// The sections of the servers built on the nucleus (see `pool_bench::system`).
pub(crate) fn system_benches(args: &PoolArgs) -> Result<()> {
    processes_bench(args)?;
    bullet_bench(args)?;
    directory_bench(args)?;
    system_bench()
}

/// Remote process creation in a pool of two boards.
pub(crate) fn processes_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "\n== processes: creating a 64 KiB program on another board, in units of local creation and of a null RPC"
    );
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 2))?;
    let result = pool_bench::system::processes(&pool);
    pool.shutdown();
    result
}

/// The Bullet server in a pool of one board with a fresh disk.
pub(crate) fn bullet_bench(args: &PoolArgs) -> Result<()> {
    println!("\n== bullet: file reads and creates against RPC and raw disk operations on the same path");
    let disk = ("bench-disk.img", pool_bench::system::BULLET_DISK_BYTES);
    bench_on_fresh_disk(args, 1, disk, pool_bench::system::bullet)
}

/// The directory service on boards 0–2 of a pool of four, board 0 with a fresh disk.
pub(crate) fn directory_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "\n== directory: lookups against a null RPC, updates against a broadcast in a group like the \
         directory's, rates"
    );
    let disk = ("bench-directory-disk.img", pool_bench::directory::DIRECTORY_DISK_BYTES);
    bench_on_fresh_disk(args, pool_bench::directory::DIRECTORY_BOARDS, disk, pool_bench::directory::directory)
}

/// Runs `bench` on a pool of `boards` whose board 0 has a fresh disk
/// (`disk`: image file name in the run directory, size in bytes).
pub(crate) fn bench_on_fresh_disk(
    args: &PoolArgs,
    boards: u16,
    disk: (&str, u64),
    bench: impl FnOnce(&Pool) -> Result<()>,
) -> Result<()> {
    std::fs::create_dir_all(&args.run_dir)?;
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), boards).with_disk(
        args.run_dir.join(disk.0),
        disk.1,
        true,
    )?;
    let (pool, _) = boot_pool(config)?;
    let result = bench(&pool);
    pool.shutdown();
    result
}

/// A whole system as `boot up` brings it up, driven from the host.
pub(crate) fn system_bench() -> Result<()> {
    println!(
        "\n== system: {} boards brought up by `boot up`; exec through the run server, placements, `ax hello`",
        pool_bench::system::SYSTEM_BOARDS
    );
    let boot = std::env::current_exe().context("finding this program")?;
    pool_bench::system::system(&boot)
}

/// Boards that idle while their host CPU is measured, and for how long.
pub(crate) const IDLE_BOARDS: u16 = 4;
pub(crate) const IDLE_MEASURE: Duration = Duration::from_secs(10);

/// What idle boards cost the host: they should sleep in `wfi`, waking only
/// for their timer.
pub(crate) fn idle_bench(args: &PoolArgs) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), IDLE_BOARDS))?;
    // Let the boot's own work settle first.
    std::thread::sleep(Duration::from_secs(2));
    let pids: Vec<u32> = pool.boards().iter().filter_map(|b| b.pid()).collect();
    let before = pool_bench::host_cpu::CpuReading::take(&pids);
    std::thread::sleep(IDLE_MEASURE);
    let used = before.until(&pool_bench::host_cpu::CpuReading::take(&pids));
    pool.shutdown();
    println!(
        "{IDLE_BOARDS} idle boards over {} s: {:.3} host cores ({:.1} % of a core per board); {used}",
        IDLE_MEASURE.as_secs(),
        used.processes,
        used.processes * 100.0 / f64::from(IDLE_BOARDS)
    );
    Ok(())
}

/// Runs the `bench` user program on a board and prints what it measured.
pub(crate) fn nucleus_bench(args: &PoolArgs) -> Result<()> {
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), 1);
    let (pool, _) = boot_pool(config)?;
    let started = pool.exec_spawning(0, "bench", 0, amoeba_abi::syscall::SCHED_PREEMPTIVE)?;
    let status =
        pool.wait_process(&started, Duration::from_secs(120)).context("the bench program did not finish")?;
    let console = pool.boards()[0].console_text();
    pool.shutdown();
    if status != 0 {
        bail!("the bench program failed ({status}); console:\n{console}");
    }
    for line in console.lines().filter(|l| l.starts_with("bench ")) {
        println!("{}", line.trim_start_matches("bench "));
    }
    Ok(())
}
