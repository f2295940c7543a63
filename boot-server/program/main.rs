//! `boot-server`: the boot service as a user process. It reads its
//! configuration once at start (the file `boot` of the directory its
//! capability environment names `SYSTEM`, retried until the directory and the
//! file server answer) and keeps it in memory, so it goes on working while the
//! directory or the file server is down. The decisions are the core's
//! (`boot_server::ServiceTable`); this program only carries the polls'
//! answers in and the starts out.
//!
//! Threads: one per board (its process server's info: answering, uptime; and
//! once, its process list, to find the services already running), every
//! quarter second for a board that serves (on a big pool less often,
//! `Timing::for_boards`) and every four seconds for a spare one; per service
//! three that check it in turn, one check every half second in all (one stuck
//! on a check sent to a process that died leaves the others going), one
//! that asks its board's process server about its process (only when the
//! service has not answered a check for a check period), and one that
//! carries out its starts (from the board's own boot bundle: a dead Bullet
//! server cannot serve `/bin`);
//! one that ticks the table; two serving the boot service's interface
//! (`amoeba_ipc::interfaces::boot`).
//!
//! Once it serves it announces its capability to its starter (`BOOTSTRAP`, by
//! RPC), if it has one. It is a starter too: every service it starts gets an
//! object of its own bootstrap server (`amoeba_ipc::interfaces::bootstrap`,
//! one object per service, with a new check at every start), and a service
//! that announces there that it serves, through the port its check names, has
//! answered (a check need not wait for the next poll).
//!
//! Environment: `SEED` (64 hex digits: the boot service's port and check follow
//! from it alone, so a boot service started again has the same capability).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Check, GetPort, Port, Rights, Rng, Status};
use amoeba_client::exec::{Exec, Program};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::boot::ServiceReport;
use amoeba_ipc::interfaces::bootstrap;
use amoeba_ipc::interfaces::directory::walk;
use amoeba_ipc::interfaces::process::ProcessState;
use amoeba_ipc::interfaces::starter::{Announcement, BOOTSTRAP_CAPABILITY_NAME, BOOTSTRAP_TELL, Figure};
use amoeba_ipc::interfaces::{boot_service, bullet, process_server, standard};
use amoeba_ipc::schedule::next_slot_us;
use amoeba_rt::println;
use amoeba_rt::rpc::{Nucleus, serve};
use amoeba_rt::sync::{Mutex, Semaphore};
use amoeba_rt::{env, starter, sys, thread, time};
use boot_server::config::MAX_CONFIG_BYTES;
use boot_server::{Action, BootConfig, CapabilitySource, ProcessSeen, ServiceCheck, ServiceTable, Timing};
use directory_server::service::replica_port;

amoeba_rt::entry!(main);

/// Stack of every thread (program loading parses ELF headers on it).
const THREAD_STACK: usize = 32 * 1024;
/// Threads checking each service in turn.
const CHECKERS: u64 = 3;
/// Pause between tries at reading the configuration.
const CONFIG_RETRY_US: u64 = 500_000;

type Table = Arc<Mutex<ServiceTable>>;

/// The boot service's bootstrap server: object `i + 1` is service `i`'s latest
/// start (its check; `None` before the first start).
struct Bootstrap {
    port: Port,
    checks: Mutex<Vec<Option<Check>>>,
    /// Where each start's check comes from (seeded from the boot service's secret).
    rng: Mutex<Rng>,
}

impl Bootstrap {
    /// A new object for service `service`'s next start; the capability it
    /// gets as `BOOTSTRAP` (the previous start's is void from now on).
    fn object_for(&self, service: usize) -> Option<Capability> {
        let check = self.rng.lock().check();
        *self.checks.lock().get_mut(service)? = Some(check);
        let owner = Capability::owner(self.port, service as u32 + 1, check);
        owner.restrict(BOOTSTRAP_TELL).ok()
    }
}

/// One request to the bootstrap server.
struct BootstrapCall<'a> {
    bootstrap: &'a Bootstrap,
    table: &'a Table,
}

impl Objects for BootstrapCall<'_> {
    fn port(&self) -> Port {
        self.bootstrap.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        let index = (object as usize).checked_sub(1)?;
        *self.bootstrap.checks.lock().get(index)?
    }
}

impl bootstrap::Server for BootstrapCall<'_> {
    fn announce(&mut self, call: &Call<'_>, announcement: Announcement) -> Result<(), Status> {
        let service = call.object as usize - 1;
        let Announcement::Serving(serving) = announcement else { return Ok(()) };
        let mut table = self.table.lock();
        // Only through the port the service is checked at: a service serves its own.
        if table.check(service).capability().port != serving.port {
            return Err(Status::ArgBad);
        }
        let now = time::now_us();
        table.check_done(service, now, now, true);
        Ok(())
    }

    fn report(&mut self, _: &Call<'_>, _: Figure) -> Result<(), Status> {
        Err(Status::ComBad) // services announce; nobody here reads figures
    }
}

/// The starts waiting for one service's starter thread.
struct Mailbox {
    action: Mutex<Option<Action>>,
    ready: Semaphore,
}

/// Starts a thread for good; a boot service that cannot have all its threads
/// says so and ends (`up` starts it again).
fn spawn(f: impl FnOnce() + Send + 'static) {
    if let Err(status) = thread::try_spawn_with_stack(THREAD_STACK, f) {
        println!("boot-server: cannot start a thread: {status}");
        sys::exit(1);
    }
}

/// Sleeps what is left of a poll period of `period` that began at `started`.
fn rest_of_period(period: u64, started: u64) {
    time::sleep_us(period.saturating_sub(time::now_us().saturating_sub(started)));
}

/// Sleeps until poller `index` of `count`'s next slot in a period of
/// `period`: the boot service's many pollers keep apart rather than wake
/// together (see `amoeba_ipc::schedule`).
fn sleep_until_slot(period: u64, index: usize, count: usize) {
    let now = time::now_us();
    time::sleep_us(next_slot_us(period, index, count, now).saturating_sub(now));
}

/// The configuration, from `boot` in the `SYSTEM` directory.
fn read_config(system: &Capability) -> Result<BootConfig, String> {
    let file = walk(&mut Nucleus, system, "boot")
        .map_err(|s| format!("looking up boot: {s}"))?
        .first()
        .copied()
        .ok_or_else(|| String::from("boot names nothing"))?;
    let size = bullet::Client::new(Nucleus).size(&file).map_err(|s| format!("reading boot: {s}"))?;
    if size > MAX_CONFIG_BYTES as u64 {
        return Err(format!("boot is {size} bytes, more than {MAX_CONFIG_BYTES}"));
    }
    let bytes =
        amoeba_client::files::get(&mut Nucleus, &file, |_| {}).map_err(|s| format!("reading boot: {s}"))?;
    BootConfig::decode(&bytes).map_err(|e| format!("{e}"))
}

/// Reads the configuration, trying again until it can; says why once per reason.
fn config_when_readable(system: &Capability) -> BootConfig {
    let mut said = String::new();
    loop {
        match read_config(system) {
            Ok(config) => return config,
            Err(why) => {
                if why != said {
                    println!("boot-server: no configuration yet ({why}); trying again");
                    said = why;
                }
                time::sleep_us(CONFIG_RETRY_US);
            }
        }
    }
}

/// How often each board's process server is aged (`STD_AGE`): a segment
/// made for a process that never started is freed after six ages without
/// use, so about a minute.
const AGE_PERIOD_US: u64 = 10_000_000;

/// Polls board `id` (poller `index` of `count`): answering and uptime, and
/// once its process list; ages its objects now and then. A spare board (no
/// service there or wanting it) is asked less often than one that serves.
fn watch_board(table: Table, id: u16, host: Capability, index: usize, count: usize) {
    let mut processes = process_server::Client::new(Nucleus);
    let mut next_age = time::now_us() + AGE_PERIOD_US;
    loop {
        let sent = time::now_us();
        if sent >= next_age {
            next_age = sent + AGE_PERIOD_US;
            if let Ok(collected) = standard::Client::new(Nucleus).age(&host)
                && collected > 0
            {
                println!("boot-server: board {id}: {collected} unused segments aged away");
            }
        }
        match processes.info(&host) {
            Ok(info) => {
                let mut table_now = table.lock();
                table_now.board_answered(id, sent, time::now_us(), info.uptime_us);
                let wants_listing = table_now.wants_listing(id);
                drop(table_now);
                if wants_listing && let Ok(live) = live_processes(&host) {
                    table.lock().board_listed(id, time::now_us(), &live);
                }
            }
            Err(Status::ServerRestarted) => table.lock().board_restarted(id, sent, time::now_us()),
            Err(_) => {}
        }
        let period = table.lock().board_poll_us(id);
        sleep_until_slot(period, index, count);
    }
}

/// A board's live processes: (name, capability).
fn live_processes(host: &Capability) -> Result<Vec<(String, Capability)>, Status> {
    let mut processes = process_server::Client::new(Nucleus);
    let mut live = Vec::new();
    for report in processes.processes(host)? {
        if matches!(report.state, ProcessState::Exited(_)) {
            continue;
        }
        match processes.process_capability(host, report.pid) {
            Ok(capability) => live.push((report.name, capability)),
            Err(Status::NotFound | Status::CapBad) => {} // it ended meanwhile
            Err(status) => return Err(status),
        }
    }
    Ok(live)
}

/// One of [`CHECKERS`] threads that check service `service` (of `services`)
/// in turn, each every `CHECKERS` check periods, `phase` periods after the
/// first: a check sent to a process that then dies is given up by the network
/// only after seconds, and meanwhile the others go on checking (the service's
/// next process). The checks of all services, and the process watchers'
/// polls, take turns through the period ([`service_slot`]).
fn check_service(table: Table, service: usize, services: usize, phase: u64) {
    let period = table.lock().timing().check_us;
    let slots = CHECKERS as usize * services;
    let slot = phase as usize * services + service;
    loop {
        sleep_until_slot(CHECKERS * period, service_slot(slot, false), service_slot(slots, false));
        let check = table.lock().check(service).clone();
        let sent = time::now_us();
        let answered = match &check {
            ServiceCheck::Info(capability) => standard::Client::new(Nucleus).info(capability).is_ok(),
            ServiceCheck::DirectoryReplica { replica, directory } => {
                replica_port::Client::new(Nucleus).list(replica, directory).is_ok()
            }
        };
        table.lock().check_done(service, sent, time::now_us(), answered);
    }
}

/// The slot of a service's check or process watch among `2 × slots`: checks
/// take the even ones and process watches the odd ones, so that the two never
/// fall due together (the checks of `CHECKERS` periods are `CHECKERS` times as
/// many, in a period as much longer, so both are spread at the same pace).
fn service_slot(slot: usize, watch: bool) -> usize {
    2 * slot + usize::from(watch)
}

/// Asks service `service`'s (of `services`) board about its process, in the
/// slots between the checks ([`service_slot`]).
fn watch_process(table: Table, service: usize, services: usize) {
    let mut processes = process_server::Client::new(Nucleus);
    loop {
        let (process, answered_lately) = {
            let table = table.lock();
            let since = time::now_us().saturating_sub(table.timing().check_us);
            (table.process(service), table.answered_since(service, since))
        };
        // A process that answered its check within the period lives; the
        // board is asked only about one that has been quiet that long (a
        // death is still seen within two periods after its last answer).
        if let Some((_, process)) = process.filter(|_| !answered_lately) {
            let seen = match processes.inspect(&process) {
                Ok(report) if matches!(report.state, ProcessState::Exited(_)) => Some(ProcessSeen::Gone),
                Ok(_) => Some(ProcessSeen::Alive),
                // Unknown to its board, or its board is a new incarnation.
                Err(Status::CapBad | Status::NotFound | Status::ServerRestarted) => Some(ProcessSeen::Gone),
                Err(_) => None, // no answer: the board's own poll tells
            };
            if let Some(seen) = seen {
                table.lock().process_seen(service, process, time::now_us(), seen);
            }
        }
        let period = table.lock().timing().check_us;
        sleep_until_slot(period, service_slot(service, true), service_slot(services, false));
    }
}

/// The capability a service starts with, made fresh where it must be.
fn resolve(config: &BootConfig, source: &CapabilitySource) -> Result<Capability, String> {
    match source {
        CapabilitySource::Given(capability) => Ok(*capability),
        CapabilitySource::Disk { board, first, count, rights } => {
            let host = config.board(*board).ok_or_else(|| format!("no board {board}"))?.host;
            let disk = process_server::Client::new(Nucleus)
                .disk(&host, 0, *first, *count)
                .map_err(|s| format!("disk blocks {first}.. of board {board}: {s}"))?;
            if *rights == Rights::ALL {
                return Ok(disk);
            }
            standard::Client::new(Nucleus)
                .restrict(&disk, *rights)
                .map_err(|s| format!("restricting a disk capability of board {board}: {s}"))
        }
    }
}

/// Carries out one start; the new process, or why it failed.
fn start(
    table: &Table,
    bootstrap: &Bootstrap,
    service: usize,
    board: u16,
    replace: Option<Capability>,
) -> Result<Capability, String> {
    let (config, service_config) = {
        let table = table.lock();
        (table.config().clone(), table.service(service).clone())
    };
    if let Some(old) = replace {
        match standard::Client::new(Nucleus).destroy(&old) {
            Ok(()) | Err(Status::CapBad | Status::NotFound) => {}
            Err(status) => return Err(format!("ending the old process: {status}")),
        }
    }
    let host = config.board(board).ok_or_else(|| format!("no board {board}"))?.host;
    let argv: Vec<&str> = service_config.argv.iter().map(String::as_str).collect();
    let mut exec = Exec::new(&service_config.program, &argv);
    exec.heap_size = service_config.heap_bytes;
    exec.startup.environment = service_config.environment.clone();
    for named in &service_config.capabilities {
        exec = exec.with_capability(&named.name, resolve(&config, &named.source)?);
    }
    if let Some(object) = bootstrap.object_for(service) {
        exec = exec.with_capability(BOOTSTRAP_CAPABILITY_NAME, object);
    }
    let program = process_server::Client::new(Nucleus)
        .boot_program(&host, &service_config.program)
        .map_err(|s| format!("board {board} has no boot program {}: {s}", service_config.program))?;
    amoeba_client::exec::exec(&mut Nucleus, &host, Program::File(program), &exec).map_err(|e| format!("{e}"))
}

/// Carries out service `service`'s starts as the table asks for them.
fn starter(table: Table, bootstrap: Arc<Bootstrap>, service: usize, mailbox: Arc<Mailbox>) {
    loop {
        mailbox.ready.acquire();
        let Some(Action::Start { board, replace, attempt, .. }) = mailbox.action.lock().take() else {
            continue;
        };
        let name = table.lock().service(service).name.clone();
        println!("boot-server: starting {name} on board {board}");
        let result = start(&table, &bootstrap, service, board, replace);
        match &result {
            Ok(_) => println!("boot-server: {name} started on board {board}"),
            Err(why) => println!("boot-server: starting {name} on board {board} failed: {why}"),
        }
        let keep = table.lock().start_finished(service, attempt, time::now_us(), result.clone());
        if !keep && let Ok(process) = result {
            let _ = standard::Client::new(Nucleus).destroy(&process);
        }
    }
}

/// The boot service's own interface.
struct BootService {
    port: Port,
    random: Check,
    table: Table,
}

impl Objects for BootService {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == 0).then_some(self.random)
    }
    fn describe(&mut self, _: u32) -> String {
        let reports = self.table.lock().reports(time::now_us());
        let up = reports.iter().filter(|r| r.state == amoeba_ipc::interfaces::boot::ServiceState::Up).count();
        format!("boot service: {up} of {} services up", reports.len())
    }
}

impl boot_service::Server for BootService {
    fn services(&mut self, _: &Call<'_>) -> Result<Vec<ServiceReport>, Status> {
        Ok(self.table.lock().reports(time::now_us()))
    }
}

fn main(_: u64) -> i32 {
    let Some(seed) = env::var("SEED").and_then(boot_server::parse_seed) else {
        println!("boot-server: no SEED (64 hex digits) in the environment");
        return 1;
    };
    let Some(system) = env::capability("SYSTEM") else {
        println!("boot-server: no SYSTEM capability in the environment");
        return 1;
    };
    let (get, random) = boot_server::identity(seed);
    // The bootstrap server's port and checks follow from the secret seed too
    // (mixed, so they are not the boot service's own), and the clock.
    let mut bootstrap_seed = seed;
    bootstrap_seed[0] ^= 0xb0;
    for (byte, tick) in bootstrap_seed[24..].iter_mut().zip(time::ticks().to_le_bytes()) {
        *byte ^= tick;
    }
    let mut bootstrap_rng = Rng::from_seed(bootstrap_seed);
    let bootstrap_get = GetPort::random(&mut bootstrap_rng);
    let config = config_when_readable(&system);
    let services = config.services.len();
    let boards: Vec<(u16, Capability)> = config.boards.iter().map(|b| (b.id, b.host)).collect();
    let table: Table =
        Arc::new(Mutex::new(ServiceTable::new(config, Timing::for_boards(boards.len()), time::now_us())));
    let bootstrap = Arc::new(Bootstrap {
        port: bootstrap_get.put_port(),
        checks: Mutex::new(alloc::vec![None; services]),
        rng: Mutex::new(bootstrap_rng),
    });
    {
        let (table, bootstrap) = (table.clone(), bootstrap.clone());
        spawn(move || {
            let status = serve(&bootstrap_get, 1024, |header, buf| {
                bootstrap::dispatch(&mut BootstrapCall { bootstrap: &bootstrap, table: &table }, header, buf)
            });
            println!("boot-server: bootstrap get_request failed: {status}");
        });
    }
    let count = boards.len();
    for (index, (id, host)) in boards.into_iter().enumerate() {
        let table = table.clone();
        spawn(move || watch_board(table, id, host, index, count));
    }
    let mut mailboxes = Vec::new();
    for service in 0..services {
        let mailbox = Arc::new(Mailbox { action: Mutex::new(None), ready: Semaphore::new(0) });
        mailboxes.push(mailbox.clone());
        for phase in 0..CHECKERS {
            let table = table.clone();
            spawn(move || check_service(table, service, services, phase));
        }
        let (b, c) = (table.clone(), table.clone());
        spawn(move || watch_process(b, service, services));
        let bootstrap = bootstrap.clone();
        spawn(move || starter(c, bootstrap, service, mailbox));
    }
    for _ in 0..2 {
        let mut server = BootService { port: get.put_port(), random, table: table.clone() };
        spawn(move || {
            let status = serve(&get, 256, |header, buf| boot_service::dispatch(&mut server, header, buf));
            println!("boot-server: get_request failed: {status}");
        });
    }
    println!("boot-server: watching {services} services");
    starter::announce_soon(
        "boot-server",
        Announcement::Serving(Capability::owner(get.put_port(), 0, random)),
    );
    loop {
        let started = time::now_us();
        let actions = table.lock().tick(started);
        for action in actions {
            let Action::Start { service, .. } = &action;
            if let Some(mailbox) = mailboxes.get(*service) {
                *mailbox.action.lock() = Some(action);
                mailbox.ready.release();
            }
        }
        let period = table.lock().timing().poll_us;
        rest_of_period(period, started);
    }
}
