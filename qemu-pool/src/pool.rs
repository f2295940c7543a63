//! A pool: the switch, N boards, and a host port, started together and
//! stopped together (dropping a `Pool` kills every board it started).
//!
//! The run directory holds secrets (the boards' initrds start with their host
//! capabilities' checks; the consoles and the disk image hold servers' and
//! directories' capabilities; the switch's sockets let anyone who opens them
//! onto the pool's network), so it is its owner's alone: the directory is
//! 0700, and everything in it, whoever makes it (this process, the switch,
//! QEMU), is made without any access for group or others.

use crate::board::{Board, BoardSpec, BoardState, find_qemu};
use crate::image;
use anyhow::{Context, Result, bail};
use host_station::bootstrap_server::BootstrapServer;
use host_station::host_port::HostPort;
use host_station::rpc_client::RpcClient;
use host_station::tty_server::TtyServer;
use pool_control::secret::BoardSecret;
use pool_control::{BROADCAST, Message};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vswitch::faults::FaultConfig;
use vswitch::{Switch, SwitchHandle, VxlanConfig};

#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub run_dir: PathBuf,
    /// The nucleus ELF built for aarch64-unknown-none.
    pub nucleus: PathBuf,
    pub boards: Vec<BoardSpec>,
    pub faults: FaultConfig,
    /// Seed of the switch's fault decisions.
    pub seed: u64,
    /// User programs to put in every board's bundle (name, ELF file).
    pub programs: Vec<(String, PathBuf)>,
    pub ready_timeout: Duration,
    /// Board 0's disk was emptied for this pool (`--fresh-disk`) or made new:
    /// the Bullet server may make a new store on it (and only then).
    pub fresh_disk: bool,
    /// The VXLAN segment to the other parts, for one part of a pool across hosts.
    pub uplink: Option<UplinkSetting>,
}

/// How a part of a pool across hosts reaches the others: a VXLAN uplink.
#[derive(Clone, Debug)]
pub struct UplinkSetting {
    pub vxlan: VxlanConfig,
    /// Open the uplink's UDP socket in this network namespace (a name `ip
    /// netns` knows) rather than this process's: the bench runs two parts in
    /// one process, each in a namespace of its own.
    pub namespace: Option<String>,
}

/// The uplink's port name (for faults and partitions: `partition=b0,h0/vx0`).
pub const UPLINK_PORT: &str = "vx0";

/// RAM of the board with the disk: the Bullet server keeps files in memory.
pub const DISK_BOARD_MEMORY_MIB: u32 = 512;

impl PoolConfig {
    /// Gives board 0 a disk: the raw image at `path`, made (sparse, `bytes` long)
    /// if it does not exist, emptied first if `fresh`, else kept as it is.
    pub fn with_disk(mut self, path: impl Into<PathBuf>, bytes: u64, fresh: bool) -> Result<Self> {
        let path = path.into();
        // A disk made now (or one that was empty) is as fresh as an emptied one.
        let empty = !std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        crate::board::prepare_disk(&path, bytes, fresh)?;
        self.fresh_disk = fresh || empty;
        if let Some(board) = self.boards.first_mut() {
            board.disk = Some(path);
            board.memory_mib = board.memory_mib.max(DISK_BOARD_MEMORY_MIB);
        }
        Ok(self)
    }
}

impl PoolConfig {
    /// `count` boards with ids 0..count in the processor-pool role.
    pub fn new(run_dir: impl Into<PathBuf>, nucleus: impl Into<PathBuf>, count: u16) -> Self {
        let boards = (0..count).map(|id| BoardSpec::new(id, "pool")).collect();
        Self {
            run_dir: run_dir.into(),
            nucleus: nucleus.into(),
            boards,
            faults: FaultConfig::default(),
            seed: 1,
            programs: crate::default_programs(),
            ready_timeout: Duration::from_secs(20) + Duration::from_millis(500) * count as u32,
            fresh_disk: false,
            uplink: None,
        }
    }

    /// Numbers the boards from `first` on (`first`, `first + 1`, ...): one
    /// part of a pool across hosts, whose board ids (and so MACs) no other
    /// part has.
    pub fn with_first_board(mut self, first: u16) -> Result<Self> {
        let count = self.boards.len();
        if count > 0 && first.checked_add((count - 1) as u16).is_none() {
            bail!(
                "boards {first} to {} do not fit board ids (at most {})",
                first as usize + count - 1,
                u16::MAX
            );
        }
        for (offset, board) in self.boards.iter_mut().enumerate() {
            board.id = first + offset as u16;
        }
        Ok(self)
    }

    /// The id of the first board (0 for a pool on one host).
    pub fn first_board(&self) -> u16 {
        self.boards.first().map_or(0, |b| b.id)
    }
}

pub struct Pool {
    boards: Vec<Board>,
    host: HostPort,
    switch: Switch,
    qemu: PathBuf,
    image: PathBuf,
    bundle: PathBuf,
    /// Each board's secret (its process server's get-port and host capability check).
    secrets: Vec<BoardSecret>,
    programs: Vec<(String, PathBuf)>,
    run_dir: PathBuf,
    ready_timeout: Duration,
    rpc: OnceLock<Mutex<RpcClient>>,
    tty: OnceLock<TtyServer>,
    bootstrap: OnceLock<BootstrapServer>,
    /// Board 0's disk was emptied for this pool and no Bullet store is on it yet.
    fresh_disk: std::sync::atomic::AtomicBool,
}

/// From now on this process (and the QEMUs and sockets it makes) creates files
/// with no access for group or others, whatever the caller's umask was.
fn make_private() {
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail
    // and touches no memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Makes the run directory its owner's alone (0700), unless it is a directory
/// others share (sticky, like `/tmp`, or someone else's), which is refused:
/// the pool's secrets need a directory of their own.
fn make_run_dir_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    // SAFETY: geteuid only reads the process's effective user id.
    let me = unsafe { libc::geteuid() };
    if meta.mode() & 0o1000 != 0 || meta.uid() != me {
        bail!(
            "{} is shared with others; the pool keeps secrets in its run directory, so give it one of \
             its own (--run-dir)",
            dir.display()
        );
    }
    set_mode(dir, 0o700)
}

/// Sets `path`'s permission bits to `mode` (a file or directory made before,
/// perhaps by an earlier run with looser permissions).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making {} private", path.display()))
}

/// A board secret from the host's random source.
fn new_secret() -> Result<BoardSecret> {
    let mut bytes = [0u8; 12];
    let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).context("reading /dev/urandom")?;
    let mut secret = BoardSecret { get_port: [0; 6], check: [0; 6] };
    secret.get_port.copy_from_slice(&bytes[..6]);
    secret.check.copy_from_slice(&bytes[6..]);
    Ok(secret)
}

/// The host capability of a board with `secret`: object 0 of its process server.
pub fn host_capability(secret: &BoardSecret) -> amoeba_abi::Capability {
    let port = amoeba_abi::GetPort(amoeba_abi::Port(secret.get_port)).put_port();
    amoeba_abi::Capability::owner(port, 0, amoeba_abi::Check(secret.check))
}

/// Writes board `id`'s initrd: its secret, then the bundle; only the owner may read it.
fn write_initrd(run_dir: &Path, id: u16, secret: &BoardSecret, bundle: &Path) -> Result<PathBuf> {
    let path = run_dir.join(format!("board{id}.initrd"));
    let mut file = crate::create_private_file(&path)?;
    std::io::Write::write_all(&mut file, &secret.encode())?;
    std::io::Write::write_all(&mut file, &std::fs::read(bundle)?)?;
    Ok(path)
}

/// Packs the user programs into the bundle every board gets as its initrd.
fn write_bundle(programs: &[(String, PathBuf)], path: &Path) -> Result<()> {
    let mut files = Vec::new();
    for (name, file) in programs {
        let bytes = std::fs::read(file).with_context(|| {
            format!("reading program {name} at {} (build it with `just build`)", file.display())
        })?;
        files.push((name.as_str(), bytes));
    }
    let entries: Vec<(&str, &[u8])> = files.iter().map(|(name, bytes)| (*name, bytes.as_slice())).collect();
    let bundle =
        pool_control::bundle::build(&entries).map_err(|e| anyhow::anyhow!("building the bundle: {e:?}"))?;
    let mut file = crate::create_private_file(path)?;
    std::io::Write::write_all(&mut file, &bundle).with_context(|| format!("writing {}", path.display()))
}

/// A fresh incarnation number for each board start.
/// A board's boots must have growing incarnations (a request that reached an
/// earlier boot is told apart by it): the wall clock in seconds, or one more
/// than the board's last, whichever is larger (a u32 of seconds lasts until
/// 2106; each board has its own MAC, so boards need not differ).
fn new_incarnation(previous: u32) -> u32 {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    seconds.max(previous.wrapping_add(1)).max(1)
}

impl Pool {
    /// Starts the switch and every board, without waiting for readiness.
    pub fn start(config: PoolConfig) -> Result<Self> {
        let qemu = find_qemu()?;
        make_private();
        std::fs::create_dir_all(&config.run_dir)
            .with_context(|| format!("creating run directory {}", config.run_dir.display()))?;
        make_run_dir_private(&config.run_dir)?;
        let image = config.run_dir.join("nucleus.img");
        image::write_image(&config.nucleus, &image)?;
        set_mode(&image, 0o600)?;
        let bundle = config.run_dir.join("bundle.img");
        write_bundle(&config.programs, &bundle)?;

        let mut switch = Switch::for_part(config.faults.clone(), config.seed, config.first_board());
        if let Some(uplink) = &config.uplink {
            let socket = match &uplink.namespace {
                Some(namespace) => vswitch::lab::bind_in_namespace(namespace, &uplink.vxlan)?,
                None => vswitch::uplink::bind(&uplink.vxlan)?,
            };
            switch.attach_vxlan(UPLINK_PORT, uplink.vxlan.clone(), socket)?;
        }
        let boards: Vec<Board> =
            config.boards.iter().cloned().map(|spec| Board::new(spec, &config.run_dir)).collect();
        // The switch must listen before QEMU starts: QEMU never reconnects.
        for board in &boards {
            switch.listen_board(&board.socket, &board.port_name(), board.mac)?;
        }
        switch.listen_hosts(&config.run_dir.join("host.sock"))?;
        let host = HostPort::from_stream(switch.connect_host()?)?;

        let secrets = boards.iter().map(|_| new_secret()).collect::<Result<Vec<_>>>()?;
        let mut pool = Self {
            boards,
            host,
            switch,
            qemu,
            image,
            bundle,
            secrets,
            programs: config.programs,
            run_dir: config.run_dir,
            ready_timeout: config.ready_timeout,
            rpc: OnceLock::new(),
            tty: OnceLock::new(),
            bootstrap: OnceLock::new(),
            fresh_disk: std::sync::atomic::AtomicBool::new(config.fresh_disk),
        };
        for index in 0..pool.boards.len() {
            pool.start_board(index)?;
        }
        Ok(pool)
    }

    /// Starts the pool and waits until every board reports ready.
    pub fn boot(config: PoolConfig) -> Result<Self> {
        let mut pool = Self::start(config)?;
        pool.wait_ready(|_, _| {})?;
        Ok(pool)
    }

    /// Starts board `index`'s QEMU with a new incarnation (and the board's secret).
    fn start_board(&mut self, index: usize) -> Result<()> {
        let id = self.boards[index].spec.id;
        let initrd = write_initrd(&self.run_dir, id, &self.secrets[index], &self.bundle)?;
        let incarnation = new_incarnation(self.boards[index].incarnation);
        self.boards[index].start(&self.qemu, &self.image, &initrd, incarnation)
    }

    /// The host capability (owner) of board `index`'s process server.
    pub fn host_capability(&self, index: usize) -> amoeba_abi::Capability {
        host_capability(&self.secrets[index])
    }

    /// Board 0's disk was emptied when this pool started and the Bullet server has
    /// not made its store on it yet: the one time the server may format.
    pub fn disk_is_fresh(&self) -> bool {
        self.fresh_disk.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The Bullet server has made its store on the fresh disk: from now on the
    /// disk holds files, and a server started on it must find them.
    pub fn disk_formatted(&self) {
        self.fresh_disk.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The programs the pool was built with (name, ELF file).
    pub fn programs(&self) -> &[(String, PathBuf)] {
        &self.programs
    }

    /// The pool's RPC client (on a host port of its own).
    pub fn rpc(&self) -> std::sync::MutexGuard<'_, RpcClient> {
        self.rpc
            .get_or_init(|| {
                let port = self.new_host_port().expect("a host port for the pool's RPC client");
                Mutex::new(RpcClient::new(port))
            })
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The host's TTY server (on a host port of its own).
    pub fn tty(&self) -> &TtyServer {
        self.tty
            .get_or_init(|| TtyServer::start(self.new_host_port().expect("a host port for the TTY server")))
    }

    /// The host's bootstrap server (on a host port of its own, started on
    /// first use): programs the host starts tell it what they are and what
    /// they found.
    pub fn bootstrap(&self) -> Result<&BootstrapServer> {
        if let Some(server) = self.bootstrap.get() {
            return Ok(server);
        }
        let port = self.new_host_port().context("a host port for the bootstrap server")?;
        // Two first uses at once each start one; the one not kept stops when dropped.
        let _ = self.bootstrap.set(BootstrapServer::start(port));
        self.bootstrap.get().context("the bootstrap server did not start")
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    pub fn boards(&self) -> &[Board] {
        &self.boards
    }

    pub fn board(&self, id: u16) -> Option<&Board> {
        self.boards.iter().find(|b| b.spec.id == id)
    }

    fn board_index(&self, id: u16) -> Result<usize> {
        self.boards
            .iter()
            .position(|b| b.spec.id == id)
            .with_context(|| format!("no board {id} in this pool"))
    }

    /// The pool's own host port.
    pub fn host(&self) -> &HostPort {
        &self.host
    }

    /// One more host port on the switch (port names `h1`, `h2`, ...).
    pub fn new_host_port(&self) -> Result<HostPort> {
        HostPort::from_stream(self.switch.connect_host()?)
    }

    pub fn switch(&self) -> SwitchHandle {
        self.switch.handle()
    }

    /// Waits until every started board has answered discovery. `progress`
    /// hears (ready, total) each time a board comes up.
    pub fn wait_ready(&mut self, mut progress: impl FnMut(usize, usize)) -> Result<Duration> {
        let start = Instant::now();
        let deadline = start + self.ready_timeout;
        let mut last_discover: Option<Instant> = None;
        loop {
            // Boards that were stopped on purpose are not waited for.
            let total = self.boards.iter().filter(|b| !matches!(b.state, BoardState::Exited(_))).count();
            let ready = self.boards.iter().filter(|b| b.state == BoardState::Ready).count();
            progress(ready, total);
            if ready == total {
                return Ok(start.elapsed());
            }
            for board in &mut self.boards {
                if board.state == BoardState::Starting
                    && let Some(status) = board.poll_exit()
                {
                    bail!(
                        "board {} stopped before it was ready ({status}); the end of its console ({}):\n{}",
                        board.spec.id,
                        board.console.display(),
                        board.console_tail(20)
                    );
                }
            }
            if Instant::now() > deadline {
                let mut report = String::new();
                for board in self.boards.iter().filter(|b| b.state != BoardState::Ready) {
                    let _ = writeln!(
                        report,
                        "board {} did not report ready within {:?}; the end of its console ({}):\n{}",
                        board.spec.id,
                        self.ready_timeout,
                        board.console.display(),
                        board.console_tail(20)
                    );
                }
                bail!(report);
            }
            if last_discover.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
                self.host.send(BROADCAST, &Message::Discover)?;
                last_discover = Some(Instant::now());
            }
            let answer = self.host.wait_for(Duration::from_millis(100), |source, message| match message {
                Message::Ready(status) => Some((source, status.board_id, status.incarnation)),
                _ => None,
            });
            if let Some((mac, board_id, incarnation)) = answer
                && let Some(board) = self.boards.iter_mut().find(|b| b.mac == mac && b.spec.id == board_id)
                && board.incarnation == incarnation
                && board.is_running()
            {
                board.state = BoardState::Ready;
            }
        }
    }

    /// Waits for board `id`'s QEMU to exit.
    pub fn wait_exit(&mut self, id: u16, timeout: Duration) -> Result<ExitStatus> {
        let index = self.board_index(id)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.boards[index].poll_exit() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("board {id} still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Cuts board `id`'s power.
    pub fn kill_board(&mut self, id: u16) -> Result<()> {
        let index = self.board_index(id)?;
        self.boards[index].kill();
        Ok(())
    }

    /// Boots board `id` again with a new incarnation and waits until it is ready.
    pub fn restart_board(&mut self, id: u16) -> Result<()> {
        let index = self.board_index(id)?;
        self.boards[index].kill();
        self.start_board(index)?;
        self.wait_ready(|_, _| {})?;
        // The pool's client knew the board's old incarnation; a new client
        // starts without that (its first calls would fail as ServerRestarted).
        self.rpc = OnceLock::new();
        Ok(())
    }

    /// Notices boards whose QEMU has exited.
    pub fn poll_exits(&mut self) {
        for board in &mut self.boards {
            board.poll_exit();
        }
    }

    /// A table of board, MAC, role, state, PID, console.
    pub fn status_table(&self) -> String {
        let mut table =
            format!("{:<6} {:<18} {:<8} {:<12} {:<8} console\n", "board", "mac", "role", "state", "pid");
        for board in &self.boards {
            let pid = board.pid().map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                table,
                "{:<6} {:<18} {:<8} {:<12} {:<8} {}",
                board.spec.id,
                board.mac.to_string(),
                board.spec.role,
                board.state.to_string(),
                pid,
                board.console.display()
            );
        }
        table
    }

    /// Every board's console tail, for failure reports.
    pub fn consoles(&self, lines: usize) -> String {
        let mut out = String::new();
        for board in &self.boards {
            let _ = writeln!(
                out,
                "--- board {} console ({}) ---\n{}",
                board.spec.id,
                board.console.display(),
                board.console_tail(lines)
            );
        }
        out
    }

    /// Stops every board and the switch.
    pub fn shutdown(mut self) {
        for board in &mut self.boards {
            board.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_part_of_a_pool_numbers_its_boards_from_its_first() {
        let config = PoolConfig::new("run", "nucleus", 3).with_first_board(4).unwrap();
        let ids: Vec<u16> = config.boards.iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![4, 5, 6]);
        assert_eq!(config.first_board(), 4);
        let error = PoolConfig::new("run", "nucleus", 3).with_first_board(u16::MAX - 1).unwrap_err();
        assert!(error.to_string().contains("do not fit"), "{error}");
        assert_eq!(PoolConfig::new("run", "nucleus", 2).first_board(), 0);
    }

    #[test]
    fn a_run_directory_of_its_own_becomes_private_and_a_shared_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755).unwrap();
        make_run_dir_private(dir.path()).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        set_mode(dir.path(), 0o1777).unwrap();
        let error = make_run_dir_private(dir.path()).unwrap_err().to_string();
        assert!(error.contains("shared with others"), "{error}");
        assert_eq!(mode(dir.path()), 0o1777, "a shared directory is left as it was");
    }
}
