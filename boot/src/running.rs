//! A running pool: booting it, `up` (the system, its control socket, the boot
//! service kept alive), and the commands that reach a running pool through that
//! socket (`down`, `status`, `fault`, `restart-board`, `gdb`).

use crate::cli::*;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pool_system::join::Part;
use qemu_pool::Pool;
use qemu_pool::PoolConfig;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) fn progress_bar(total: usize, message: &str) -> ProgressBar {
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
pub(crate) fn boot_pool(config: PoolConfig) -> Result<(Pool, Duration)> {
    let total = config.boards.len();
    let mut pool = Pool::start(config)?;
    let bar = progress_bar(total, "booting");
    let result = pool.wait_ready(|ready, _| bar.set_position(ready as u64));
    bar.finish_and_clear();
    let elapsed = result?;
    Ok((pool, elapsed))
}

pub(crate) fn up(
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
pub(crate) const BOOT_SERVICE_WATCH: Duration = Duration::from_secs(1);

pub(crate) type ControlRequest = (String, mpsc::Sender<String>);

/// Accepts one-line commands on the control socket and passes them to the
/// main loop, which owns the pool.
pub(crate) fn serve_control(path: &Path) -> Result<mpsc::Receiver<ControlRequest>> {
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

pub(crate) fn handle_control(pool: &mut Pool, command: &str) -> (String, bool) {
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

pub(crate) fn control(run_dir: &Path, command: &str) -> Result<String> {
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

pub(crate) fn gdb(board: u16, args: &PoolArgs) -> Result<()> {
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
