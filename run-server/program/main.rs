//! `run-server`: the run server as a user process. Its pool is the rows of
//! its pool directory `POOLDIR` (each naming a board's host capability with
//! the create and info rights; read again every two seconds, so processors
//! come and go), and any processors named in its capability environment as
//! `host/<name>`.
//! One thread per processor polls it through its process server's info call,
//! sent to the capability the row names, every quarter second (in a slot of
//! its own in that period, so that the pollers do not wake together); a host is
//! believed only when that call succeeds (its server verified the capability)
//! and the report is physically possible. The server thread answers "which
//! processor for this program" (`run_server::find_host`, which needs the
//! `RUN_PLACE` right) by Amoeba's rule and hands out the chosen processor's
//! capability, never with more than the placement rights; it never runs
//! programs itself. It announces its capability to its starter (`BOOTSTRAP`,
//! by RPC; the console line `run-server: capability <cap>` is for people),
//! which follows from its `SEED` alone (the boot service starts it again with
//! the same one).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use ::run_server::{Config, PlaceError, Pool, Program, ReportRefused, Weights};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Port, Rng, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::directory::{ListedRow, MAX_BATCH, NameInDirectory, soap};
use amoeba_ipc::interfaces::process::HOST_PLACEMENT;
use amoeba_ipc::interfaces::run::{HostReport, Placement, PlacementRequest};
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_ipc::interfaces::{process_server, run_server, standard};
use amoeba_rt::println;
use amoeba_rt::rpc::{Nucleus, serve};
use amoeba_rt::sync::{Mutex, Semaphore};
use amoeba_rt::{env, starter, thread, time};

amoeba_rt::entry!(main);

/// How long a request waits for reports to catch up with recent placements
/// (or for a first fresh report) before it is refused for lack of room (or of
/// live hosts), and how often it looks again.
const CATCH_UP_US: u64 = 1_000_000;
const CATCH_UP_STEP_US: u64 = 100_000;
/// How often the pool directory is read again.
const POOL_DIRECTORY_PERIOD_US: u64 = 2_000_000;

struct RunServer {
    port: Port,
    random: Check,
    pool: Arc<Mutex<Pool<Capability>>>,
    rng: Rng,
}

impl Objects for RunServer {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == 0).then_some(self.random)
    }
    fn describe(&mut self, _: u32) -> String {
        let pool = self.pool.lock();
        let alive = pool.hosts(time::now_us()).filter(|h| h.alive).count();
        alloc::format!("run server: {alive} of {} processors alive", pool.host_names().count())
    }
}

impl run_server::Server for RunServer {
    fn find_host(&mut self, _: &Call<'_>, request: PlacementRequest) -> Result<Placement, Status> {
        let program = Program { memory: request.memory, text: request.text };
        let give_up = time::now_us() + CATCH_UP_US;
        loop {
            let random = self.rng.next_u64();
            let now = time::now_us();
            let mut pool = self.pool.lock();
            let refusal = match pool.place(&program, now, random) {
                Ok(host) => {
                    let mut name = String::new();
                    name.try_reserve(host.name.len()).map_err(|_| Status::NoMem)?;
                    name.push_str(host.name);
                    return Ok(Placement { host: name, capability: *host.handle });
                }
                Err(refusal) => refusal,
            };
            match refusal {
                PlaceError::NoRoom { .. }
                    if now < give_up && pool.fits_once_reports_catch_up(&program, now) =>
                {
                    drop(pool);
                    time::sleep_us(CATCH_UP_STEP_US); // fresher reports may show room
                }
                PlaceError::NoRoom { .. } => return Err(Status::NoSpace),
                // Hosts are known but none answered lately: on a crowded board
                // the pollers may only be late, so wait a moment for a report.
                PlaceError::NoHostAlive { known } if known > 0 && now < give_up => {
                    drop(pool);
                    time::sleep_us(CATCH_UP_STEP_US);
                }
                PlaceError::NoHostAlive { .. } => return Err(Status::NotFound),
                PlaceError::OutOfMemory => return Err(Status::NoMem),
            }
        }
    }

    fn hosts(&mut self, _: &Call<'_>) -> Result<Vec<HostReport>, Status> {
        let pool = self.pool.lock();
        let mut reports = Vec::new();
        reports.try_reserve(pool.host_names().count()).map_err(|_| Status::NoMem)?;
        for h in pool.hosts(time::now_us()) {
            reports.push(HostReport {
                name: String::from(h.host.name),
                alive: h.alive,
                info: h.info.cloned(),
                pending: h.pending_placements as u32,
                impossible_reports: h.impossible_reports,
            });
        }
        Ok(reports)
    }
}

/// Polls in flight at once. A process may have 8 transactions outstanding
/// (`Quotas::DEFAULT`, which is what the boot service starts the run server
/// with); a poller beyond the slots waits for one rather than failing with
/// `NoSpace`, and the announcement, the pool directory's reader and the
/// look-ups keep transactions of their own.
static POLL_SLOTS: Semaphore = Semaphore::new(5);

/// Polls one processor for as long as it is in the pool (with this
/// capability): the info call goes to the capability itself, so only the
/// server of its port that accepts it can answer, and the pool believes the
/// answer only if a board could have given it.
fn poll(pool: Arc<Mutex<Pool<Capability>>>, name: String, host: Capability) {
    let mut processes = process_server::Client::new(Nucleus);
    let mut refusing = false;
    loop {
        let still_there = pool.lock().handle(&name) == Some(&host);
        if !still_there {
            return;
        }
        POLL_SLOTS.acquire();
        // Asked from here: the host's silence counts from now.
        pool.lock().record_asked(&name, time::now_us());
        let answer = processes.info(&host);
        POLL_SLOTS.release();
        match answer {
            Ok(info) => {
                // Said once when a host starts telling the impossible, for whoever watches the console.
                let told = (!refusing && !info.is_consistent()).then(|| alloc::format!("{info:?}"));
                let recorded = pool.lock().record_info(&name, info, time::now_us());
                refusing = recorded == Err(ReportRefused::Impossible);
                if let (true, Some(told)) = (refusing, told) {
                    println!("run-server: {name}'s report is impossible for a board, not believed: {told}");
                }
            }
            Err(_) => {
                pool.lock().record_no_answer(&name);
            }
        }
        // Its own slot in the interval (read each time: the interval grows
        // with the pool), so that the pollers do not all wake together.
        let now = time::now_us();
        let Some(next) = pool.lock().next_poll_slot_us(&name, now) else { return };
        time::sleep_us(next.saturating_sub(now));
    }
}

/// The capability the run server polls `row` by and hands out for it: the row
/// itself when it carries exactly the placement rights, the row restricted
/// by its own server when it carries more (the run server never hands out
/// more than placement), none when it lacks them or its server does not
/// restrict it (a forged row, a port nobody serves).
fn placement_capability(row: &Capability) -> Option<Capability> {
    if row.rights == HOST_PLACEMENT {
        return Some(*row);
    }
    if !row.rights.contains(HOST_PLACEMENT) {
        return None;
    }
    let restricted = standard::Client::new(Nucleus).restrict(row, HOST_PLACEMENT).ok()?;
    (restricted.port == row.port && restricted.rights == HOST_PLACEMENT).then_some(restricted)
}

/// Adds `host` as `name` to the pool and polls it.
fn add(pool: &Arc<Mutex<Pool<Capability>>>, name: &str, host: Capability) {
    pool.lock().add_host(name, host, Weights::default(), time::now_us());
    let (pool, name) = (pool.clone(), String::from(name));
    thread::spawn(move || poll(pool, name, host));
}

/// Keeps the pool equal to the rows of the pool directory: every few seconds
/// it reads the directory again, adding and removing processors. A row it
/// cannot read this time stays as it was; a row it cannot use yet (its server
/// did not restrict it) is tried again next time.
fn follow_pool_directory(pool: Arc<Mutex<Pool<Capability>>>, directory: Capability) {
    // Each row's capability as listed, for the rows in the pool.
    let mut entered: BTreeMap<String, Capability> = BTreeMap::new();
    loop {
        if let Ok(listing) = soap::Client::new(Nucleus).list(&directory) {
            let rows = rows_capabilities(&directory, &listing.rows);
            for (row, listed) in listing.rows.iter().zip(rows) {
                let Some(listed) = listed else { continue };
                if entered.get(&row.name) == Some(&listed) {
                    continue;
                }
                match placement_capability(&listed) {
                    Some(host) => {
                        add(&pool, &row.name, host);
                        entered.insert(row.name.clone(), listed);
                    }
                    None => {
                        if entered.remove(&row.name).is_some() {
                            pool.lock().remove_host(&row.name);
                        }
                    }
                }
            }
            let gone: Vec<String> = entered
                .keys()
                .filter(|name| !listing.rows.iter().any(|row| &row.name == *name))
                .cloned()
                .collect();
            for name in gone {
                entered.remove(&name);
                pool.lock().remove_host(&name);
            }
        }
        time::sleep_us(POOL_DIRECTORY_PERIOD_US);
    }
}

/// The first capability of each of `rows` of `directory`, `None` for one that
/// cannot be read this time; a set lookup per `MAX_BATCH` rows rather than a lookup
/// per row, so that a 32-board pool's directory costs the run server's board
/// (and the replica answering) one call every period, not 33.
fn rows_capabilities(directory: &Capability, rows: &[ListedRow]) -> Vec<Option<Capability>> {
    let mut capabilities = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(MAX_BATCH) {
        let items: Vec<NameInDirectory> = chunk.iter().map(|row| (*directory, row.name.clone())).collect();
        match soap::Client::new(Nucleus).setlookup(directory, &items) {
            Ok(results) if results.len() == chunk.len() => capabilities
                .extend(results.into_iter().map(|result| result.ok().and_then(|caps| caps.first().copied()))),
            _ => capabilities.extend(chunk.iter().map(|_| None)),
        }
    }
    capabilities
}

/// The seed of the server's identity: `SEED` alone when given (so a run
/// server started again with the same `SEED` has the same capability), else
/// the clock.
fn seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    match env::var("SEED") {
        Some(hex) => {
            for (i, pair) in hex.as_bytes().chunks(2).take(24).enumerate() {
                seed[8 + i] =
                    core::str::from_utf8(pair).ok().and_then(|t| u8::from_str_radix(t, 16).ok()).unwrap_or(0);
            }
        }
        None => seed[..8].copy_from_slice(&time::ticks().to_le_bytes()),
    }
    seed
}

fn main(_: u64) -> i32 {
    let mut rng = Rng::from_seed(seed());
    let get = GetPort::random(&mut rng);
    let random = rng.check();
    // Placement's random choices differ from run to run.
    let mut clock = [0u8; 32];
    clock[..8].copy_from_slice(&time::ticks().to_le_bytes());
    rng.reseed(clock);
    let pool = Arc::new(Mutex::new(Pool::new(Config::default())));
    for (name, host) in &env::startup().capabilities {
        if let Some(name) = name.strip_prefix("host/") {
            match placement_capability(host) {
                Some(host) => add(&pool, name, host),
                None => println!("run-server: host/{name} does not carry the placement rights, left out"),
            }
        }
    }
    if let Some(directory) = env::capability("POOLDIR") {
        let pool = pool.clone();
        thread::spawn(move || follow_pool_directory(pool, directory));
    }
    let mut server = RunServer { port: get.put_port(), random, pool, rng };
    let capability = Capability::owner(server.port, 0, random);
    println!("run-server: capability {capability}");
    starter::announce_soon("run-server", Announcement::Serving(capability));
    let status = serve(&get, 4096, |header, buf| run_server::dispatch(&mut server, header, buf));
    println!("run-server: get_request failed: {status}");
    1
}
