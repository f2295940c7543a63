//! The system benchmarks of `just bench`: what the servers built on the
//! nucleus cost, each next to the RPC or disk operation it is made of,
//! measured side by side in the same pool and reported as ratios.
//!
//! * [`processes`]: remote creation of a 64 KiB program (`big-nop`), host →
//!   board and board → board, in units of the board's local creation and of
//!   a null RPC on the same path; segment writes against bulk RPC.
//! * [`bullet`]: Bullet file reads against a 1 MiB RPC reply (cached) and a
//!   raw disk read (uncached); safe creates against a null RPC and a raw
//!   write + flush; creates per second; a 256 MiB file created (streamed
//!   straight to disk) and read back against raw writes + flush and raw reads
//!   of as many bytes.
//! * [`system`]: a whole system as `boot up` starts it: exec through the run
//!   server against a null RPC and a direct remote creation, placement
//!   decisions per second, and `boot ax hello` end to end.
//!
//! Measurements of different kinds take turns, round by round, so that
//! drifting load on a shared host hits them alike; each section prints the
//! host CPU load during it.

use crate::Summary;
use crate::host_cpu::CpuReading;
use amoeba_abi::{Capability, GetPort, Header, Port, Status};
use amoeba_client::exec::{Exec, Program, exec, exec_placed};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::process::HOST_PLACEMENT;
use amoeba_ipc::interfaces::run::PlacementRequest;
use amoeba_ipc::interfaces::{
    BS_COMMIT, BS_SAFETY, bullet, disk, echo, process_server, run_server, standard,
};
use anyhow::{Context, Result, bail};
use host_station::rpc_client::RpcClient;
use qemu_pool::exec::{Control, Started};
use qemu_pool::pool::Pool;
use std::path::Path;
use std::time::{Duration, Instant};

/// The program whose creation is measured (64 KiB of initialised data).
const BIG_PROGRAM: &str = "big-nop";
/// Get-port seed of the echo server of these sections.
const ECHO_SEED: u64 = 0x0000_00be_0c21;
/// Null calls of each null-RPC unit (half before the other figures, half after).
const NULL_CALLS: usize = 400;
/// Creations of each kind.
const CREATIONS: usize = 50;
/// A bulk transfer: one 1 MiB request or reply.
const MIB: usize = 1 << 20;
/// The segment the host fills in the segment-write throughput run.
const SEGMENT_BYTES: usize = 16 * MIB;
/// Times the segment is filled (and as many MiB sunk by bulk RPC).
const SEGMENT_FILLS: usize = 3;
/// Quiet time before each null call to an idle board, and how many are made.
const IDLE_GAP: Duration = Duration::from_millis(20);
const IDLE_CALLS: usize = 40;
/// How long a board program of a section may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Median and p99 of host-timed samples, in µs.
fn figure(summary: &Summary) -> String {
    format!(
        "median {:>9.1} us  p99 {:>9.1} us  ({:>3})",
        summary.median.as_secs_f64() * 1e6,
        summary.p99.as_secs_f64() * 1e6,
        summary.count
    )
}

/// One figure: its label, median and p99, and what follows (its ratios).
pub(crate) fn row(label: &str, summary: &Summary, note: &str) {
    println!("{label:<48} {}  {note}", figure(summary));
}

/// How many times `unit`'s median `of` takes.
pub(crate) fn times(of: &Summary, unit: &Summary) -> f64 {
    of.median.as_secs_f64() / unit.median.as_secs_f64()
}

pub(crate) fn summary(samples: &mut [Duration]) -> Result<Summary> {
    Summary::of(samples).context("no samples")
}

/// How long `f` takes; its value.
pub(crate) fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// A status from an RPC as an error saying what was being done.
pub(crate) fn called<T>(what: &str, result: Result<T, amoeba_abi::Status>) -> Result<T> {
    result.map_err(|status| anyhow::anyhow!("{what}: {status}"))
}

/// Null calls to the echo service; their times.
pub(crate) fn null_calls(rpc: &mut RpcClient, service: &Capability, count: usize) -> Result<Vec<Duration>> {
    let mut client = echo::Client::new(rpc);
    (0..count).map(|_| timed(|| called("null RPC", client.sink(service, &[]))).map(|(t, _)| t)).collect()
}

/// The echo server's put-port, once it runs.
fn echo_service() -> Capability {
    Capability::for_port(GetPort(Port::from_u64(ECHO_SEED)).put_port())
}

/// A line of host CPU use from `before` until now.
pub(crate) fn cpu_line(before: &CpuReading, pids: &[u32]) -> String {
    format!("host CPU during the section: {}", before.until(&CpuReading::take(pids)))
}

pub(crate) fn board_pids(pool: &Pool) -> Vec<u32> {
    pool.boards().iter().filter_map(|b| b.pid()).collect()
}

/// One creation: its time, and each RPC it made (a step) with its time.
struct Creation {
    took: Duration,
    steps: Vec<(String, Duration)>,
}

/// Creates `big-nop` on the board whose host capability is `host`; the time
/// until its capability came back. Its exit (status 0) is waited for untimed.
fn create_remote(rpc: &mut RpcClient, host: &Capability, program: Program<'_>) -> Result<Creation> {
    let exec_of = Exec::new(BIG_PROGRAM, &[BIG_PROGRAM]);
    let mut steps = Steps { inner: &mut *rpc, taken: Vec::new() };
    let (took, process) =
        timed(|| exec(&mut steps, host, program, &exec_of).map_err(|e| anyhow::anyhow!("creating: {e}")))?;
    let steps = steps.taken;
    wait_for_zero(rpc, &process)?;
    Ok(Creation { took, steps })
}

/// A transport that notes what each call was and how long it took: where a
/// creation's time goes.
struct Steps<'a> {
    inner: &'a mut RpcClient,
    taken: Vec<(String, Duration)>,
}

impl Transport for Steps<'_> {
    fn trans(&mut self, request: &Header, buf: &[u8], limit: usize) -> Result<(Header, Vec<u8>), Status> {
        let start = Instant::now();
        let result = Transport::trans(&mut *self.inner, request, buf, limit);
        self.taken.push((step_name(request, buf), start.elapsed()));
        result
    }
}

/// What a call of a creation does, in a few words.
fn step_name(request: &Header, buf: &[u8]) -> String {
    match request.command {
        process_server::PS_SEGMENT_CREATE => format!("segment {} KiB", request.offset >> 10),
        process_server::PS_SEGMENT_WRITE => format!("write {} KiB", buf.len() >> 10),
        process_server::PS_SEGMENT_CREATE_FROM => String::from("segment from file"),
        process_server::PS_PROCESS_CREATE => String::from("process"),
        bullet::BS_READ => String::from("read headers"),
        run_server::RUN_FIND_HOST => String::from("find_host"),
        other => format!("command {other}"),
    }
}

/// The median of each step over `creations` (those with the first one's
/// steps), in order, and the sum of those medians.
fn step_medians(creations: &[Creation]) -> String {
    let Some(first) = creations.first() else { return String::new() };
    let alike: Vec<&Creation> = creations.iter().filter(|c| c.steps.len() == first.steps.len()).collect();
    let mut sum = Duration::ZERO;
    let mut text = Vec::new();
    for (index, (name, _)) in first.steps.iter().enumerate() {
        let mut times: Vec<Duration> = alike.iter().map(|c| c.steps[index].1).collect();
        let median = Summary::of(&mut times).map_or(Duration::ZERO, |s| s.median);
        sum += median;
        text.push(format!("{name} {:.0}", median.as_secs_f64() * 1e6));
    }
    format!("{}; sum {:.0} us", text.join(", "), sum.as_secs_f64() * 1e6)
}

/// The times of `creations`.
fn creation_times(creations: &[Creation]) -> Result<Summary> {
    summary(&mut creations.iter().map(|c| c.took).collect::<Vec<_>>())
}

fn wait_for_zero(rpc: &mut RpcClient, process: &Capability) -> Result<()> {
    match process_server::Client::new(rpc).wait(process) {
        Ok(0) => Ok(()),
        other => bail!("{BIG_PROGRAM} ended with {other:?}"),
    }
}

// ---------------------------------------------------------------- processes

/// Runs `create-bench` on board `creator` against board `target`; its
/// figures by kind.
fn board_to_board(pool: &Pool, creator: usize, target: usize) -> Result<Vec<(String, Summary)>> {
    let mut rpc = pool.rpc();
    let program = called(
        "the boot program big-nop",
        process_server::Client::new(&mut *rpc).boot_program(&pool.host_capability(creator), BIG_PROGRAM),
    )?;
    drop(rpc);
    let host = pool.host_capability(target).restrict(HOST_PLACEMENT).expect("an owner capability restricts");
    let exec = Exec::new("create-bench", &["create-bench"])
        .with_capability(amoeba_abi::syscall::HOST_CAPABILITY_NAME, pool.host_create_capability(creator))
        .with_capability("TARGET", host)
        .with_capability("PROGRAM", program);
    board_program(pool, creator, exec)
}

/// Runs the benchmark program on board `board` as `exec` says, with
/// the echo service's put-port as its argument; the timings it reported.
fn board_program(pool: &Pool, board: usize, mut exec: Exec) -> Result<Vec<(String, Summary)>> {
    exec.argument = echo_service().port.to_u64();
    Ok(crate::timings(&crate::run_reporting(pool, board, &exec, RUN_TIMEOUT)?))
}

/// The figure of `kind` among those a board program reported.
pub(crate) fn kind_of(figures: &[(String, Summary)], kind: &str) -> Result<Summary> {
    figures.iter().find(|(k, _)| k == kind).map(|(_, s)| *s).with_context(|| format!("no figure {kind}"))
}

/// Throughput (bytes/s) of 1 MiB segment writes filling a 16 MiB segment on
/// `host`'s board, and of 1 MiB requests to the echo server's sink, taking turns.
fn segment_against_bulk(rpc: &mut RpcClient, host: &Capability) -> Result<(f64, f64)> {
    let segment = called(
        "segment create",
        process_server::Client::new(&mut *rpc).segment_create(host, SEGMENT_BYTES as u64),
    )?;
    let data = vec![0x3c; MIB];
    let service = echo_service();
    let (mut writing, mut sinking) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..SEGMENT_FILLS {
        for offset in (0..SEGMENT_BYTES).step_by(MIB) {
            let mut segments = process_server::Client::new(&mut *rpc);
            writing +=
                timed(|| called("segment write", segments.segment_write(&segment, offset as u64, &data)))?.0;
            let mut sink = echo::Client::new(&mut *rpc);
            sinking += timed(|| called("1 MiB sink", sink.sink(&service, &data)))?.0;
        }
    }
    let _ = amoeba_ipc::interfaces::standard::Client::new(rpc).destroy(&segment);
    let bytes = (SEGMENT_FILLS * SEGMENT_BYTES) as f64;
    Ok((bytes / writing.as_secs_f64(), bytes / sinking.as_secs_f64()))
}

/// Null calls to an idle board (one after each [`IDLE_GAP`]): what waking
/// the board costs the first request after a quiet spell.
fn idle_null_calls(rpc: &mut RpcClient, service: &Capability) -> Result<Summary> {
    let mut samples = Vec::with_capacity(IDLE_CALLS);
    for _ in 0..IDLE_CALLS {
        std::thread::sleep(IDLE_GAP);
        samples.extend(null_calls(rpc, service, 1)?);
    }
    summary(&mut samples)
}

/// Host → board creations and null calls, taking turns with each other.
fn host_to_board(pool: &Pool, rpc: &mut RpcClient, target: usize) -> Result<(Summary, Vec<Creation>)> {
    let elf = pool.program_bytes(BIG_PROGRAM)?;
    let host = pool.host_capability(target);
    let service = echo_service();
    null_calls(rpc, &service, 10)?; // locate the server
    let mut null = null_calls(rpc, &service, NULL_CALLS / 2)?;
    let mut created = Vec::with_capacity(CREATIONS);
    for _ in 0..CREATIONS {
        created.push(create_remote(rpc, &host, Program::Bytes(&elf))?);
        null.extend(null_calls(rpc, &service, NULL_CALLS / 2 / CREATIONS)?);
    }
    Ok((summary(&mut null)?, created))
}

/// The `processes` section on a pool of two boards: board 0 creates on board
/// 1, and so does the host.
pub fn processes(pool: &Pool) -> Result<()> {
    let (creator, target) = (0, 1);
    let before = CpuReading::take(&board_pids(pool));
    pool.exec(target, "echo-server", ECHO_SEED)?;
    let mut rpc = RpcClient::new(pool.new_host_port()?);
    let (host_null, host_creations) = host_to_board(pool, &mut rpc, target)?;
    let host_create = creation_times(&host_creations)?;
    let idle_null = idle_null_calls(&mut rpc, &echo_service())?;
    let (writes, bulk) = segment_against_bulk(&mut rpc, &pool.host_capability(target))?;
    let boards = board_to_board(pool, creator, target)?;
    let kind = |name: &str| kind_of(&boards, name);
    let (local, board_null) = (kind("local")?, kind("null")?);
    let units = |created: &Summary, null: &Summary| {
        format!("= {:>5.2}x local, {:>6.1}x null RPC", times(created, &local), times(created, null))
    };
    row(&format!("local creation (board {creator}, system call)"), &local, "");
    row(&format!("null RPC host -> board {target}"), &host_null, "");
    let woken = format!("= {:.1}x null RPC", times(&idle_null, &host_null));
    let label = format!("null RPC host -> board {target}, idle {} ms before", IDLE_GAP.as_millis());
    row(&label, &idle_null, &woken);
    row(&format!("null RPC board {creator} -> board {target}"), &board_null, "");
    row(&format!("create host -> board {target} (bytes)"), &host_create, &units(&host_create, &host_null));
    println!("  its RPCs (median us): {}", step_medians(&host_creations));
    for (name, label) in [
        ("bytes", "bytes"),
        ("file", "file, text cached"),
        ("file-cold", "file, cold"),
        ("file-first", "file, first time"),
    ] {
        let created = kind(name)?;
        row(
            &format!("create board {creator} -> board {target} ({label})"),
            &created,
            &units(&created, &board_null),
        );
    }
    println!(
        "segment writes host -> board {target} (1 MiB into 16 MiB) {:>8.0} KiB/s, bulk RPC (1 MiB sink) {:>8.0} KiB/s: \
         ratio {:.2} (goal >= 0.9)",
        writes / 1024.0,
        bulk / 1024.0,
        writes / bulk
    );
    println!("{}", cpu_line(&before, &board_pids(pool)));
    Ok(())
}

// ------------------------------------------------------------------- bullet

/// Size of the disk the `bullet` section's pool gets (a sparse image).
pub const BULLET_DISK_BYTES: u64 = 768 << 20;
/// Bytes at the end of the disk kept from the Bullet server for raw measurements.
const RAW_AREA: u64 = LARGE_FILE as u64;
/// The large file created and read against raw transfers of as many bytes.
const LARGE_FILE: usize = 256 * MIB;
/// Rounds of the large-file measurement (each: raw write, create, raw read, read).
const LARGE_ROUNDS: usize = 2;
/// Reads of each kind (cached, uncached) and their units.
const READS: usize = 40;
/// Safe creates of 1 KiB, and of 1 MiB (each next to a raw write + flush).
const SMALL_CREATES: usize = 60;
const LARGE_CREATES: usize = 20;
/// 1 KiB files created in each creates-per-second run.
const RATE_CREATES: usize = 200;
/// A small file.
const KIB: usize = 1 << 10;

/// The raw area at the end of board 0's disk, and the blocks before it
/// that the Bullet server gets.
struct DiskPlan {
    raw: Capability,
    block_size: usize,
    bullet_blocks: u32,
}

fn plan_disk(pool: &Pool) -> Result<DiskPlan> {
    let whole = pool_system::disk_capability(pool, 0, 0, 0)?;
    let geometry = called("disk geometry", disk::Client::new(&mut *pool.rpc()).geometry(&whole))?;
    let block_size = geometry.block_size as usize;
    let raw_blocks = RAW_AREA / geometry.block_size as u64;
    let raw_first = geometry.block_count.checked_sub(raw_blocks).context("the disk is too small")?;
    let bullet_blocks =
        u32::try_from(raw_first - pool_system::ANCHOR_BLOCKS).context("the disk is too large")?;
    let raw = pool_system::disk_capability(pool, 0, raw_first, raw_blocks as u32)?;
    Ok(DiskPlan { raw, block_size, bullet_blocks })
}

/// A raw write of `data` at the start of the raw area, then a flush.
fn raw_write_flush(rpc: &mut RpcClient, plan: &DiskPlan, data: &[u8]) -> Result<Duration> {
    let mut raw = disk::Client::new(rpc);
    Ok(timed(|| {
        called("raw write", raw.write(&plan.raw, 0, data))?;
        called("raw flush", raw.flush(&plan.raw))
    })?
    .0)
}

/// A safe create (commit + safety flag) of `data`.
fn safe_create(rpc: &mut RpcClient, server: &Capability, data: &[u8], flags: u32) -> Result<Duration> {
    let mut files = bullet::Client::new(rpc);
    Ok(timed(|| called("create", files.create(server, flags, data)))?.0)
}

/// 1 MiB reads of `file`, taking turns with `unit` (the thing it is measured against).
fn reads_against(
    what: &str,
    rpc: &mut RpcClient,
    file: &Capability,
    mut unit: impl FnMut(&mut RpcClient) -> Result<Duration>,
) -> Result<(Summary, Summary)> {
    let (mut reads, mut units) = (Vec::new(), Vec::new());
    for _ in 0..READS {
        let mut files = bullet::Client::new(&mut *rpc);
        let (took, data) = timed(|| called(what, files.read(file, 0, MIB as u32)))?;
        if data.len() != MIB {
            bail!("a 1 MiB read gave {} bytes", data.len());
        }
        reads.push(took);
        units.push(unit(rpc)?);
    }
    Ok((summary(&mut reads)?, summary(&mut units)?))
}

/// A 1 MiB reply from the echo server.
fn bulk_reply(rpc: &mut RpcClient) -> Result<Duration> {
    let service = echo_service();
    let mut client = echo::Client::new(rpc);
    let (took, (_, data)) = timed(|| called("1 MiB source", client.source(&service, MIB as u32)))?;
    if data.len() != MIB {
        bail!("a 1 MiB reply gave {} bytes", data.len());
    }
    Ok(took)
}

/// A raw read of 1 MiB at the start of the raw area.
fn raw_read(rpc: &mut RpcClient, plan: &DiskPlan) -> Result<Duration> {
    let mut raw = disk::Client::new(rpc);
    let blocks = (MIB / plan.block_size) as u32;
    Ok(timed(|| called("raw read", raw.read(&plan.raw, 0, blocks)))?.0)
}

/// Safe creates of `size` bytes taking turns with raw writes + flushes of
/// the same size: (creates, raw).
fn creates_against_raw(
    rpc: &mut RpcClient,
    server: &Capability,
    plan: &DiskPlan,
    size: usize,
    count: usize,
) -> Result<(Summary, Summary)> {
    let data = vec![0x6b; size];
    let (mut creates, mut raws) = (Vec::new(), Vec::new());
    for _ in 0..count {
        creates.push(safe_create(rpc, server, &data, BS_COMMIT | BS_SAFETY)?);
        raws.push(raw_write_flush(rpc, plan, &data)?);
    }
    Ok((summary(&mut creates)?, summary(&mut raws)?))
}

/// 1 KiB files created per second, one after another, with `flags`.
fn creates_per_second(rpc: &mut RpcClient, server: &Capability, flags: u32) -> Result<f64> {
    let data = vec![0x2d; KIB];
    let total: Duration =
        (0..RATE_CREATES).map(|_| safe_create(rpc, server, &data, flags)).sum::<Result<Duration>>()?;
    Ok(RATE_CREATES as f64 / total.as_secs_f64())
}

/// Times of one large-file round: a raw write of [`LARGE_FILE`] bytes in 1 MiB
/// transfers then a flush, the Bullet create of such a file (reserve, 1 MiB
/// writes, safe commit), a raw read of as many bytes, the Bullet read of the file.
struct LargeRound {
    raw_write: Duration,
    create: Duration,
    raw_read: Duration,
    read: Duration,
}

/// One large-file round; the file is destroyed afterwards.
fn large_round(rpc: &mut RpcClient, server: &Capability, plan: &DiskPlan) -> Result<LargeRound> {
    let piece = vec![0x5au8; MIB];
    let pieces = LARGE_FILE / MIB;
    let blocks = (MIB / plan.block_size) as u64;
    let (raw_write, ()) = timed(|| {
        let mut raw = disk::Client::new(&mut *rpc);
        for i in 0..pieces {
            called("raw write", raw.write(&plan.raw, i as u64 * blocks, &piece))?;
        }
        called("raw flush", raw.flush(&plan.raw))
    })?;
    let (create, file) = timed(|| {
        let fill = |chunk: &mut [u8]| {
            chunk.copy_from_slice(&piece[..chunk.len()]);
            Ok::<(), ()>(())
        };
        amoeba_client::files::put_from(&mut *rpc, server, LARGE_FILE as u64, fill, |_| {})
            .map_err(|e| anyhow::anyhow!("creating the large file: {e:?}"))
    })?;
    let (raw_read, ()) = timed(|| {
        let mut raw = disk::Client::new(&mut *rpc);
        for i in 0..pieces {
            let data = called("raw read", raw.read(&plan.raw, i as u64 * blocks, blocks as u32))?;
            if data.len() != MIB {
                bail!("a raw read of 1 MiB gave {} bytes", data.len());
            }
        }
        Ok(())
    })?;
    let (read, size) = timed(|| {
        amoeba_client::files::get_into(&mut *rpc, &file, |_| Ok::<(), ()>(()), |_| {})
            .map_err(|e| anyhow::anyhow!("reading the large file: {e:?}"))
    })?;
    if size != LARGE_FILE as u64 {
        bail!("the large file has {size} bytes");
    }
    called("destroying the large file", standard::Client::new(&mut *rpc).destroy(&file))?;
    called("sync", bullet::Client::new(&mut *rpc).sync(server))?;
    Ok(LargeRound { raw_write, create, raw_read, read })
}

/// The best of each kind over [`LARGE_ROUNDS`] rounds, and the two ratios.
fn print_large(rounds: &[LargeRound]) {
    let best = |f: fn(&LargeRound) -> Duration| rounds.iter().map(f).min().unwrap_or_default();
    let (raw_write, create) = (best(|r| r.raw_write), best(|r| r.create));
    let (raw_read, read) = (best(|r| r.raw_read), best(|r| r.read));
    let rate = |d: Duration| LARGE_FILE as f64 / MIB as f64 / d.as_secs_f64().max(1e-9);
    let mib = LARGE_FILE / MIB;
    println!("{mib} MiB file, best of {} rounds:", rounds.len());
    println!("  raw writes + flush     {:>8.2} s  {:>6.1} MiB/s", raw_write.as_secs_f64(), rate(raw_write));
    println!(
        "  create (streamed, safe){:>8.2} s  {:>6.1} MiB/s  speed {:.2}x raw (goal >= 0.7)",
        create.as_secs_f64(),
        rate(create),
        raw_write.as_secs_f64() / create.as_secs_f64().max(1e-9)
    );
    println!("  raw reads              {:>8.2} s  {:>6.1} MiB/s", raw_read.as_secs_f64(), rate(raw_read));
    println!(
        "  read (streamed)        {:>8.2} s  {:>6.1} MiB/s  speed {:.2}x raw (goal >= 0.7)",
        read.as_secs_f64(),
        rate(read),
        raw_read.as_secs_f64() / read.as_secs_f64().max(1e-9)
    );
}

/// The `bullet` section on a pool of one board with a fresh disk of
/// [`BULLET_DISK_BYTES`].
pub fn bullet(pool: &Pool) -> Result<()> {
    let before = CpuReading::take(&board_pids(pool));
    pool.exec(0, "echo-server", ECHO_SEED)?;
    let plan = plan_disk(pool)?;
    let (server_process, server) =
        pool_system::start_bullet_in(pool, 0, pool_system::ANCHOR_BLOCKS, plan.bullet_blocks, &[])?;
    let mut rpc = RpcClient::new(pool.new_host_port()?);
    let service = echo_service();
    null_calls(&mut rpc, &service, 10)?;
    let mut null = null_calls(&mut rpc, &service, NULL_CALLS / 2)?;
    let content: Vec<u8> = (0..MIB).map(|i| (i * 13) as u8).collect();
    let file =
        called("create", bullet::Client::new(&mut rpc).create(&server, BS_COMMIT | BS_SAFETY, &content))?;
    raw_write_flush(&mut rpc, &plan, &content)?; // what the raw reads read
    called("warm-up read", bullet::Client::new(&mut rpc).read(&file, 0, MIB as u32))?;
    let (cached, reply) = reads_against("cached read", &mut rpc, &file, bulk_reply)?;
    let (small, small_raw) = creates_against_raw(&mut rpc, &server, &plan, KIB, SMALL_CREATES)?;
    let (large, large_raw) = creates_against_raw(&mut rpc, &server, &plan, MIB, LARGE_CREATES)?;
    let safe_rate = creates_per_second(&mut rpc, &server, BS_COMMIT | BS_SAFETY)?;
    let rate = creates_per_second(&mut rpc, &server, BS_COMMIT)?;
    let large_file =
        (0..LARGE_ROUNDS).map(|_| large_round(&mut rpc, &server, &plan)).collect::<Result<Vec<_>>>()?;
    null.extend(null_calls(&mut rpc, &service, NULL_CALLS / 2)?);
    let null = summary(&mut null)?;

    // Uncached: the same file read by a server with no cache.
    called("sync", bullet::Client::new(&mut rpc).sync(&server))?;
    restart_without_cache(pool, &server_process, plan.bullet_blocks)?;
    let (uncached, raw) = reads_against("uncached read", &mut rpc, &file, |rpc| raw_read(rpc, &plan))?;

    let board =
        board_program(pool, 0, Exec::new("disk-bench", &["disk-bench"]).with_capability("DISK", plan.raw))?;
    print_bullet(&BulletFigures { null, cached, reply, uncached, raw, small, small_raw, large, large_raw });
    print_uncached_costs(&board, &uncached, &raw)?;
    println!("creates per second of 1 KiB files: {safe_rate:>6.0} safe, {rate:>6.0} without the safety flag");
    print_large(&large_file);
    println!("{}", cpu_line(&before, &board_pids(pool)));
    Ok(())
}

/// Ends the Bullet server and starts it again on the same blocks with no cache.
fn restart_without_cache(pool: &Pool, process: &Started, blocks: u32) -> Result<()> {
    called("destroying the Bullet server", pool.control(&process.capability, Control::Destroy))?;
    pool.wait_process(process, Duration::from_secs(10)).context("the Bullet server did not end")?;
    pool_system::start_bullet_in(pool, 0, pool_system::ANCHOR_BLOCKS, blocks, &["CACHE_MIB=0"])?;
    Ok(())
}

struct BulletFigures {
    null: Summary,
    cached: Summary,
    reply: Summary,
    uncached: Summary,
    raw: Summary,
    small: Summary,
    small_raw: Summary,
    large: Summary,
    large_raw: Summary,
}

fn print_bullet(f: &BulletFigures) {
    row("null RPC host -> board 0", &f.null, "");
    row("1 MiB RPC reply host <- board 0", &f.reply, "");
    let speed = times(&f.reply, &f.cached);
    row(
        "read of a cached 1 MiB file",
        &f.cached,
        &format!("speed {speed:.2}x the 1 MiB reply (goal >= 0.9)"),
    );
    row("raw disk read of 1 MiB", &f.raw, "");
    let speed = times(&f.raw, &f.uncached);
    row(
        "read of an uncached 1 MiB file",
        &f.uncached,
        &format!("speed {speed:.2}x the raw read (goal >= 0.8)"),
    );
    for (label, create, raw) in [("1 KiB", &f.small, &f.small_raw), ("1 MiB", &f.large, &f.large_raw)] {
        row(&format!("raw write + flush of {label}"), raw, "");
        let note = format!(
            "= {:>6.1}x null RPC, {:>5.2}x raw write + flush",
            times(create, &f.null),
            times(create, raw)
        );
        row(&format!("safe create of {label}"), create, &note);
    }
}

/// Where an uncached read's time goes beyond a raw read's: the server's own
/// read of the disk (a 1 MiB reply by local RPC) and its buffer copies, as
/// `disk-bench` measured them on the board.
fn print_uncached_costs(board: &[(String, Summary)], uncached: &Summary, raw: &Summary) -> Result<()> {
    let micros = |kind: &str| kind_of(board, kind).map(|s| s.median.as_secs_f64() * 1e6);
    println!(
        "  uncached - raw read: {:.0} us; on board 0: 1 MiB disk read by local RPC {:.0} us, \
         1 MiB local RPC reply {:.0} us, 1 MiB copy {:.0} us, zeroed 1 MiB {:.0} us",
        (uncached.median.as_secs_f64() - raw.median.as_secs_f64()) * 1e6,
        micros("local-read")?,
        micros("local-reply")?,
        micros("copy")?,
        micros("zeroed")?
    );
    Ok(())
}

// ------------------------------------------------------------------- system

/// Boards of the `system` section's pool (`boot up`).
pub const SYSTEM_BOARDS: u16 = 3;
/// `boot ax hello` runs.
const AX_RUNS: usize = 20;
/// Placement decisions asked for in a row.
const PLACEMENTS: usize = 300;
/// How long `boot up` may take to bring the system up.
const UP_TIMEOUT: Duration = Duration::from_secs(180);
/// The board of the direct creations and of the null RPC unit.
const FIXED_BOARD: u16 = 1;

/// `boot up` running in a temporary run directory; stopped when dropped.
struct Up {
    child: std::process::Child,
    boot: std::path::PathBuf,
    run_dir: tempfile::TempDir,
}

impl Up {
    fn start(boot: &Path) -> Result<Up> {
        use std::io::BufRead;
        let run_dir = tempfile::Builder::new().prefix("bench-up-").tempdir_in("/tmp")?;
        let mut child = std::process::Command::new(boot)
            .args(["up", &SYSTEM_BOARDS.to_string(), "--fresh-disk", "--run-dir"])
            .arg(run_dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("starting boot up")?;
        let stdout = child.stdout.take().context("boot up's output")?;
        let up = Up { child, boot: boot.to_path_buf(), run_dir };
        let deadline = Instant::now() + UP_TIMEOUT;
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            let line = lines.next().context("boot up ended before the system was up")??;
            if line.starts_with("system up") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the system did not come up within {UP_TIMEOUT:?}");
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(up)
    }

    fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The processes `boot up` started (the boards' QEMUs).
    fn board_pids(&self) -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).into_iter().flatten();
        tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|children| {
                children.split_whitespace().filter_map(|pid| pid.parse().ok()).collect::<Vec<u32>>()
            })
            .collect()
    }

    /// `boot ax hello` against this system: how long it took (it must exit 7).
    fn ax_hello(&self) -> Result<Duration> {
        let (took, output) = timed(|| {
            Ok(std::process::Command::new(&self.boot)
                .args(["ax", "--run-dir"])
                .arg(self.run_dir())
                .arg("hello")
                .output()?)
        })?;
        if output.status.code() != Some(7) || !String::from_utf8_lossy(&output.stdout).contains("hello from")
        {
            bail!("boot ax hello: {:?}\n{}", output.status, String::from_utf8_lossy(&output.stderr));
        }
        Ok(took)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let down =
            std::process::Command::new(&self.boot).arg("down").arg("--run-dir").arg(self.run_dir()).output();
        let deadline = Instant::now() + Duration::from_secs(10);
        while down.is_ok() && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the run server counts every board alive.
fn wait_until_alive(rpc: &mut RpcClient, run: &Capability) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hosts = called("run server hosts", run_server::Client::new(&mut *rpc).hosts(run))?;
        if hosts.iter().filter(|h| h.alive).count() == usize::from(SYSTEM_BOARDS) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the run server sees {hosts:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Exec through the run server and direct creations on the fixed board.
struct PlacedFigures {
    placed: Vec<Creation>,
    /// How many of the placed creations went to each board.
    boards: std::collections::BTreeMap<String, usize>,
    direct: Vec<Creation>,
    null: Summary,
}

/// Exec through the run server, taking turns with direct creations on the
/// fixed board and null calls.
fn placed_against_direct(
    rpc: &mut RpcClient,
    run: &Capability,
    host: &Capability,
    file: &Capability,
) -> Result<PlacedFigures> {
    let service = echo_service();
    let exec_of = Exec::new(BIG_PROGRAM, &[BIG_PROGRAM]);
    null_calls(rpc, &service, 10)?;
    let (mut placed, mut direct, mut null) = (Vec::new(), Vec::new(), Vec::new());
    let mut boards = std::collections::BTreeMap::new();
    for _ in 0..CREATIONS {
        let mut steps = Steps { inner: &mut *rpc, taken: Vec::new() };
        let (took, (board, process)) = timed(|| {
            exec_placed(&mut steps, run, file, &exec_of).map_err(|e| anyhow::anyhow!("exec_placed: {e}"))
        })?;
        placed.push(Creation { took, steps: steps.taken });
        *boards.entry(board).or_default() += 1;
        wait_for_zero(rpc, &process)?;
        direct.push(create_remote(rpc, host, Program::File(*file))?);
        null.extend(null_calls(rpc, &service, NULL_CALLS / CREATIONS)?);
    }
    Ok(PlacedFigures { placed, boards, direct, null: summary(&mut null)? })
}

/// `find_host` calls in a row for a small program: their times, and how
/// many were made per second.
fn placements(rpc: &mut RpcClient, run: &Capability) -> Result<(Summary, f64)> {
    let request = PlacementRequest { program: String::from("bench"), memory: 64 << 10, text: None };
    let mut runs = run_server::Client::new(rpc);
    let mut samples = (0..PLACEMENTS)
        .map(|_| timed(|| called("find_host", runs.find_host(run, &request))).map(|(t, _)| t))
        .collect::<Result<Vec<_>>>()?;
    let total: Duration = samples.iter().sum();
    Ok((summary(&mut samples)?, PLACEMENTS as f64 / total.as_secs_f64()))
}

/// The `system` section: a whole system as `boot` (the program at `boot`)
/// brings it up with `up`, driven from the host as a workstation.
pub fn system(boot: &Path) -> Result<()> {
    let up = Up::start(boot)?;
    let pids = up.board_pids();
    let before = CpuReading::take(&pids);
    let mut ws = workstation::Workstation::connect(up.run_dir())?;
    let run = ws.capability("run").context("no run server")?;
    let file = ws.program_file(BIG_PROGRAM)?;
    let host = ws.host_capability(FIXED_BOARD)?;
    let echo_file = ws.program_file("echo-server")?;
    let mut echo_exec = Exec::new("echo-server", &["echo-server"]);
    echo_exec.argument = ECHO_SEED;
    exec(ws.rpc(), &host, Program::File(echo_file), &echo_exec)
        .map_err(|e| anyhow::anyhow!("echo-server: {e}"))?;
    wait_until_alive(ws.rpc(), &run)?;
    let figures = placed_against_direct(ws.rpc(), &run, &host, &file)?;
    let (placed, direct, null) =
        (creation_times(&figures.placed)?, creation_times(&figures.direct)?, figures.null);
    let (placement, per_second) = placements(ws.rpc(), &run)?;
    let (mut ax, mut help) = (Vec::new(), Vec::new());
    for _ in 0..AX_RUNS {
        ax.push(up.ax_hello()?);
        help.push(timed(|| Ok(std::process::Command::new(boot).arg("--help").output()?))?.0);
    }
    let (ax, help) = (summary(&mut ax)?, summary(&mut help)?);
    let in_null = |of: &Summary| format!("= {:>6.1}x null RPC", times(of, &null));
    row(&format!("null RPC host -> board {FIXED_BOARD}"), &null, "");
    row(&format!("create on board {FIXED_BOARD} from its Bullet file"), &direct, &in_null(&direct));
    println!("  its RPCs (median us): {}", step_medians(&figures.direct));
    let note = format!("{}, {:>5.2}x direct creation", in_null(&placed), times(&placed, &direct));
    row("exec through the run server", &placed, &note);
    println!("  its RPCs (median us): {}", step_medians(&figures.placed));
    let spread: Vec<String> = figures.boards.iter().map(|(board, n)| format!("{board} {n}")).collect();
    println!("  placed on: {}", spread.join(", "));
    let note = format!("{}; {per_second:.0} decisions per second", in_null(&placement));
    row("placement decision (find_host)", &placement, &note);
    row("boot --help (starting the host program)", &help, &in_null(&help));
    row("boot ax hello, end to end", &ax, &in_null(&ax));
    println!("{}", cpu_line(&before, &pids));
    drop(up);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use amoeba_ipc::interfaces::starter::Timing;

    #[test]
    fn figures_are_found_by_kind() {
        let timing = |median_us, count| Summary::from(Timing { count, median_us, p99_us: median_us * 2 });
        let figures =
            vec![(String::from("null"), timing(200, 500)), (String::from("file-first"), timing(12, 1))];
        let null = kind_of(&figures, "null").unwrap();
        assert_eq!(
            (null.median, null.p99, null.count),
            (Duration::from_micros(200), Duration::from_micros(400), 500)
        );
        assert_eq!(kind_of(&figures, "file-first").unwrap().count, 1);
        assert!(kind_of(&figures, "file").is_err(), "a kind nobody reported");
    }

    #[test]
    fn steps_are_named_by_command_and_size() {
        let host = Capability::for_port(Port::from_u64(7));
        let mut create = Header::request(&host, process_server::PS_SEGMENT_CREATE);
        create.offset = 4 << 20;
        assert_eq!(step_name(&create, &[]), "segment 4096 KiB");
        let write = Header::request(&host, process_server::PS_SEGMENT_WRITE);
        assert_eq!(step_name(&write, &[0; 16 << 10]), "write 16 KiB");
        assert_eq!(step_name(&Header::request(&host, 9999), &[]), "command 9999");
    }

    #[test]
    fn step_medians_take_each_step_in_order() {
        let creation = |a: u64, b: u64| Creation {
            took: Duration::from_micros(a + b),
            steps: vec![
                ("first".into(), Duration::from_micros(a)),
                ("second".into(), Duration::from_micros(b)),
            ],
        };
        let odd = Creation { took: Duration::ZERO, steps: vec![("first".into(), Duration::from_secs(1))] };
        let text = step_medians(&[creation(10, 100), creation(30, 300), odd, creation(20, 200)]);
        assert_eq!(text, "first 20, second 200; sum 220 us");
        assert_eq!(step_medians(&[]), "");
    }
}
