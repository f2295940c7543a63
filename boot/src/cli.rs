//! What the user can type: the command line, parsed by `clap`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "boot", about = "Boot and drive a pool of Amoeba-style nucleus boards under QEMU")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct PoolArgs {
    /// Directory for sockets, consoles and the boot image.
    #[arg(long, default_value = "run/pool")]
    pub(crate) run_dir: PathBuf,
    /// The nucleus ELF (default: the release build in the workspace's target directory).
    #[arg(long)]
    pub(crate) nucleus: Option<PathBuf>,
}

/// One host's part of a pool across hosts.
#[derive(clap::Args, Clone)]
pub(crate) struct PartArgs {
    /// The id of this part's first board: every part of a pool across hosts
    /// has board ids (and so MACs) of its own.
    #[arg(long, default_value_t = 0)]
    pub(crate) first_board: u16,
    /// Join the other parts over a VXLAN segment, the way the Linux kernel's
    /// `vxlan` device does: local=ADDR,remote=ADDR[,remote=ADDR...],vni=N[,port=4789].
    #[arg(long)]
    pub(crate) vxlan: Option<vswitch::VxlanConfig>,
    /// Join the system that another part started (no servers here): FILE is a
    /// copy of that part's run directory's `capabilities`, readable by you alone.
    #[arg(long, value_name = "FILE", requires = "vxlan", conflicts_with = "fresh_disk")]
    pub(crate) join: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum BenchSection {
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
pub(crate) enum RpcCall {
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

pub(crate) fn parse_capability(text: &str) -> Result<amoeba_abi::Capability, String> {
    text.parse().map_err(|e| format!("not a capability: {e:?}"))
}

pub(crate) fn parse_target(text: &str) -> Result<workstation::Target, String> {
    text.parse()
}

pub(crate) fn parse_port(text: &str) -> Result<amoeba_abi::Port, String> {
    text.parse().map_err(|e| format!("not a port: {e:?}"))
}

pub(crate) fn nucleus_path(args: &PoolArgs) -> PathBuf {
    args.nucleus.clone().unwrap_or_else(qemu_pool::default_nucleus)
}
