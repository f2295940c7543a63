//! The host's bootstrap server (`amoeba_ipc::interfaces::bootstrap`): every
//! program the host starts and wants to hear from gets an object of its own,
//! named `BOOTSTRAP` in its capability environment, and tells it what it is
//! (a server: its capability, a group it made) or what it found (a test
//! program: its figures). The host reads those, typed, instead of reading
//! console lines, which stay for people.
//!
//! It answers every request at once, so it runs on [`crate::rpc_server`].
//! What it keeps is bounded: objects, announcements and figures per object,
//! and the bytes of all figures; past a bound a request gets `NoSpace`.

use crate::host_port::HostPort;
use crate::rpc_server::RpcServer;
use amoeba_abi::{Capability, Check, GetPort, Port, Rng, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::bootstrap;
use amoeba_ipc::interfaces::starter::{self, Announcement, BOOTSTRAP_TELL, Figure, Timing, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Objects at once (programs being heard from); more are refused.
const OBJECTS_MAX: usize = 4096;
/// Announcements one object keeps.
const ANNOUNCEMENTS_MAX: usize = 16;
/// Figures one object keeps.
const FIGURES_MAX: usize = 4096;
/// Bytes of all figures kept, over all objects (names, texts, numbers).
const FIGURE_BYTES_MAX: usize = 16 << 20;

/// What one started program told.
#[derive(Default)]
struct Told {
    random: Check,
    announcements: Vec<Announcement>,
    figures: Vec<Figure>,
}

#[derive(Default)]
struct Table {
    objects: BTreeMap<u32, Told>,
    next: u32,
    figure_bytes: usize,
}

struct Shared {
    table: Mutex<Table>,
    told: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Table> {
    shared.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes a figure takes, for the overall bound.
fn figure_bytes(figure: &Figure) -> usize {
    figure.name.len()
        + match &figure.value {
            Value::Text(text) => text.len(),
            Value::Numbers(numbers) => numbers.len() * 8,
            _ => 16,
        }
}

/// One request being answered.
struct Service<'a> {
    port: Port,
    shared: &'a Shared,
}

impl Objects for Service<'_> {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        lock(self.shared).objects.get(&object).map(|told| told.random)
    }
    fn describe(&mut self, object: u32) -> String {
        if object == 0 { String::from("host bootstrap server") } else { format!("bootstrap object {object}") }
    }
}

impl bootstrap::Server for Service<'_> {
    fn announce(&mut self, call: &Call<'_>, announcement: Announcement) -> Result<(), Status> {
        let mut table = lock(self.shared);
        let told = table.objects.get_mut(&call.object).ok_or(Status::CapBad)?;
        if told.announcements.len() >= ANNOUNCEMENTS_MAX {
            return Err(Status::NoSpace);
        }
        told.announcements.try_reserve(1).map_err(|_| Status::NoSpace)?;
        told.announcements.push(announcement);
        self.shared.told.notify_all();
        Ok(())
    }

    fn report(&mut self, call: &Call<'_>, figure: Figure) -> Result<(), Status> {
        if !figure.is_bounded() {
            return Err(Status::ArgBad);
        }
        let bytes = figure_bytes(&figure);
        let mut table = lock(self.shared);
        if table.figure_bytes + bytes > FIGURE_BYTES_MAX {
            return Err(Status::NoSpace);
        }
        let told = table.objects.get_mut(&call.object).ok_or(Status::CapBad)?;
        if told.figures.len() >= FIGURES_MAX {
            return Err(Status::NoSpace);
        }
        told.figures.try_reserve(1).map_err(|_| Status::NoSpace)?;
        told.figures.push(figure);
        table.figure_bytes += bytes;
        self.shared.told.notify_all();
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

/// A running bootstrap server; stops when dropped.
pub struct BootstrapServer {
    port: Port,
    shared: Arc<Shared>,
    rng: Mutex<Rng>,
    /// The thread serving it (none in unit tests, which call the dispatcher).
    _server: Option<RpcServer>,
}

impl BootstrapServer {
    /// Starts serving on its own port of the switch.
    pub fn start(host_port: HostPort) -> BootstrapServer {
        let (mut server, get) = Self::unserved();
        let (port, serving) = (server.port, server.shared.clone());
        server._server = Some(RpcServer::start(
            host_port,
            get,
            Box::new(move |header, buf| {
                bootstrap::dispatch(&mut Service { port, shared: &serving }, header, buf)
            }),
        ));
        server
    }

    /// The server's state without a thread serving it, and its get-port.
    fn unserved() -> (BootstrapServer, GetPort) {
        let mut rng = Rng::from_seed(random_seed());
        let get = GetPort::random(&mut rng);
        let shared = Arc::new(Shared { table: Mutex::default(), told: Condvar::new() });
        (BootstrapServer { port: get.put_port(), shared, rng: Mutex::new(rng), _server: None }, get)
    }

    /// A new object for one program to tell; `NoSpace` while as many are open
    /// as the server keeps.
    pub fn open(&self) -> Result<Expected, Status> {
        let random = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).check();
        let mut table = lock(&self.shared);
        if table.objects.len() >= OBJECTS_MAX {
            return Err(Status::NoSpace);
        }
        // Object 0 is the server itself, which nobody tells anything.
        let object = (table.next..)
            .chain(1..table.next)
            .find(|o| *o != 0 && !table.objects.contains_key(o))
            .ok_or(Status::NoSpace)?;
        table.next = object.wrapping_add(1);
        table.objects.insert(object, Told { random, ..Told::default() });
        let owner = Capability::owner(self.port, object, random);
        let capability = owner.restrict(BOOTSTRAP_TELL).map_err(|_| Status::SysErr)?;
        Ok(Expected { capability, object, shared: self.shared.clone() })
    }
}

/// One program's object: what it announced and reported. Dropping it
/// forgets the object (what the program tells afterwards is refused).
pub struct Expected {
    capability: Capability,
    object: u32,
    shared: Arc<Shared>,
}

impl Expected {
    /// The capability the program gets (`BOOTSTRAP`), with the right to tell only.
    pub fn capability(&self) -> Capability {
        self.capability
    }

    /// Everything it announced so far, oldest first.
    pub fn announcements(&self) -> Vec<Announcement> {
        lock(&self.shared).objects.get(&self.object).map(|t| t.announcements.clone()).unwrap_or_default()
    }

    /// Every figure it reported so far, oldest first.
    pub fn figures(&self) -> Vec<Figure> {
        lock(&self.shared).objects.get(&self.object).map(|t| t.figures.clone()).unwrap_or_default()
    }

    /// The latest value it reported as `name`.
    pub fn figure(&self, name: &str) -> Option<Value> {
        let table = lock(&self.shared);
        let told = table.objects.get(&self.object)?;
        told.figures.iter().rev().find(|f| f.name == name).map(|f| f.value.clone())
    }

    /// The series it reported as `name` (see [`starter::series`]).
    pub fn series(&self, name: &str) -> Option<Vec<u64>> {
        let table = lock(&self.shared);
        starter::series(&table.objects.get(&self.object)?.figures, name)
    }

    /// Every timing it reported, by name, oldest first.
    pub fn timings(&self) -> Vec<(String, Timing)> {
        let table = lock(&self.shared);
        let Some(told) = table.objects.get(&self.object) else { return Vec::new() };
        told.figures
            .iter()
            .filter_map(|f| match &f.value {
                Value::Timing(timing) => Some((f.name.clone(), *timing)),
                _ => None,
            })
            .collect()
    }

    /// Waits up to `timeout` until `found` makes something of what the program
    /// told (announcements, figures); that, or `None` at the timeout.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        mut found: impl FnMut(&[Announcement], &[Figure]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut table = lock(&self.shared);
        loop {
            if let Some(told) = table.objects.get(&self.object)
                && let Some(value) = found(&told.announcements, &told.figures)
            {
                return Some(value);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            table = self.shared.told.wait_timeout(table, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits up to `timeout` for the figure `name`; its latest value.
    pub fn wait_figure(&self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait(timeout, |_, figures| {
            figures.iter().rev().find(|f| f.name == name).map(|f| f.value.clone())
        })
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        let mut table = lock(&self.shared);
        if let Some(told) = table.objects.remove(&self.object) {
            let bytes: usize = told.figures.iter().map(figure_bytes).sum();
            table.figure_bytes = table.figure_bytes.saturating_sub(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amoeba_abi::Header;

    /// Calls the server's dispatcher directly, as a request from the wire would.
    fn call(server: &BootstrapServer, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
        bootstrap::dispatch(&mut Service { port: server.port, shared: &server.shared }, header, buf)
    }

    fn server() -> BootstrapServer {
        BootstrapServer::unserved().0
    }

    #[test]
    fn what_a_program_tells_reaches_its_object_only() {
        let server = server();
        let first = server.open().unwrap();
        let second = server.open().unwrap();
        let figure = Figure { name: String::from("total"), value: Value::Unsigned(40_000) };
        let (header, buf) = bootstrap::report::request(&first.capability(), &figure).unwrap();
        assert_eq!(call(&server, &header, &buf).0.status(), Status::Ok);
        assert_eq!(first.figure("total"), Some(Value::Unsigned(40_000)));
        assert_eq!(second.figures(), vec![]);
        let serving = Announcement::Serving(Capability::default());
        let (header, buf) = bootstrap::announce::request(&second.capability(), &serving).unwrap();
        assert_eq!(call(&server, &header, &buf).0.status(), Status::Ok);
        assert_eq!(second.wait(Duration::ZERO, |a, _| a.first().cloned()), Some(serving));
        assert_eq!(first.announcements(), vec![]);
    }

    #[test]
    fn forged_dropped_and_oversized_are_refused() {
        let server = server();
        let expected = server.open().unwrap();
        let figure = Figure { name: String::from("x"), value: Value::Flag(true) };
        let forged = Capability { check: Check([7; 6]), ..expected.capability() };
        let (header, buf) = bootstrap::report::request(&forged, &figure).unwrap();
        assert_eq!(call(&server, &header, &buf).0.status(), Status::CapBad);
        let big = Figure {
            name: String::from("x"),
            value: Value::Text("y".repeat(amoeba_ipc::interfaces::starter::FIGURE_TEXT_MAX + 1)),
        };
        let (header, buf) = bootstrap::report::request(&expected.capability(), &big).unwrap();
        assert_eq!(call(&server, &header, &buf).0.status(), Status::ArgBad);
        let capability = expected.capability();
        drop(expected);
        let (header, buf) = bootstrap::report::request(&capability, &figure).unwrap();
        assert_eq!(call(&server, &header, &buf).0.status(), Status::CapBad);
    }

    #[test]
    fn series_join_their_pieces_and_timings_keep_their_names() {
        let server = server();
        let expected = server.open().unwrap();
        let tell = |name: &str, value| {
            let figure = Figure { name: String::from(name), value };
            let (header, buf) = bootstrap::report::request(&expected.capability(), &figure).unwrap();
            assert_eq!(call(&server, &header, &buf).0.status(), Status::Ok);
        };
        let timing = Timing { count: 3, median_us: 20, p99_us: 90 };
        tell("sent", Value::Numbers(vec![1, 2]));
        tell("null", Value::Timing(timing));
        tell("sent", Value::Numbers(vec![3]));
        assert_eq!(expected.series("sent"), Some(vec![1, 2, 3]));
        assert_eq!(expected.series("null"), None, "a timing is no series");
        assert_eq!(expected.timings(), vec![(String::from("null"), timing)]);
    }

    #[test]
    fn an_object_keeps_a_bounded_number_of_announcements() {
        let server = server();
        let expected = server.open().unwrap();
        let serving = Announcement::Serving(Capability::default());
        let (header, buf) = bootstrap::announce::request(&expected.capability(), &serving).unwrap();
        for _ in 0..ANNOUNCEMENTS_MAX {
            assert_eq!(call(&server, &header, &buf).0.status(), Status::Ok);
        }
        assert_eq!(call(&server, &header, &buf).0.status(), Status::NoSpace);
        assert_eq!(expected.announcements().len(), ANNOUNCEMENTS_MAX);
    }
}
