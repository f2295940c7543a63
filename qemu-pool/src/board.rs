//! One board: a QEMU `virt` machine running the nucleus, its console file
//! and its port on the switch.

use anyhow::{Context, Result};
use pool_control::Mac;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

pub const QEMU: &str = "qemu-system-aarch64";
pub const QEMU_INSTALL_HINT: &str =
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends qemu-system-arm";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardState {
    Starting,
    Ready,
    Exited(Option<i32>),
}

impl std::fmt::Display for BoardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoardState::Starting => write!(f, "starting"),
            BoardState::Ready => write!(f, "ready"),
            BoardState::Exited(Some(code)) => write!(f, "exited ({code})"),
            BoardState::Exited(None) => write!(f, "killed"),
        }
    }
}

/// What a board is started with.
#[derive(Clone, Debug)]
pub struct BoardSpec {
    pub id: u16,
    pub role: String,
    /// Extra bootargs, e.g. `test=exception`.
    pub extra_bootargs: String,
    /// A raw disk image the board gets as its virtio block device.
    pub disk: Option<PathBuf>,
    /// RAM in MiB.
    pub memory_mib: u32,
    /// Run with QEMU's `-icount shift=0`: one guest instruction per
    /// nanosecond of virtual time, and the PMU's instructions-retired event
    /// counting (what `just bench --instructions` reads). Slower; for
    /// measurement only.
    pub count_instructions: bool,
}

/// RAM of a board unless its spec says otherwise.
pub const DEFAULT_MEMORY_MIB: u32 = 256;

impl BoardSpec {
    /// A board with id `id` in role `role`, 256 MiB of RAM, no disk.
    pub fn new(id: u16, role: &str) -> BoardSpec {
        BoardSpec {
            id,
            role: role.into(),
            extra_bootargs: String::new(),
            disk: None,
            memory_mib: DEFAULT_MEMORY_MIB,
            count_instructions: false,
        }
    }
}

/// Makes sure a raw disk image of `bytes` exists at `path` (a sparse file, as
/// `truncate` makes); with `fresh`, an existing one is emptied first. An existing
/// image keeps its contents (and is grown, never shrunk, to `bytes`).
pub fn prepare_disk(path: &Path, bytes: u64, fresh: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // The owner's alone: it holds the directory's root capability and every
    // capability stored in a directory.
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(fresh)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating disk image {}", path.display()))?;
    crate::pool::set_mode(path, 0o600)?;
    let len = file.metadata()?.len();
    if len < bytes {
        file.set_len(bytes).with_context(|| format!("sizing disk image {}", path.display()))?;
    }
    Ok(())
}

pub struct Board {
    pub spec: BoardSpec,
    pub mac: Mac,
    pub state: BoardState,
    pub incarnation: u32,
    pub console: PathBuf,
    pub socket: PathBuf,
    pub gdb_socket: PathBuf,
    process: Option<Child>,
}

/// Finds QEMU on the PATH, or says how to install it.
pub fn find_qemu() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(QEMU))
        .find(|candidate| candidate.is_file())
        .with_context(|| format!("{QEMU} is not installed; install it with:\n    {QEMU_INSTALL_HINT}"))
}

impl Board {
    pub fn new(spec: BoardSpec, run_dir: &Path) -> Self {
        let id = spec.id;
        Self {
            mac: Mac::for_board(id),
            spec,
            state: BoardState::Starting,
            incarnation: 0,
            console: run_dir.join(format!("board{id}.console")),
            socket: run_dir.join(format!("board{id}.sock")),
            gdb_socket: run_dir.join(format!("board{id}.gdb")),
            process: None,
        }
    }

    /// The switch port name of this board.
    pub fn port_name(&self) -> String {
        format!("b{}", self.spec.id)
    }

    /// Starts QEMU; the switch must already listen on `self.socket`.
    pub fn start(&mut self, qemu: &Path, image: &Path, bundle: &Path, incarnation: u32) -> Result<()> {
        self.incarnation = incarnation;
        // The owner's alone: servers print their capabilities there.
        let console = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&self.console)
        }
        .with_context(|| format!("creating console file {}", self.console.display()))?;
        crate::pool::set_mode(&self.console, 0o600)?;
        let bootargs = format!(
            "board={} role={} incarnation={incarnation} semihosting {}",
            self.spec.id, self.spec.role, self.spec.extra_bootargs
        );
        let _ = std::fs::remove_file(&self.gdb_socket);
        let mut command = Command::new(qemu);
        command
            .args(["-M", "virt", "-cpu", "cortex-a72", "-smp", "1", "-m"])
            .arg(format!("{}M", self.spec.memory_mib))
            .args(["-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-kernel")
            .arg(image)
            .arg("-initrd")
            .arg(bundle)
            .args(["-append", bootargs.trim()])
            .arg("-netdev")
            .arg(format!("stream,id=net0,server=off,addr.type=unix,addr.path={}", self.socket.display()))
            .arg("-device")
            .arg(format!("virtio-net-device,netdev=net0,mac={}", self.mac))
            // Entropy for capabilities, from the host's random source.
            .args([
                "-object",
                "rng-random,id=rng0,filename=/dev/urandom",
                "-device",
                "virtio-rng-device,rng=rng0",
            ])
            .arg("-gdb")
            .arg(format!("unix:{},server=on,wait=off", self.gdb_socket.display()));
        if self.spec.count_instructions {
            command.args(["-icount", "shift=0"]);
        }
        if let Some(disk) = &self.spec.disk {
            // Writes go to the image file at once (no cache in QEMU's memory), so
            // a board killed with SIGKILL loses only what its nucleus had not sent.
            command
                .arg("-drive")
                .arg(format!("file={},if=none,format=raw,id=disk0,cache=writeback", disk.display()))
                .args(["-device", "virtio-blk-device,drive=disk0"]);
        }
        command.stdin(Stdio::null()).stdout(console.try_clone()?).stderr(console);
        // SAFETY: between fork and exec the closure only makes async-signal-safe
        // system calls (prctl, setpgid) and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                // Die with the pool program, however it ends: no orphaned boards.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Own process group: a Ctrl-C in the terminal reaches the pool
                // program, which then stops the boards in order.
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| format!("starting {}", qemu.display()))?;
        self.process = Some(child);
        self.state = BoardState::Starting;
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Notices a QEMU that has exited.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        let status = self.process.as_mut()?.try_wait().ok().flatten()?;
        self.process = None;
        self.state = BoardState::Exited(status.code());
        Some(status)
    }

    /// Kills the board's QEMU (as a power cut would) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let status = child.wait().ok();
            self.state = BoardState::Exited(status.and_then(|s| s.code()));
        }
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// What the board has printed, up to its last whole line: a line it is
    /// half-way through printing is left for a later read, so that nobody
    /// parses a capability or a number cut short.
    pub fn console_text(&self) -> String {
        let mut text = self.console_everything();
        text.truncate(text.rfind('\n').map_or(0, |end| end + 1));
        text
    }

    /// Everything printed so far, a last partial line included (for reports).
    fn console_everything(&self) -> String {
        std::fs::read(&self.console).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Waits up to `timeout` for a console line starting with `prefix`; the
    /// first such line.
    pub fn wait_for_line(&self, prefix: &str, timeout: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.console_text().lines().find(|l| l.starts_with(prefix)) {
                return Some(line.to_string());
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The last `lines` lines of the console.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = self.console_everything();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.gdb_socket);
    }
}
