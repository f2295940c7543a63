//! `boot`: start a pool of nucleus boards on a virtual Ethernet and act as
//! the user's workstation on it.

use amoeba_ipc::interfaces::echo;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pool_bench::{EchoResponder, Summary, echo_round_trips};
use pool_system::join::Part;
use qemu_pool::Pool;
use qemu_pool::PoolConfig;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use workstation::{Action, Workstation};
use workstation::{AxOptions, Interrupts};

#[derive(Parser)]
#[command(name = "boot", about = "Boot and drive a pool of Amoeba-style nucleus boards under QEMU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct PoolArgs {
    /// Directory for sockets, consoles and the boot image.
    #[arg(long, default_value = "run/pool")]
    run_dir: PathBuf,
    /// The nucleus ELF (default: the release build in the workspace's target directory).
    #[arg(long)]
    nucleus: Option<PathBuf>,
}

/// One host's part of a pool across hosts.
#[derive(clap::Args, Clone)]
struct PartArgs {
    /// The id of this part's first board: every part of a pool across hosts
    /// has board ids (and so MACs) of its own.
    #[arg(long, default_value_t = 0)]
    first_board: u16,
    /// Join the other parts over a VXLAN segment, the way the Linux kernel's
    /// `vxlan` device does: local=ADDR,remote=ADDR[,remote=ADDR...],vni=N[,port=4789].
    #[arg(long)]
    vxlan: Option<vswitch::VxlanConfig>,
    /// Join the system that another part started (no servers here): FILE is a
    /// copy of that part's run directory's `capabilities`, readable by you alone.
    #[arg(long, value_name = "FILE", requires = "vxlan", conflicts_with = "fresh_disk")]
    join: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a pool of N boards and keep it running until Ctrl-C or `boot down`.
    Up {
        #[arg(default_value_t = 4)]
        boards: u16,
        #[command(flatten)]
        pool: PoolArgs,
        /// Faults injected by the switch from the start, e.g. "loss=10 dup=2 reorder=5 delay=1ms".
        #[arg(long, default_value = "")]
        faults: String,
        /// Seed of the switch's fault decisions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Start with an empty disk (the files and directories of earlier runs go).
        #[arg(long)]
        fresh_disk: bool,
        #[command(flatten)]
        part: PartArgs,
    },
    /// Stop the pool running in the run directory.
    Down {
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Show the running pool's boards, faults and switch counters.
    Status {
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Kill board N of the running pool (SIGKILL to its QEMU) and boot it again
    /// with a new incarnation; the boot service restarts what ran there.
    RestartBoard {
        board: u16,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Each service the boot service keeps up: its board, state, restarts, and
    /// when it last answered.
    Services {
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Change the running pool's faults: "loss=50", "dup=5 reorder=10", "delay=3ms jitter=1ms",
    /// "partition=b0,b1,h0/b2,b3", "heal", "clear".
    Fault {
        spec: Vec<String>,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Boot N boards, echo each from the host, print round-trip times, shut down.
    Ping {
        #[arg(default_value_t = 4)]
        boards: u16,
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Benchmarks, each figure a ratio to a unit measured side by side: frame echo,
    /// RPC, nucleus, boot times, group broadcast, process creation, Bullet, directory, whole system.
    Bench {
        /// Round trips for each echo measurement.
        #[arg(long, default_value_t = 10_000)]
        rounds: usize,
        /// Pool sizes whose boot time is measured.
        #[arg(long, value_delimiter = ',', default_value = "4,16")]
        boot_sizes: Vec<u16>,
        /// Group sizes of the group broadcast benchmark.
        #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
        group_sizes: Vec<u16>,
        /// Run only this section.
        #[arg(long, value_enum)]
        only: Option<BenchSection>,
        /// Instead of times: each operation's guest instructions under QEMU's
        /// `-icount`, two runs and their difference, next to wall-clock figures.
        #[arg(long, conflicts_with = "only")]
        instructions: bool,
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Start a program from the bundle on one board of the running pool and
    /// wait for its exit status (its output goes to the board's console).
    Run {
        board: u16,
        program: String,
        /// Passed to the program's main.
        #[arg(long, default_value_t = 0)]
        argument: u64,
        /// Run-to-completion scheduling of its threads instead of time slices.
        #[arg(long)]
        run_to_completion: bool,
        /// Return at once instead of waiting for the exit.
        #[arg(long)]
        detach: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Run a program of /bin where the run server puts it, as a session: its
    /// input and output here, Ctrl-C interrupts it (twice: kills it), the exit
    /// status is ax's own (130 when interrupted).
    Ax {
        /// Run it on this board instead.
        #[arg(long)]
        on: Option<u16>,
        /// Print the process capability and return at once; its output goes to
        /// a log (`log BOARD/PID`) and it has no input.
        #[arg(long)]
        detach: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
        /// The program and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        argv: Vec<String>,
    },
    /// The rows of a directory (default: the root) with their column masks.
    Ls {
        #[arg(default_value = "/")]
        path: String,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Make a directory.
    Mkdir {
        path: String,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Remove an entry (a file goes from the file server too; a directory must be empty).
    Rm {
        path: String,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Set an entry's column masks, hex per column: `chmod /notes ff:02:00`.
    Chmod {
        path: String,
        masks: workstation::Masks,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Store a local file at a path (replacing what was there).
    Put {
        local: PathBuf,
        path: String,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Fetch the file at a path, into LOCAL or to standard output.
    Get {
        path: String,
        local: Option<PathBuf>,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// What the object at a path says of itself (STD_INFO).
    Info {
        path: String,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Every process on every board: board, pid, program, state, CPU time.
    Ps {
        /// Also the processes that have exited (while their status is kept).
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Freeze a process: by capability, BOARD/PID, or a program name `ps` shows.
    Stun {
        #[arg(value_parser = parse_target)]
        process: workstation::Target,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Let a stunned process run again.
    Resume {
        #[arg(value_parser = parse_target)]
        process: workstation::Target,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// End a process (with --all, every process running the program named).
    Kill {
        #[arg(value_parser = parse_target)]
        process: workstation::Target,
        /// Every process running this program, not just one.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Print the log of a detached program (`ax --detach`): by BOARD/PID, its
    /// capability, or its program's name.
    Log {
        #[arg(value_parser = parse_target)]
        process: workstation::Target,
        /// Keep printing what it adds, until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// A live view of each processor's load, memory and processes, refreshed
    /// every second until Ctrl-C or q.
    Top {
        /// Print one view as text and return.
        #[arg(long)]
        once: bool,
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// Each processor's load, free memory and largest free run, and whether the
    /// run server counts it alive.
    Hosts {
        #[arg(long, default_value = "run/pool")]
        run_dir: PathBuf,
    },
    /// RPC to a service of the running pool, as a client on the switch.
    Rpc {
        #[command(subcommand)]
        call: RpcCall,
        #[arg(long, default_value = "run/pool", global = true)]
        run_dir: PathBuf,
    },
    /// Boot 3 boards, run the echo server on board 0, call it from board 1 and from the host.
    RpcDemo {
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Replicated counter on 4 boards and the host: every member must end
    /// with the same value and the same order of operations.
    GroupDemo {
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Ordered chat on 4 boards: every board sends lines at the same time,
    /// and every board's log must be the same.
    ChatDemo {
        /// Lines each member sends.
        #[arg(long, default_value_t = 10)]
        lines: u64,
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Kill the sequencer's board mid-stream (4 boards, resilience 1): the
    /// others must reset the group, go on, and lose nothing delivered.
    SequencerCrashDemo {
        #[command(flatten)]
        pool: PoolArgs,
    },
    /// Attach GDB to one board of the running pool.
    Gdb {
        board: u16,
        #[command(flatten)]
        pool: PoolArgs,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum BenchSection {
    /// Group broadcast latency and throughput.
    Group,
    /// RPC latency and throughput (local, board to board, host to board, across a VXLAN uplink).
    Rpc,
    /// Host CPU used by idle boards.
    Idle,
    /// Remote process creation of a 64 KiB program; segment writes against bulk RPC.
    Processes,
    /// Bullet file reads and creates against RPC and raw disk operations.
    Bullet,
    /// The replicated directory service: lookups and updates against RPC and group broadcast.
    Directory,
    /// A whole system (`boot up`): exec through the run server, placements, `ax hello`.
    System,
}

#[derive(Subcommand)]
enum RpcCall {
    /// STD_INFO on a capability (pppppppppppp:oooooo:rr:cccccccccccc).
    Info {
        #[arg(value_parser = parse_capability)]
        capability: amoeba_abi::Capability,
    },
    /// Send TEXT to the echo service at put-port PORT (12 hex digits) and print the reply.
    Echo {
        #[arg(value_parser = parse_port)]
        port: amoeba_abi::Port,
        text: String,
    },
}

fn parse_capability(text: &str) -> Result<amoeba_abi::Capability, String> {
    text.parse().map_err(|e| format!("not a capability: {e:?}"))
}

fn parse_target(text: &str) -> Result<workstation::Target, String> {
    text.parse()
}

fn parse_port(text: &str) -> Result<amoeba_abi::Port, String> {
    text.parse().map_err(|e| format!("not a port: {e:?}"))
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { boards, pool, faults, seed, fresh_disk, part } => {
            up(boards, &pool, &faults, seed, fresh_disk, &part)
        }
        Command::Down { run_dir } => control(&run_dir, "down").map(|reply| print!("{reply}")),
        Command::Status { run_dir } => control(&run_dir, "status").map(|reply| print!("{reply}")),
        Command::RestartBoard { board, run_dir } => {
            control(&run_dir, &format!("restart-board {board}")).map(|reply| print!("{reply}"))
        }
        Command::Services { run_dir } => workstation(&run_dir, workstation::services),
        Command::Fault { spec, run_dir } => {
            control(&run_dir, &format!("fault {}", spec.join(" "))).map(|reply| print!("{reply}"))
        }
        Command::Ping { boards, pool } => ping(boards, &pool),
        Command::Bench { instructions: true, pool, .. } => instructions_bench(&pool),
        Command::Bench { rounds, boot_sizes, group_sizes, only, pool, instructions: false } => match only {
            Some(BenchSection::Group) => group_bench(&group_sizes, &pool),
            Some(BenchSection::Rpc) => rpc_bench(&pool),
            Some(BenchSection::Idle) => idle_bench(&pool),
            Some(BenchSection::Processes) => processes_bench(&pool),
            Some(BenchSection::Bullet) => bullet_bench(&pool),
            Some(BenchSection::Directory) => directory_bench(&pool),
            Some(BenchSection::System) => system_bench(),
            None => bench(rounds, &boot_sizes, &pool)
                .and_then(|()| group_bench(&group_sizes, &pool))
                .and_then(|()| system_benches(&pool)),
        },
        Command::Gdb { board, pool } => gdb(board, &pool),
        Command::Rpc { call, run_dir } => rpc(call, &run_dir),
        Command::Run { board, program, argument, run_to_completion, detach, run_dir } => {
            run_program(board, &program, argument, run_to_completion, detach, &run_dir)
        }
        Command::Ax { on, detach, run_dir, argv } => ax(&run_dir, &argv, on, detach),
        Command::Ls { path, run_dir } => workstation(&run_dir, |ws| ws.ls(&path)),
        Command::Mkdir { path, run_dir } => {
            workstation(&run_dir, |ws| ws.mkdir(&path).map(|_| String::new()))
        }
        Command::Rm { path, run_dir } => workstation(&run_dir, |ws| ws.rm(&path).map(|()| String::new())),
        Command::Chmod { path, masks, run_dir } => {
            workstation(&run_dir, |ws| ws.chmod(&path, masks.0).map(|()| String::new()))
        }
        Command::Put { local, path, run_dir } => workstation(&run_dir, |ws| {
            ws.put_file(&local, &path).map(|size| format!("{size} bytes stored as {path}\n"))
        }),
        Command::Get { path, local, run_dir } => {
            workstation(&run_dir, |ws| ws.get_to(&path, local.as_deref()).map(|_| String::new()))
        }
        Command::Info { path, run_dir } => {
            workstation(&run_dir, |ws| ws.info(&path).map(|i| format!("{i}\n")))
        }
        Command::Ps { all, run_dir } => workstation(&run_dir, |ws| workstation::ps(ws, all)),
        Command::Stun { process, run_dir } => control_process(&run_dir, &process, Action::Stun),
        Command::Resume { process, run_dir } => control_process(&run_dir, &process, Action::Resume),
        Command::Kill { process, all, run_dir } => {
            workstation(&run_dir, |ws| workstation::stop_or_resume(ws, &process, Action::Kill, all))
        }
        Command::Log { process, follow, run_dir } => log(&run_dir, &process, follow),
        Command::Top { once, run_dir } => top(&run_dir, once),
        Command::Hosts { run_dir } => workstation(&run_dir, workstation::hosts),
        Command::RpcDemo { pool } => rpc_demo(&pool),
        Command::GroupDemo { pool } => group_demo(&pool),
        Command::ChatDemo { lines, pool } => chat_demo(&pool, lines),
        Command::SequencerCrashDemo { pool } => sequencer_crash_demo(&pool),
    };
    if let Err(error) = result {
        eprintln!("boot: {error:#}");
        std::process::exit(1);
    }
}

fn nucleus_path(args: &PoolArgs) -> PathBuf {
    args.nucleus.clone().unwrap_or_else(qemu_pool::default_nucleus)
}

fn progress_bar(total: usize, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} boards ready ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Boots a pool with a progress bar.
fn boot_pool(config: PoolConfig) -> Result<(Pool, Duration)> {
    let total = config.boards.len();
    let mut pool = Pool::start(config)?;
    let bar = progress_bar(total, "booting");
    let result = pool.wait_ready(|ready, _| bar.set_position(ready as u64));
    bar.finish_and_clear();
    let elapsed = result?;
    Ok((pool, elapsed))
}

fn up(
    boards: u16,
    args: &PoolArgs,
    faults: &str,
    seed: u64,
    fresh_disk: bool,
    part: &PartArgs,
) -> Result<()> {
    if boards == 0 {
        bail!("a pool needs at least one board");
    }
    std::fs::create_dir_all(&args.run_dir)
        .with_context(|| format!("creating run directory {}", args.run_dir.display()))?;
    let mut config =
        PoolConfig::new(&args.run_dir, nucleus_path(args), boards).with_first_board(part.first_board)?;
    let ids: Vec<u16> = config.boards.iter().map(|b| b.id).collect();
    // A joining part checks what it joins with before any board boots: a
    // file others may read, or board ids the other part has, stop it here.
    let joining = match &part.join {
        Some(file) => {
            let given = pool_system::capabilities_file::read(file)?;
            Some(pool_system::join::system_capabilities(&given, &ids)?)
        }
        None => None,
    };
    if joining.is_none() {
        let disk = args.run_dir.join("disk.img");
        config = config.with_disk(&disk, pool_system::DISK_BYTES, fresh_disk)?;
    }
    config.faults.apply(faults).map_err(|e| anyhow::anyhow!("--faults: {e}"))?;
    config.seed = seed;
    config.uplink = part.vxlan.clone().map(|vxlan| qemu_pool::pool::UplinkSetting { vxlan, namespace: None });
    let control_path = args.run_dir.join("control.sock");
    if control_path.exists() && UnixStream::connect(&control_path).is_ok() {
        bail!("a pool is already running in {} (stop it with `just down`)", args.run_dir.display());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    let (mut pool, elapsed) = boot_pool(config)?;
    let range = format!("{}..{}", ids[0], ids[ids.len() - 1]);
    println!("pool of {boards} boards ({range}) ready in {:.2} s", elapsed.as_secs_f64());
    if let Some(uplink) = pool.switch().uplink_stats() {
        println!("{uplink}");
    }
    // Detached programs' logs (`ax --detach`, `just log`), kept as long as the pool runs.
    let logs = host_station::tty_server::TtyServer::start_logs(
        pool.new_host_port()?,
        &args.run_dir.join(workstation::LOGS_DIR),
    )
    .context("starting the log server")?;
    let local = [(String::from("logs"), logs.log_capability())];
    let mut system = match joining {
        Some(given) => {
            println!("joining the system of the other part: entering boards {range} in /hosts");
            pool_system::join::join(&pool, &given)?;
            Part::Joined(given)
        }
        None => {
            let system = pool_system::bring_up(&pool, |step| println!("{step}"))?;
            if part.vxlan.is_some() {
                // Other parts find this part's boards (and enter theirs) here.
                pool_system::join::enter_processors(&pool, &system.root, true)?;
            }
            Part::Servers(Box::new(system))
        }
    };
    let mut processors: Vec<(u16, amoeba_abi::Capability)> =
        pool.boards().iter().enumerate().map(|(index, b)| (b.spec.id, pool.host_capability(index))).collect();
    if let (Some(root), Part::Joined(_)) = (system.root(), &system)
        && let Ok(listed) = pool_system::join::processors(&pool, &root)
    {
        processors = listed;
    }
    system.save_capabilities(&pool, &args.run_dir, &processors, &local)?;
    match &system {
        Part::Servers(servers) => {
            println!("system up: Bullet server, run server, {} programs installed\n", servers.programs.len());
            print!("{}", pool_system::status_table(&pool, servers));
        }
        Part::Joined(_) => {
            println!("system up: boards {range} joined the system the other part started\n");
            print!("{}", pool.status_table());
        }
    }
    let faults = pool.switch().faults();
    if !faults.is_clean() {
        println!("switch faults: {faults}");
    }
    let kept = if matches!(system, Part::Servers(_)) { "consoles and the disk image" } else { "consoles" };
    println!("\n{kept} are in {}. Try, in another terminal:", args.run_dir.display());
    println!("    just ax hello world        # run hello where the run server puts it");
    println!("    just ps                    # every process on every board");
    println!("    just hosts                 # each processor's load and memory");
    println!("    just services              # the services the boot service keeps up");
    println!("    just status / just fault loss=20 / just down (or Ctrl-C here) to stop");

    let commands = serve_control(&control_path)?;
    let mut announced_exits = std::collections::HashSet::new();
    let mut boot_watched = Instant::now();
    let mut refreshed = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Ok((command, reply)) = commands.recv_timeout(Duration::from_millis(200)) {
            let (answer, done) = handle_control(&mut pool, &command);
            let _ = reply.send(answer);
            if done {
                break;
            }
        }
        // The boot service keeps the other services up; `up` keeps it up.
        if let Part::Servers(servers) = &mut system
            && boot_watched.elapsed() >= BOOT_SERVICE_WATCH
        {
            if let Some(what) = servers.boot.keep_alive(&pool) {
                eprintln!("{what}");
            }
            boot_watched = Instant::now();
        }
        // Across hosts: every part's workstation commands reach every board.
        if part.vxlan.is_some()
            && refreshed.elapsed() >= pool_system::join::REFRESH
            && let Some(root) = system.root()
        {
            if let Ok(listed) = pool_system::join::processors(&pool, &root)
                && listed != processors
            {
                let ids: Vec<u16> = listed.iter().map(|(id, _)| *id).collect();
                match system.save_capabilities(&pool, &args.run_dir, &listed, &local) {
                    Ok(()) => println!("the pool's processors are now boards {ids:?}"),
                    Err(error) => eprintln!("saving the capabilities: {error:#}"),
                }
                processors = listed;
            }
            refreshed = Instant::now();
        }
        pool.poll_exits();
        for board in pool.boards() {
            if !board.is_running() && announced_exits.insert(board.spec.id) {
                eprintln!(
                    "board {} stopped ({}); its console:\n{}",
                    board.spec.id,
                    board.state,
                    board.console_tail(15)
                );
            }
        }
    }
    if let (Part::Joined(_), Some(root)) = (&system, system.root()) {
        pool_system::join::leave(&pool, &root);
    }
    let _ = std::fs::remove_file(&control_path);
    drop(logs);
    pool.shutdown();
    println!("pool stopped");
    Ok(())
}

/// How often `up` looks after the boot service.
const BOOT_SERVICE_WATCH: Duration = Duration::from_secs(1);

type ControlRequest = (String, mpsc::Sender<String>);

/// Accepts one-line commands on the control socket and passes them to the
/// main loop, which owns the pool.
fn serve_control(path: &Path) -> Result<mpsc::Receiver<ControlRequest>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
    let (sender, receiver) = mpsc::channel::<ControlRequest>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            if BufReader::new(&stream).read_line(&mut line).is_err() {
                continue;
            }
            let (reply_sender, reply) = mpsc::channel();
            if sender.send((line.trim().to_string(), reply_sender)).is_err() {
                break;
            }
            if let Ok(answer) = reply.recv_timeout(Duration::from_secs(60)) {
                let _ = (&stream).write_all(answer.as_bytes());
            }
        }
    });
    Ok(receiver)
}

fn handle_control(pool: &mut Pool, command: &str) -> (String, bool) {
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    match verb {
        "status" => {
            let switch = pool.switch();
            let uplink = switch.uplink_stats().map_or_else(String::new, |uplink| format!("{uplink}\n"));
            (
                format!(
                    "{}switch faults: {}\nswitch counters: {}\n{uplink}",
                    pool.status_table(),
                    switch.faults(),
                    switch.stats()
                ),
                false,
            )
        }
        "fault" => match pool.switch().apply_faults(rest) {
            Ok(faults) => (format!("switch faults now: {faults}\n"), false),
            Err(error) => (format!("error: {error}\n"), false),
        },
        "restart-board" => {
            let restarted = rest.trim().parse::<u16>().map_err(anyhow::Error::from).and_then(|board| {
                pool.restart_board(board)?;
                Ok(board)
            });
            match restarted {
                Ok(board) => (format!("board {board} killed and booted again\n"), false),
                Err(error) => (format!("error: restarting board {}: {error:#}\n", rest.trim()), false),
            }
        }
        "down" => ("stopping the pool\n".into(), true),
        other => (format!("error: unknown command \"{other}\"\n"), false),
    }
}

fn control(run_dir: &Path, command: &str) -> Result<String> {
    let path = run_dir.join("control.sock");
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("no pool is running in {} (start one with `just up`)", run_dir.display()))?;
    writeln!(stream, "{command}")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut stream, &mut reply)?;
    if let Some(error) = reply.strip_prefix("error: ") {
        bail!("{}", error.trim());
    }
    Ok(reply)
}

fn ping(boards: u16, args: &PoolArgs) -> Result<()> {
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

fn bench(rounds: usize, boot_sizes: &[u16], args: &PoolArgs) -> Result<()> {
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

fn group_bench(sizes: &[u16], args: &PoolArgs) -> Result<()> {
    println!(
        "\n== group broadcast: latency and throughput by group size, PB and BB, with a null RPC as the unit"
    );
    pool_bench::group::run(sizes, &args.run_dir, |size| {
        boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), size)).map(|(pool, _)| pool)
    })
}

/// Guest instruction counts per operation (see `pool_bench::instructions`).
fn instructions_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "== instructions: each operation's guest instructions under QEMU -icount (two runs), wall clock without"
    );
    pool_bench::instructions::run(&args.run_dir, &nucleus_path(args), |config| {
        boot_pool(config).map(|(pool, _)| pool)
    })
}

/// RPC latency and throughput (see `pool_bench::rpc`) in a pool of two boards, then a
/// board-to-board call across a VXLAN uplink against one within a switch.
fn rpc_bench(args: &PoolArgs) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 2))?;
    let result = pool_bench::rpc::run(&pool, &args.run_dir);
    pool.shutdown();
    result?;
    pool_bench::rpc::across_uplink(&args.run_dir, &nucleus_path(args))
}

/// The sections of the servers built on the nucleus (see `pool_bench::system`).
fn system_benches(args: &PoolArgs) -> Result<()> {
    processes_bench(args)?;
    bullet_bench(args)?;
    directory_bench(args)?;
    system_bench()
}

/// Remote process creation in a pool of two boards.
fn processes_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "\n== processes: creating a 64 KiB program on another board, in units of local creation and of a null RPC"
    );
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 2))?;
    let result = pool_bench::system::processes(&pool);
    pool.shutdown();
    result
}

/// The Bullet server in a pool of one board with a fresh disk.
fn bullet_bench(args: &PoolArgs) -> Result<()> {
    println!("\n== bullet: file reads and creates against RPC and raw disk operations on the same path");
    let disk = ("bench-disk.img", pool_bench::system::BULLET_DISK_BYTES);
    bench_on_fresh_disk(args, 1, disk, pool_bench::system::bullet)
}

/// The directory service on boards 0–2 of a pool of four, board 0 with a fresh disk.
fn directory_bench(args: &PoolArgs) -> Result<()> {
    println!(
        "\n== directory: lookups against a null RPC, updates against a broadcast in a group like the \
         directory's, rates"
    );
    let disk = ("bench-directory-disk.img", pool_bench::directory::DIRECTORY_DISK_BYTES);
    bench_on_fresh_disk(args, pool_bench::directory::DIRECTORY_BOARDS, disk, pool_bench::directory::directory)
}

/// Runs `bench` on a pool of `boards` whose board 0 has a fresh disk
/// (`disk`: image file name in the run directory, size in bytes).
fn bench_on_fresh_disk(
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
fn system_bench() -> Result<()> {
    println!(
        "\n== system: {} boards brought up by `boot up`; exec through the run server, placements, `ax hello`",
        pool_bench::system::SYSTEM_BOARDS
    );
    let boot = std::env::current_exe().context("finding this program")?;
    pool_bench::system::system(&boot)
}

/// Boards that idle while their host CPU is measured, and for how long.
const IDLE_BOARDS: u16 = 4;
const IDLE_MEASURE: Duration = Duration::from_secs(10);

/// What idle boards cost the host: they should sleep in `wfi`, waking only
/// for their timer.
fn idle_bench(args: &PoolArgs) -> Result<()> {
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
fn nucleus_bench(args: &PoolArgs) -> Result<()> {
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

/// Runs a workstation command that prints a text.
fn workstation(run_dir: &Path, command: impl FnOnce(&mut Workstation) -> Result<String>) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    print!("{}", command(&mut ws)?);
    Ok(())
}

fn control_process(run_dir: &Path, process: &workstation::Target, action: Action) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    workstation::stop_or_resume(&mut ws, process, action, false).map(|text| print!("{text}"))
}

/// `ax`: the program's ending is ax's exit status (130 after Ctrl-C). The
/// Ctrl-C handler (also SIGTERM and SIGHUP) only counts; `ax` acts on the count.
fn ax(run_dir: &Path, argv: &[String], on: Option<u16>, detach: bool) -> Result<()> {
    let interrupts = Interrupts::new();
    let counter = interrupts.clone();
    ctrlc::set_handler(move || counter.raise()).context("installing the Ctrl-C handler")?;
    let mut ws = Workstation::connect(run_dir)?;
    if let Some(ending) = ws.ax_session(argv, &AxOptions { on, detach }, &interrupts)? {
        std::process::exit(ending.status());
    }
    Ok(())
}

/// `log`: a detached program's output, followed until Ctrl-C with `--follow`.
fn log(run_dir: &Path, process: &workstation::Target, follow: bool) -> Result<()> {
    let path = workstation::log_file(run_dir, process)?;
    let stop = Arc::new(AtomicBool::new(false));
    if follow {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    workstation::print_log(&path, &mut std::io::stdout().lock(), follow, &|| stop.load(Ordering::SeqCst))
}

/// `top`: the live view, or one view as text.
fn top(run_dir: &Path, once: bool) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    if once {
        let snapshot = workstation::top::gather(&mut ws);
        print!("{}", workstation::top::text(&snapshot, 100));
        return Ok(());
    }
    workstation::top::run(&mut ws)
}

fn run_program(
    board: u16,
    program: &str,
    argument: u64,
    run_to_completion: bool,
    detach: bool,
    run_dir: &Path,
) -> Result<()> {
    let mut workstation = workstation::Workstation::connect(run_dir)?;
    let mut exec = amoeba_client::exec::Exec::new(program, &[program]);
    exec.argument = argument;
    if run_to_completion {
        exec.scheduling = amoeba_abi::syscall::SCHED_RUN_TO_COMPLETION;
    }
    let status = workstation.run(board, program, exec, detach)?;
    if let Some(status) = status {
        println!("{program} exited with status {status}");
        if status != 0 {
            std::process::exit(1);
        }
    }
    Ok(())
}

fn rpc(call: RpcCall, run_dir: &Path) -> Result<()> {
    let port = host_station::HostPort::connect(&run_dir.join("host.sock"))
        .with_context(|| format!("no pool is running in {} (start one with `just up`)", run_dir.display()))?;
    let mut client = host_station::rpc_client::RpcClient::new(port);
    match call {
        RpcCall::Info { capability } => match client.std_info(&capability) {
            Ok(info) => println!("{info}"),
            Err(status) => bail!("std_info failed: {status}"),
        },
        RpcCall::Echo { port, text } => {
            let start = Instant::now();
            let service = amoeba_abi::Capability::for_port(port);
            match echo::Client::new(&mut client).echo(&service, text.as_bytes()) {
                Ok((_, buf)) => println!(
                    "reply ({:.2} ms): {}",
                    start.elapsed().as_secs_f64() * 1e3,
                    String::from_utf8_lossy(&buf)
                ),
                Err(status) => bail!("trans failed: {status}"),
            }
        }
    }
    Ok(())
}

fn rpc_demo(args: &PoolArgs) -> Result<()> {
    let config = PoolConfig::new(&args.run_dir, nucleus_path(args), 3);
    let (pool, _) = boot_pool(config)?;
    let get_seed: u64 = 0x00c0_ffee_0001;
    let put = amoeba_abi::GetPort(amoeba_abi::Port::from_u64(get_seed)).put_port();
    let server = pool.exec(0, "echo-server", get_seed)?;
    println!("echo server: process {} on board 0, put-port {put}", server.pid);
    let client = pool.exec(1, "echo-client", put.to_u64())?;
    let status = pool
        .wait_process(&client, Duration::from_secs(60))
        .context("the echo client on board 1 did not finish")?;
    let client_console = pool.boards()[1].console_text();
    for line in client_console.lines().filter(|l| l.starts_with("echo-client")) {
        println!("board 1: {line}");
    }
    if status != 0 {
        bail!("the echo client on board 1 failed ({status})");
    }
    let mut host = host_station::rpc_client::RpcClient::new(pool.new_host_port()?);
    let service = amoeba_abi::Capability::for_port(put);
    for round in 0..3 {
        let text = format!("hello from the host, round {round}");
        let start = Instant::now();
        match echo::Client::new(&mut host).echo(&service, text.as_bytes()) {
            Ok((_, reply)) if reply == text.as_bytes() => {
                println!("host: echo {round} answered in {:.2} ms", start.elapsed().as_secs_f64() * 1e3)
            }
            Ok((_, reply)) => bail!("host: wrong echo: {:?}", String::from_utf8_lossy(&reply)),
            Err(status) => bail!("host: trans failed: {status}"),
        }
    }
    pool.shutdown();
    println!("rpc demo: ok");
    Ok(())
}

fn group_demo(args: &PoolArgs) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::replicated_counter(&pool, None);
    pool.shutdown();
    result
}

fn chat_demo(args: &PoolArgs, lines: u64) -> Result<()> {
    let (pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::ordered_chat(&pool, lines);
    pool.shutdown();
    result
}

fn sequencer_crash_demo(args: &PoolArgs) -> Result<()> {
    let (mut pool, _) = boot_pool(PoolConfig::new(&args.run_dir, nucleus_path(args), 4))?;
    let result = pool_demos::sequencer_crash(&mut pool);
    pool.shutdown();
    result
}

fn gdb(board: u16, args: &PoolArgs) -> Result<()> {
    let socket = args.run_dir.join(format!("board{board}.gdb"));
    if !socket.exists() {
        bail!("no GDB socket {} (is a pool running with `just up`?)", socket.display());
    }
    let gdb = ["gdb-multiarch", "gdb"]
        .into_iter()
        .find(|candidate| std::process::Command::new(candidate).arg("--version").output().is_ok())
        .context("GDB is not installed; install it with:\n    sudo apt-get install -y gdb-multiarch")?;
    let status = std::process::Command::new(gdb)
        .arg(nucleus_path(args))
        .args(["-ex", "set architecture aarch64"])
        .args(["-ex", &format!("target remote {}", socket.display())])
        .status()?;
    if !status.success() {
        bail!("{gdb} exited with {status}");
    }
    Ok(())
}
