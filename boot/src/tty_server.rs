//! The host's terminals: a TTY server (`amoeba_ipc::interfaces::tty`) the host runs on
//! the pool, so that the standard output of a program it starts comes back to the
//! user's terminal (or, in tests, into a buffer to look at). Each started program
//! gets its own terminal object, named by a capability in its environment (STDOUT).

use crate::host_port::HostPort;
use crate::rpc_server::RpcServer;
use amoeba_abi::{Capability, Check, GetPort, Port, Rng, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::tty;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where a terminal's output goes.
#[derive(Clone)]
pub enum Sink {
    /// The host's standard output, each line prefixed (may be empty).
    Stdout {
        /// Printed before each line.
        prefix: String,
    },
    /// Kept for the caller to read ([`Terminal::text`]).
    Buffer,
}

struct TerminalState {
    random: Check,
    sink: Sink,
    output: Vec<u8>,
}

#[derive(Default)]
struct Terminals {
    objects: BTreeMap<u32, TerminalState>,
    next: u32,
}

struct Shared {
    terminals: Mutex<Terminals>,
    written: Condvar,
}

/// A terminal of the host's TTY server.
#[derive(Clone)]
pub struct Terminal {
    /// Its capability (write right only), for a process's STDOUT.
    pub capability: Capability,
    object: u32,
    shared: Arc<Shared>,
}

impl Terminal {
    /// Everything written to it so far.
    pub fn text(&self) -> String {
        let terminals = self.shared.terminals.lock().unwrap();
        terminals
            .objects
            .get(&self.object)
            .map_or_else(String::new, |t| String::from_utf8_lossy(&t.output).into_owned())
    }

    /// Waits until the output contains `needle`; the output then.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut terminals = self.shared.terminals.lock().unwrap();
        loop {
            let text = terminals
                .objects
                .get(&self.object)
                .map(|t| String::from_utf8_lossy(&t.output).into_owned())?;
            if text.contains(needle) {
                return Some(text);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            terminals = self.shared.written.wait_timeout(terminals, left).unwrap().0;
        }
    }
}

/// The host's TTY server.
pub struct TtyServer {
    port: Port,
    shared: Arc<Shared>,
    rng: Mutex<Rng>,
    _server: RpcServer,
}

struct Service {
    port: Port,
    shared: Arc<Shared>,
}

impl Objects for Service {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        self.shared.terminals.lock().unwrap().objects.get(&object).map(|t| t.random)
    }
    fn describe(&mut self, object: u32) -> String {
        format!("host terminal {object}")
    }
}

impl tty::Server for Service {
    fn write(&mut self, call: &Call<'_>, data: &[u8]) -> Result<(), Status> {
        let mut terminals = self.shared.terminals.lock().unwrap();
        let terminal = terminals.objects.get_mut(&call.object).ok_or(Status::CapBad)?;
        terminal.output.extend_from_slice(data);
        if let Sink::Stdout { prefix } = &terminal.sink {
            let mut out = std::io::stdout().lock();
            for line in String::from_utf8_lossy(data).split_inclusive('\n') {
                let _ = write!(out, "{prefix}{line}");
            }
            let _ = out.flush();
        }
        self.shared.written.notify_all();
        Ok(())
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
    /// Starts serving on its own port of the switch.
    pub fn start(host_port: HostPort) -> TtyServer {
        let mut rng = Rng::from_seed(random_seed());
        let get = GetPort::random(&mut rng);
        let port = get.put_port();
        let shared = Arc::new(Shared { terminals: Mutex::default(), written: Condvar::new() });
        let mut service = Service { port, shared: shared.clone() };
        let server =
            RpcServer::start(host_port, get, Box::new(move |h, b| tty::dispatch(&mut service, h, b)));
        TtyServer { port, shared, rng: Mutex::new(rng), _server: server }
    }

    /// A new terminal whose output goes to `sink`.
    pub fn terminal(&self, sink: Sink) -> Terminal {
        let random = self.rng.lock().unwrap().check();
        let mut terminals = self.shared.terminals.lock().unwrap();
        terminals.next += 1;
        let object = terminals.next;
        terminals.objects.insert(object, TerminalState { random, sink, output: Vec::new() });
        let owner = Capability::owner(self.port, object, random);
        let capability =
            owner.restrict(amoeba_ipc::interfaces::TTY_WRITE_RIGHT).expect("an owner capability restricts");
        Terminal { capability, object, shared: self.shared.clone() }
    }
}
