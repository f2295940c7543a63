//! The host's terminals: a TTY server (`amoeba_ipc::interfaces::tty`) the host runs on
//! the pool, so that a program it starts writes to the user's terminal (or, in
//! tests, into a buffer to look at) and reads what the user types or pipes in.
//! Each started program gets its own terminal object, named by capabilities in
//! its environment (STDIN, STDOUT, STDERR). The same server also keeps logs:
//! terminals whose output goes to a file in a directory of the host (a detached
//! program's STDOUT, kept by `up`).
//!
//! A read waits until there is input, so the server answers it later: it runs
//! its own loop on its own switch port rather than [`crate::rpc_server`]'s,
//! keeping the waiting reads (a few per terminal) until input or its end comes.
//! The host's standard input is read only once a program asks for it, so a
//! program that never reads leaves the user's typing alone.

use crate::host_port::HostPort;
use crate::rpc_client::pool_config;
use amoeba_abi::{Capability, Check, GetPort, Header, Port, Rights, Rng, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::{
    TTY_CREATE_RIGHT, TTY_READ_MAX, TTY_READ_RIGHT, TTY_WRITE_RIGHT, is_log_name, tty,
};
use flip::{Endpoint, Event, ReqId};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where a terminal's output goes.
#[derive(Clone)]
pub enum Sink {
    /// The host's standard output, each line prefixed (may be empty).
    Stdout {
        /// Printed before each line.
        prefix: String,
    },
    /// Kept for the caller to read ([`Terminal::text`]), up to [`BUFFER_MAX`] bytes.
    Buffer,
}

/// Where a terminal's input comes from.
#[derive(Clone, Debug, Default)]
pub enum Input {
    /// None: every read answers end of input.
    #[default]
    None,
    /// The host's standard input (the user's terminal, or a pipe), read once
    /// a program asks.
    Stdin,
    /// These bytes, then end of input.
    Text(Vec<u8>),
}

/// Most output a [`Sink::Buffer`] keeps (the rest is dropped).
pub const BUFFER_MAX: usize = 16 << 20;
/// Reads waiting for input, over all terminals; more are refused (`NoSpace`).
const PENDING_READS_MAX: usize = 64;
/// Input read ahead from the host's standard input and not yet taken.
const STDIN_AHEAD_MAX: usize = 64 * 1024;
/// A log longer than this is moved to `NAME.old` (replacing the one there) and
/// begun again, so a log takes at most twice this on the host's disk.
pub const LOG_MAX_BYTES: u64 = 4 << 20;
/// Logs open at once; opening another forgets the one written least recently
/// (its file stays; its writer's next write is refused and goes to its board's
/// console instead).
const LOGS_MAX: usize = 1024;

/// A new, empty file readable by the owner only (logs hold what programs print).
fn new_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// A log's file.
struct LogFile {
    dir: PathBuf,
    name: String,
    file: Option<std::fs::File>,
    written: u64,
}

impl LogFile {
    fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn open(dir: &Path, name: &str) -> std::io::Result<LogFile> {
        let mut log = LogFile { dir: dir.to_path_buf(), name: String::from(name), file: None, written: 0 };
        log.file = Some(new_file(&log.path())?);
        Ok(log)
    }

    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.written + data.len() as u64 > LOG_MAX_BYTES {
            let path = self.path();
            std::fs::rename(&path, self.dir.join(format!("{}.old", self.name)))?;
            self.file = Some(new_file(&path)?);
            self.written = 0;
        }
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("log closed"))?;
        file.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn rename(&mut self, name: &str) -> std::io::Result<()> {
        let to = self.dir.join(name);
        std::fs::rename(self.path(), &to)?;
        self.name = String::from(name);
        Ok(())
    }
}

enum Output {
    Sink(Sink),
    Log(LogFile),
}

struct TerminalState {
    random: Check,
    output: Output,
    /// What a [`Sink::Buffer`] kept.
    kept: Vec<u8>,
    input: Input,
    /// When it was last written (logs: which to forget first).
    last_write: Instant,
}

#[derive(Default)]
struct Terminals {
    objects: BTreeMap<u32, TerminalState>,
    next: u32,
}

impl Terminals {
    fn add(&mut self, state: TerminalState) -> u32 {
        self.next += 1;
        self.objects.insert(self.next, state);
        self.next
    }
}

/// The host's standard input as the server reads it.
#[derive(Default)]
struct StdinState {
    started: bool,
    ahead: VecDeque<u8>,
    ended: bool,
}

struct Shared {
    terminals: Mutex<Terminals>,
    written: Condvar,
    stdin: Mutex<StdinState>,
    /// The reader waits here while it is far enough ahead.
    stdin_taken: Condvar,
    /// Where logs go (a server that keeps logs).
    log_dir: Option<PathBuf>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Up to `size` bytes of input for terminal `object`: `Some(empty)` at end
    /// of input, `None` while there is none yet.
    fn take_input(self: &Arc<Self>, object: u32, size: usize) -> Result<Option<Vec<u8>>, Status> {
        let mut terminals = lock(&self.terminals);
        let terminal = terminals.objects.get_mut(&object).ok_or(Status::CapBad)?;
        match &mut terminal.input {
            Input::None => Ok(Some(Vec::new())),
            Input::Text(text) => {
                let n = text.len().min(size);
                Ok(Some(text.drain(..n).collect()))
            }
            Input::Stdin => {
                drop(terminals);
                let mut stdin = lock(&self.stdin);
                if !stdin.started {
                    stdin.started = true;
                    let shared = self.clone();
                    std::thread::Builder::new()
                        .name("tty-stdin".into())
                        .spawn(move || read_stdin(&shared))
                        .map_err(|_| Status::NoMem)?;
                }
                if stdin.ahead.is_empty() {
                    return Ok(stdin.ended.then(Vec::new));
                }
                let n = stdin.ahead.len().min(size);
                let bytes = stdin.ahead.drain(..n).collect();
                self.stdin_taken.notify_all();
                Ok(Some(bytes))
            }
        }
    }
}

/// The reader of the host's standard input: keeps up to [`STDIN_AHEAD_MAX`]
/// bytes ahead of the programs' reads, and marks the end.
fn read_stdin(shared: &Shared) {
    let mut stdin = std::io::stdin().lock();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stdin.read(&mut chunk) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        let mut state = lock(&shared.stdin);
        if n == 0 {
            state.ended = true;
            return;
        }
        state.ahead.extend(&chunk[..n]);
        while state.ahead.len() >= STDIN_AHEAD_MAX {
            state = shared.stdin_taken.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// A terminal of the host's TTY server.
#[derive(Clone)]
pub struct Terminal {
    /// Its capability (write and read rights), for a process's STDOUT,
    /// STDERR and STDIN.
    pub capability: Capability,
    object: u32,
    shared: Arc<Shared>,
}

impl Terminal {
    /// Everything written to it so far (a [`Sink::Buffer`]'s).
    pub fn text(&self) -> String {
        let terminals = lock(&self.shared.terminals);
        terminals
            .objects
            .get(&self.object)
            .map_or_else(String::new, |t| String::from_utf8_lossy(&t.kept).into_owned())
    }

    /// Waits until the output contains `needle`; the output then.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut terminals = lock(&self.shared.terminals);
        loop {
            let text =
                terminals.objects.get(&self.object).map(|t| String::from_utf8_lossy(&t.kept).into_owned())?;
            if text.contains(needle) {
                return Some(text);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            terminals = self
                .shared
                .written
                .wait_timeout(terminals, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        lock(&self.shared.terminals).objects.remove(&self.object);
    }
}

/// Closes its terminal when dropped: the object goes, and a board that checks
/// it as a process's owner ends that process.
pub struct TerminalGuard {
    object: u32,
    shared: Arc<Shared>,
}

/// The host's TTY server.
pub struct TtyServer {
    port: Port,
    server_random: Check,
    shared: Arc<Shared>,
    rng: Mutex<Rng>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One request being answered: the server's objects, and a read put off
/// until input comes.
struct Service<'a> {
    port: Port,
    server_random: Check,
    shared: &'a Arc<Shared>,
    rng: &'a Mutex<Rng>,
    deferred: Option<(u32, usize)>,
}

impl Objects for Service<'_> {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        if object == 0 {
            return self.shared.log_dir.is_some().then_some(self.server_random);
        }
        lock(&self.shared.terminals).objects.get(&object).map(|t| t.random)
    }
    fn describe(&mut self, object: u32) -> String {
        if object == 0 {
            return String::from("host log server");
        }
        match lock(&self.shared.terminals).objects.get(&object).map(|t| &t.output) {
            Some(Output::Log(log)) => format!("log {}", log.name),
            _ => format!("host terminal {object}"),
        }
    }
}

impl tty::Server for Service<'_> {
    fn write(&mut self, call: &Call<'_>, data: &[u8]) -> Result<(), Status> {
        let mut terminals = lock(&self.shared.terminals);
        let terminal = terminals.objects.get_mut(&call.object).ok_or(Status::CapBad)?;
        terminal.last_write = Instant::now();
        match &mut terminal.output {
            Output::Sink(Sink::Stdout { prefix }) => {
                let mut out = std::io::stdout().lock();
                for line in String::from_utf8_lossy(data).split_inclusive('\n') {
                    let _ = write!(out, "{prefix}{line}");
                }
                let _ = out.flush();
            }
            Output::Sink(Sink::Buffer) => {
                let room = BUFFER_MAX.saturating_sub(terminal.kept.len());
                terminal.kept.extend_from_slice(&data[..data.len().min(room)]);
            }
            Output::Log(log) => log.append(data).map_err(|_| Status::NoSpace)?,
        }
        self.shared.written.notify_all();
        Ok(())
    }

    fn read(&mut self, call: &Call<'_>, size: u32) -> Result<Vec<u8>, Status> {
        let size = size.min(TTY_READ_MAX) as usize;
        if size == 0 {
            return Ok(Vec::new());
        }
        match self.shared.take_input(call.object, size)? {
            Some(bytes) => Ok(bytes),
            None => {
                self.deferred = Some((call.object, size));
                Err(Status::NotNow) // not sent: the read waits
            }
        }
    }

    fn open_log(&mut self, _: &Call<'_>, name: String) -> Result<Capability, Status> {
        let dir = self.shared.log_dir.as_ref().ok_or(Status::ComBad)?;
        if !is_log_name(&name) {
            return Err(Status::ArgBad);
        }
        let random = lock(self.rng).check();
        let mut terminals = lock(&self.shared.terminals);
        let logs = terminals.objects.iter().filter(|(_, t)| matches!(t.output, Output::Log(_)));
        if logs.clone().count() >= LOGS_MAX
            && let Some(oldest) = logs.min_by_key(|(_, t)| t.last_write).map(|(object, _)| *object)
        {
            terminals.objects.remove(&oldest);
        }
        // Its own file until it is named: two logs may begin with one name.
        let object = terminals.next + 1;
        let log = LogFile::open(dir, &format!("{object}.{name}")).map_err(|_| Status::NoSpace)?;
        let state = TerminalState {
            random,
            output: Output::Log(log),
            kept: Vec::new(),
            input: Input::None,
            last_write: Instant::now(),
        };
        let object = terminals.add(state);
        Ok(Capability::owner(self.port, object, random))
    }

    fn name_log(&mut self, call: &Call<'_>, name: String) -> Result<(), Status> {
        if !is_log_name(&name) {
            return Err(Status::ArgBad);
        }
        let mut terminals = lock(&self.shared.terminals);
        match terminals.objects.get_mut(&call.object).map(|t| &mut t.output) {
            Some(Output::Log(log)) => log.rename(&name).map_err(|_| Status::NoSpace),
            Some(_) => Err(Status::ComBad),
            None => Err(Status::CapBad),
        }
    }
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut urandom, &mut seed);
    }
    seed
}

impl TtyServer {
    /// Starts serving terminals on its own port of the switch.
    pub fn start(host_port: HostPort) -> TtyServer {
        Self::start_with(host_port, None)
    }

    /// Starts serving terminals and logs, kept as files in `dir` (made if
    /// missing, readable by the owner only).
    pub fn start_logs(host_port: HostPort, dir: &Path) -> std::io::Result<TtyServer> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Self::start_with(host_port, Some(dir.to_path_buf())))
    }

    fn start_with(host_port: HostPort, log_dir: Option<PathBuf>) -> TtyServer {
        let mut rng = Rng::from_seed(random_seed());
        let get = GetPort::random(&mut rng);
        let port = get.put_port();
        let server_random = rng.check();
        let shared = Arc::new(Shared {
            terminals: Mutex::default(),
            written: Condvar::new(),
            stdin: Mutex::default(),
            stdin_taken: Condvar::new(),
            log_dir,
        });
        let rng = Mutex::new(rng);
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = TtyServer { port, server_random, shared, rng, stop, thread: None };
        let service = ServeState {
            port,
            server_random,
            shared: server.shared.clone(),
            rng: Mutex::new(Rng::from_seed(random_seed())),
            stop: server.stop.clone(),
        };
        server.thread = std::thread::Builder::new()
            .name("tty-server".into())
            .spawn(move || serve(host_port, get, &service))
            .ok();
        server
    }

    /// The server's own capability with the right to open logs (a server
    /// started with [`TtyServer::start_logs`]).
    pub fn log_capability(&self) -> Capability {
        Capability::owner(self.port, 0, self.server_random).restrict(TTY_CREATE_RIGHT).unwrap_or_default()
    }

    /// A new terminal whose output goes to `sink`, with no input.
    pub fn terminal(&self, sink: Sink) -> Terminal {
        self.terminal_with_input(sink, Input::None)
    }

    /// A new terminal whose output goes to `sink` and whose input comes from `input`.
    pub fn terminal_with_input(&self, sink: Sink, input: Input) -> Terminal {
        let random = lock(&self.rng).check();
        let object = lock(&self.shared.terminals).add(TerminalState {
            random,
            output: Output::Sink(sink),
            kept: Vec::new(),
            input,
            last_write: Instant::now(),
        });
        let owner = Capability::owner(self.port, object, random);
        let capability = owner.restrict(Rights(TTY_WRITE_RIGHT.0 | TTY_READ_RIGHT.0)).unwrap_or(owner);
        Terminal { capability, object, shared: self.shared.clone() }
    }

    /// A guard that closes `terminal` when dropped.
    pub fn closing(&self, terminal: &Terminal) -> TerminalGuard {
        TerminalGuard { object: terminal.object, shared: self.shared.clone() }
    }
}

impl Drop for TtyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the serving thread holds.
struct ServeState {
    port: Port,
    server_random: Check,
    shared: Arc<Shared>,
    rng: Mutex<Rng>,
    stop: Arc<AtomicBool>,
}

/// A read waiting for input.
struct PendingRead {
    req: ReqId,
    object: u32,
    size: usize,
}

fn serve(host_port: HostPort, get: GetPort, state: &ServeState) {
    let mut endpoint =
        Endpoint::new(flip::Mac(host_port.mac().0), host_port.flip_incarnation(), pool_config());
    endpoint.register_server(&get);
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_micros() as u64;
    let mut pending: Vec<PendingRead> = Vec::new();
    while !state.stop.load(Ordering::Relaxed) {
        while let Some(event) = endpoint.poll_event() {
            if let Event::RequestArrived { req, header, buf, .. } = event {
                let mut service = Service {
                    port: state.port,
                    server_random: state.server_random,
                    shared: &state.shared,
                    rng: &state.rng,
                    deferred: None,
                };
                let (reply, data) = tty::dispatch(&mut service, &header, &buf);
                match service.deferred {
                    Some((object, size)) if pending.len() < PENDING_READS_MAX => {
                        pending.push(PendingRead { req, object, size })
                    }
                    Some(_) => {
                        let _ = endpoint.put_reply(now(), req, &Header::reply(Status::NoSpace), &[]);
                    }
                    None => {
                        let _ = endpoint.put_reply(now(), req, &reply, &data);
                    }
                }
            }
        }
        // Reads whose input (or its end) has come, or whose terminal went.
        pending.retain(|read| {
            let answer = match state.shared.take_input(read.object, read.size) {
                Ok(None) => return true,
                Ok(Some(bytes)) => tty::read::reply(bytes),
                Err(status) => Err(status),
            };
            let (header, data) = answer.unwrap_or_else(amoeba_ipc::interface::status_reply);
            let _ = endpoint.put_reply(now(), read.req, &header, &data);
            false
        });
        // After the replies: a reply must not wait for the next frame or timeout.
        while let Some(transmit) = endpoint.poll_transmit() {
            if host_port.send_frame(&transmit.frame).is_err() {
                return; // the pool is gone
            }
        }
        // Waiting reads are looked at often: input comes from another thread.
        let longest = if pending.is_empty() { Duration::from_millis(50) } else { Duration::from_millis(10) };
        let wait = endpoint
            .next_deadline()
            .map_or(longest, |deadline| Duration::from_micros(deadline.saturating_sub(now())))
            .clamp(Duration::from_micros(100), longest);
        if let Some(frame) = host_port.recv_timeout(wait) {
            endpoint.handle_frame(now(), &frame);
        }
        endpoint.handle_timeout(now());
    }
}
