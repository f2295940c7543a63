//! Bringing the system up on a booted pool, in order, through the process
//! servers with the host capabilities (DESIGN.md "Booting a whole pool"):
//! the Bullet server on the board with the disk, then the directory replicas,
//! then the run server, then the boot service, which keeps them up. Each
//! server announces its capability to the host's bootstrap server by RPC
//! (`amoeba_ipc::interfaces::bootstrap`; its console line is for people). A part of a pool across hosts that does not start the servers joins
//! them instead (`join`).

pub mod boot_service;
pub mod capabilities_file;
pub mod directory;
pub mod join;
pub mod names;

use amoeba_abi::Capability;
use amoeba_abi::Rights;
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::directory::{COLUMN_RIGHTS, soap};
use amoeba_ipc::interfaces::process::{HOST_DISK, HOST_PLACEMENT, ProcessReport, ProcessState};
use amoeba_ipc::interfaces::starter::{Announcement, BOOTSTRAP_CAPABILITY_NAME};
use amoeba_ipc::interfaces::{process_server, run_server, standard};
use anyhow::{Context, Result};
use host_station::bootstrap_server::Expected;
use qemu_pool::exec::Started;
use qemu_pool::pool::Pool;
use std::time::Duration;

/// Blocks at the start of the disk kept for the directory service's anchors;
/// the Bullet server gets the rest.
pub const ANCHOR_BLOCKS: u64 = 64;
/// How long a server has to come up.
const SERVER_START: Duration = Duration::from_secs(60);
/// How often the host asks whether a server it waits for still runs.
const EXIT_POLL: Duration = Duration::from_millis(250);
/// The Bullet server's heap: its cache and the files being written.
const BULLET_HEAP: u64 = 160 << 20;

/// Random hex for a server's new secrets.
fn seed_hex() -> Result<String> {
    let mut bytes = [0u8; 24];
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Blocks `first .. first + count` of the disk of board `board` (count 0:
/// all of the rest), as a disk object with every disk right.
pub fn disk_capability(pool: &Pool, board: usize, first: u64, count: u32) -> Result<Capability> {
    let host = pool.host_capability(board).restrict(HOST_DISK).expect("an owner capability restricts");
    process_server::Client::new(&mut *pool.rpc())
        .disk(&host, 0, first, count)
        .map_err(|status| anyhow::anyhow!("board {board} has no usable disk: {status}"))
}

/// Starts the Bullet server on board `board` (which has the disk); its super
/// capability, which stays the same across restarts on the same disk.
pub fn start_bullet(pool: &Pool, board: usize) -> Result<Capability> {
    let (_, capability) = start_bullet_in(pool, board, ANCHOR_BLOCKS, 0, &[])?;
    Ok(capability)
}

/// Starts the Bullet server on board `board` on disk blocks `first ..
/// first + count` (count 0: to the end), with `environment` strings besides
/// its seed (e.g. `CACHE_MIB=0`); its process and its super capability.
///
/// The server makes a new store only when told to (`FORMAT=1`), and the host
/// tells it only for a disk this pool emptied (`--fresh-disk`) that holds no
/// store yet; on any other disk a server that finds no valid superblock
/// refuses to start, and this says why.
pub fn start_bullet_in(
    pool: &Pool,
    board: usize,
    first: u64,
    count: u32,
    environment: &[&str],
) -> Result<(Started, Capability)> {
    let disk = disk_capability(pool, board, first, count)?;
    let mut exec = Exec::new("bullet-server", &["bullet-server"]).with_capability("DISK", disk);
    exec.heap_size = BULLET_HEAP;
    exec.startup.environment.push(format!("SEED={}", seed_hex()?));
    let fresh = pool.disk_is_fresh();
    if fresh {
        exec.startup.environment.push(String::from("FORMAT=1"));
    }
    exec.startup.environment.extend(environment.iter().map(|e| String::from(*e)));
    let started = start_server(pool, board, &exec)?;
    if fresh {
        pool.disk_formatted();
    }
    Ok(started)
}

/// Starts the run server on board `board` with every board of the pool as a
/// processor (its host capability restricted to placement); its capability.
pub fn start_run_server(pool: &Pool, board: usize) -> Result<Capability> {
    let mut exec = Exec::new("run-server", &["run-server"]);
    for (index, spec) in pool.boards().iter().enumerate() {
        let host =
            pool.host_capability(index).restrict(HOST_PLACEMENT).expect("an owner capability restricts");
        exec = exec.with_capability(&format!("host/board{}", spec.spec.id), host);
    }
    run_server_started(pool, board, exec)
}

/// Starts the run server on board `board` with the processors of its pool
/// directory (rows naming host capabilities restricted to placement, which it
/// reads again now and then); its capability.
pub fn start_run_server_for(pool: &Pool, board: usize, pool_directory: &Capability) -> Result<Capability> {
    let exec = Exec::new("run-server", &["run-server"]).with_capability("POOLDIR", *pool_directory);
    run_server_started(pool, board, exec)
}

/// Like [`start_run_server_for`], with the run server's `SEED` (its identity
/// follows from it: started again with the same one, it has the same capability).
pub fn start_run_server_seeded(
    pool: &Pool,
    board: usize,
    pool_directory: &Capability,
    seed: &str,
) -> Result<Capability> {
    let exec = Exec::new("run-server", &["run-server"]).with_capability("POOLDIR", *pool_directory);
    run_server_started_with(pool, board, exec, seed)
}

fn run_server_started(pool: &Pool, board: usize, exec: Exec) -> Result<Capability> {
    run_server_started_with(pool, board, exec, &seed_hex()?)
}

fn run_server_started_with(pool: &Pool, board: usize, mut exec: Exec, seed: &str) -> Result<Capability> {
    exec.startup.environment.push(format!("SEED={seed}"));
    let (_, capability) = start_server(pool, board, &exec)?;
    Ok(capability)
}

/// Starts `exec` on board `board`, handing it an object of the host's
/// bootstrap server (`BOOTSTRAP`), and waits until the server announces there
/// that it serves; the server's process and the capability it announced.
fn start_server(pool: &Pool, board: usize, exec: &Exec) -> Result<(Started, Capability)> {
    let (started, expected) = start_expecting(pool, board, exec)?;
    let capability =
        wait_announced(
            pool,
            &started,
            &expected,
            &exec.name,
            SERVER_START,
            |announcement| match announcement {
                Announcement::Serving(capability) => Some(*capability),
                _ => None,
            },
        )?;
    Ok((started, capability))
}

/// Starts `exec` on board `board` with a new object of the host's bootstrap
/// server as its `BOOTSTRAP`; its process and that object, which hears what it
/// announces and reports.
pub fn start_expecting(pool: &Pool, board: usize, exec: &Exec) -> Result<(Started, Expected)> {
    let expected = pool
        .bootstrap()?
        .open()
        .map_err(|status| anyhow::anyhow!("no bootstrap object for {}: {status}", exec.name))?;
    let exec = exec.clone().with_capability(BOOTSTRAP_CAPABILITY_NAME, expected.capability());
    let started = pool.exec_with(board, &exec.name, &exec)?;
    Ok((started, expected))
}

/// Waits up to `timeout` for an announcement of `started` that `wanted` makes
/// something of, and returns that; fails at once, with the end of its board's
/// console (where it said why), if the process ends first.
pub fn wait_announced<T>(
    pool: &Pool,
    started: &Started,
    expected: &Expected,
    name: &str,
    timeout: Duration,
    mut wanted: impl FnMut(&Announcement) -> Option<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    let console = &pool.boards()[started.board];
    loop {
        let look = EXIT_POLL.min(deadline.saturating_duration_since(std::time::Instant::now()));
        if let Some(found) =
            expected.wait(look, |announcements, _| announcements.iter().find_map(&mut wanted))
        {
            return Ok(found);
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!("{name} did not start within {timeout:?}:\n{}", console.console_tail(15));
        }
        // A server that refuses to start (say, a disk it will not take) ends:
        // say so at once, with what it printed, rather than at the deadline.
        if let Ok(ProcessReport { state: ProcessState::Exited(status), .. }) =
            pool.inspect(&started.capability)
        {
            anyhow::bail!(
                "{name} ended with status {status} without starting:\n{}",
                console.console_tail(15)
            );
        }
    }
}

/// Stores every program's ELF file in the Bullet server as `/bin/<name>` (a
/// file there before is replaced and destroyed); (name, file).
pub fn install_programs(
    pool: &Pool,
    bullet: &Capability,
    root: &Capability,
) -> Result<Vec<(String, Capability)>> {
    let bin = in_directory("making /bin", || names::ensure_directory(&mut *pool.rpc(), root, "bin"))?;
    let mut installed = Vec::new();
    for (name, path) in pool.programs() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file = amoeba_client::files::put(&mut *pool.rpc(), bullet, &bytes, |_| {})
            .map_err(|status| anyhow::anyhow!("storing {name} in the Bullet server: {status}"))?;
        in_directory(&format!("entering /bin/{name}"), || {
            names::replace_and_destroy(&mut *pool.rpc(), &bin, name, file)
        })?;
        installed.push((name.clone(), file));
    }
    Ok(installed)
}

/// Size of the disk image `up` makes (a sparse file: only what is written takes
/// room on the host).
pub const DISK_BYTES: u64 = 1 << 30;

/// What runs where once the system is up.
pub struct System {
    /// The Bullet server's super capability.
    pub bullet: Capability,
    /// The root directory's owner capability (the user's ROOT).
    pub root: Capability,
    /// The run server's capability.
    pub run: Capability,
    /// The programs installed as `/bin/<name>`: (name, file).
    pub programs: Vec<(String, Capability)>,
    /// (board index, service name) of every server started.
    pub services: Vec<(usize, &'static str)>,
    /// The boot service, which keeps the others up (`up` keeps it up).
    pub boot: boot_service::BootService,
}

impl System {
    /// The capabilities the workstation commands need, by name.
    pub fn capabilities(&self, pool: &Pool) -> Vec<(String, Capability)> {
        let boards = pool.boards().iter().enumerate();
        let mut named: Vec<(String, Capability)> =
            boards.map(|(index, b)| (format!("board{}", b.spec.id), pool.host_capability(index))).collect();
        named.push((String::from("bullet"), self.bullet));
        named.push((String::from("root"), self.root));
        named.push((String::from("run"), self.run));
        named.push((String::from("boot"), self.boot.capability));
        named
    }

    /// The services on board `index`, for the status table.
    pub fn services_on(&self, index: usize) -> Vec<&'static str> {
        self.services.iter().filter(|(board, _)| *board == index).map(|(_, name)| *name).collect()
    }
}

/// Brings the system up on a booted pool whose board 0 has the disk: the
/// Bullet server, the directory service (on boards 0–2), the programs stored
/// as `/bin/<name>`, every board's placement capability as `/hosts/board<N>`
/// (the run server's pool directory), the run server (on the last board), and
/// the boot service ([`boot_service_board`]), with its configuration in
/// `/system/boot`, once it sees every service up.
/// On a disk that held the system before, the user's files and directories stay.
pub fn bring_up(pool: &Pool, mut progress: impl FnMut(&str)) -> Result<System> {
    progress("starting the Bullet server on board 0");
    let bullet = start_bullet(pool, 0)?;
    let replicas = directory::replica_boards(pool.boards().len());
    progress(&format!("starting the directory service on boards {replicas:?}"));
    let directory = directory::DirectoryService::start(pool, bullet, &replicas)?;
    let root = directory.root;
    progress("installing the programs as /bin/<name>");
    let programs = install_programs(pool, &bullet, &root)?;
    progress("entering the processors as /hosts/board<N>");
    let hosts = enter_hosts(pool, &root)?;
    let run_board = pool.boards().len() - 1;
    progress(&format!("starting the run server on board {run_board}"));
    let run_seed = seed_hex()?;
    let run = start_run_server_seeded(pool, run_board, &hosts, &run_seed)?;
    wait_for_processors(pool, &run, pool.boards().len())?;
    let boot_board = boot_service_board(pool.boards().len());
    progress(&format!("starting the boot service on board {boot_board}"));
    let system = boot_service::system_directory(pool, &root)?;
    let bullet_seed = seed_hex()?;
    let parts = boot_service::Services {
        bullet: (bullet, 0, &bullet_seed),
        directory: &directory,
        run: (run, run_board, hosts, &run_seed),
        check_directory: system,
    };
    let config = boot_service::config(pool, &parts)?;
    boot_service::write_config(pool, &bullet, &system, &config)?;
    let boot = boot_service::start(pool, boot_board, &system)?;
    boot.wait_all_up(pool)?;
    let mut services = vec![(0, "bullet"), (run_board, "run"), (boot_board, "boot")];
    services.extend(replicas.iter().map(|&board| (board, "directory")));
    Ok(System { bullet, root, run, programs, services, boot })
}

/// The board the boot service starts on in a pool of `boards`: the one before
/// the run server's (the last) when that board holds no directory replica,
/// so that the two servers that poll the whole pool do not share one board's
/// time (on a crowded host each adds its work, and its threads waiting for
/// the processor, to its board's load); else the last board.
pub fn boot_service_board(boards: usize) -> usize {
    let last = boards.saturating_sub(1);
    let before = last.saturating_sub(1);
    if last > 0 && !directory::replica_boards(boards).contains(&before) { before } else { last }
}

/// Waits until the run server has `count` processors answering.
pub fn wait_for_processors(pool: &Pool, run: &Capability, count: usize) -> Result<()> {
    let deadline = std::time::Instant::now() + SERVER_START;
    loop {
        let hosts = run_server::Client::new(&mut *pool.rpc()).hosts(run);
        let alive = hosts.as_ref().map_or(0, |h| h.iter().filter(|h| h.alive).count());
        if alive >= count {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("the run server sees {alive} of {count} processors: {hosts:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A directory call, retried while the service is between replicas.
fn in_directory<T>(what: &str, f: impl FnMut() -> Result<T, amoeba_abi::Status>) -> Result<T> {
    directory::retrying(f).map_err(|status| anyhow::anyhow!("{what}: {status}"))
}

/// Enters every board's host capability, restricted to what the run server
/// needs, as `/hosts/board<N>`, and removes the rows of boards this pool no
/// longer has; the `/hosts` directory, read-only.
fn enter_hosts(pool: &Pool, root: &Capability) -> Result<Capability> {
    let rpc = || pool.rpc();
    let hosts = in_directory("making /hosts", || names::ensure_directory(&mut *rpc(), root, "hosts"))?;
    let mut current = Vec::new();
    for (index, board) in pool.boards().iter().enumerate() {
        let name = format!("board{}", board.spec.id);
        let host =
            pool.host_capability(index).restrict(HOST_PLACEMENT).expect("an owner capability restricts");
        in_directory(&format!("entering /hosts/{name}"), || names::enter(&mut *rpc(), &hosts, &name, host))?;
        current.push(name);
    }
    let listing = in_directory("listing /hosts", || soap::Client::new(&mut *rpc()).list(&hosts))?;
    for row in listing.rows.iter().filter(|row| !current.contains(&row.name)) {
        in_directory("cleaning /hosts", || soap::Client::new(&mut *rpc()).delete(&hosts, &row.name))?;
    }
    let read_only = in_directory("restricting /hosts", || {
        standard::Client::new(&mut *rpc()).restrict(&hosts, Rights(COLUMN_RIGHTS.0 | Rights::READ.0))
    })?;
    Ok(read_only)
}

/// A table of every board: its services, load and free memory.
pub fn status_table(pool: &Pool, system: &System) -> String {
    use std::fmt::Write as _;
    let mut table = format!(
        "{:<6} {:<18} {:<10} {:<14} {:>6} {:>10} {}\n",
        "board", "mac", "state", "services", "load", "free", "console"
    );
    for (index, board) in pool.boards().iter().enumerate() {
        let info = pool.board_info(index).ok();
        let load = info
            .as_ref()
            .map_or_else(|| String::from("-"), |i| format!("{:.2}", i.load_milli() as f64 / 1e3));
        let free = info.as_ref().map_or_else(|| String::from("-"), |i| format!("{} MiB", i.free_bytes >> 20));
        let services = system.services_on(index).join(",");
        let _ = writeln!(
            table,
            "{:<6} {:<18} {:<10} {:<14} {:>6} {:>10} {}",
            board.spec.id,
            board.mac.to_string(),
            board.state.to_string(),
            if services.is_empty() { "-" } else { &services },
            load,
            free,
            board.console.display()
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::boot_service_board;

    #[test]
    fn the_boot_service_leaves_the_run_servers_board_when_a_board_without_a_replica_is_free() {
        assert_eq!(boot_service_board(1), 0);
        assert_eq!(boot_service_board(2), 1);
        assert_eq!(boot_service_board(4), 3, "boards 0-2 hold the replicas");
        assert_eq!(boot_service_board(5), 3);
        assert_eq!(boot_service_board(32), 30);
    }
}
