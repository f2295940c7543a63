//! `directory-server`: one replica of the SOAP directory service. The replicas
//! form a group (resilience 1) and all serve the service's put-port; the
//! sans-IO [`Replica`] decides everything, and this program only carries its
//! inputs and outputs between the nucleus and it, under one lock.
//!
//! Environment: `INDEX` (this replica, 0..), `REPLICAS` (how many the service
//! has), `MODE` (`create`: load the best state from every replica's anchor and
//! create the group; `join`: join the group and catch up by state transfer),
//! `SEED` (hex, mixed into the random checks of new directories). Capabilities:
//! `SERVICE` (the service's super capability: the ports follow from it),
//! `BULLET` (the file server), `ANCHOR0`.. (every replica's anchor slot; only
//! this replica's may be written), and `GROUP` to join.
//!
//! Threads: the first thread receives the group's entries; one sends to the
//! group (in the order the replica produced the messages); one carries out
//! storage operations; one ticks the replica's clock; one per other replica
//! delivers confirmations to that replica's own port; two serve this replica's
//! own port; and once the replica serves, [`SERVICE_THREADS`] serve the
//! service's port. A serving thread holds its request until the replica answers
//! it (`put_reply` answers the request the thread got last), so at most that
//! many requests are in flight here; more wait in the nucleus.
//!
//! `STD_STATUS` on the replica's own port: its position, a checksum of its
//! state, the calls it answered, and where its own updates spent their time
//! (sums in µs: ordering, logging, confirming; see `UpdateTimings`).
//!
//! It tells its starter (`BOOTSTRAP`, by RPC) the capability replicas join
//! the group with (create mode) and, once it answers clients, that it serves
//! (its own port's capability). The console says the same for people:
//! `directory-server <i>: group <capability>`, `directory-server <i>: serving ...`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use amoeba_abi::{Capability, GetPort, Status};
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_rt::group::{EntryKind, Group, Received};
use amoeba_rt::println;
use amoeba_rt::rpc::{Nucleus, serve};
use amoeba_rt::sync::{Mutex, Semaphore};
use amoeba_rt::{env, starter, sys, thread, time};
use directory_server::layout::{Identity, MAX_REPLICAS, Ports};
use directory_server::persist::PersistConfig;
use directory_server::report::{Beginning, Recovery, ReplicaReport, StartReport};
use directory_server::rpc_store::RpcStore;
use directory_server::service::{ReplicaPort, Service, Submit, replica_port};
use directory_server::store::{self, StoreOp};
use directory_server::{GroupInput, Output, Replica, ReplicaConfig, Reply, Request, Start, State};

amoeba_rt::entry!(main);

/// Threads serving the service's port: requests this replica works on at once.
const SERVICE_THREADS: usize = 6;
/// Threads serving this replica's own port.
const REPLICA_PORT_THREADS: usize = 2;
/// Stack of every thread (decoding and encoding run on it).
const THREAD_STACK: usize = 64 * 1024;
/// How often the replica's clock ticks (leases, retries, time-outs).
const TICK_US: u64 = 10_000;
/// The nucleus's largest group message.
const GROUP_MESSAGE_MAX: usize = 1024;
/// Largest request buffer taken (an install of 32 long rows fits).
const REQUEST_MAX: usize = 64 * 1024;
/// Pause after a confirmation could not be delivered (the replica is down).
const PEER_RETRY_US: u64 = 200_000;
/// Attempts at each read of the stored state (an anchor, the files it names)
/// before recovery gives up: about ten seconds, time for a file server that is
/// being restarted to come back.
const RECOVERY_ATTEMPTS: u32 = 20;
/// Pause between such attempts.
const RECOVERY_PAUSE_US: u64 = 500_000;

/// What the host said.
struct Config {
    index: u8,
    replicas: u8,
    create: bool,
    identity: Identity,
    bullet: Capability,
    slots: Vec<Option<Capability>>,
    group: Option<Capability>,
    seed: [u8; 32],
}

fn number(name: &str) -> Result<u8, String> {
    env::var(name).and_then(|v| v.parse().ok()).ok_or_else(|| format!("no number {name} in the environment"))
}

fn capability(name: &str) -> Result<Capability, String> {
    env::capability(name).ok_or_else(|| format!("no {name} capability in the environment"))
}

fn seed(index: u8) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&time::ticks().to_le_bytes());
    seed[8] = index;
    if let Some(hex) = env::var("SEED") {
        for (i, pair) in hex.as_bytes().chunks(2).take(23).enumerate() {
            let text = core::str::from_utf8(pair).unwrap_or("0");
            seed[9 + i] = u8::from_str_radix(text, 16).unwrap_or(0);
        }
    }
    seed
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let (index, replicas) = (number("INDEX")?, number("REPLICAS")?);
        if replicas == 0 || replicas > MAX_REPLICAS || index >= replicas {
            return Err(format!("replica {index} of {replicas}: out of range"));
        }
        let service = capability("SERVICE")?;
        let ports = env::var("PORTS")
            .and_then(Ports::from_hex)
            .ok_or("no service ports (PORTS) in the environment")?;
        let identity = Identity::new(service.check, ports);
        if identity.super_capability() != service {
            return Err(String::from("SERVICE is not the service's super capability"));
        }
        let create = match env::var("MODE") {
            Some("create") => true,
            Some("join") => false,
            _ => return Err(String::from("MODE must be create or join")),
        };
        let group = if create { None } else { Some(capability("GROUP")?) };
        let slots = (0..MAX_REPLICAS).map(|r| env::capability(&format!("ANCHOR{r}"))).collect();
        let bullet = capability("BULLET")?;
        Ok(Config { index, replicas, create, identity, bullet, slots, group, seed: seed(index) })
    }
}

/// A first-in first-out queue one thread waits on.
struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    ready: Semaphore,
}

impl<T> Queue<T> {
    fn new() -> Self {
        Queue { items: Mutex::new(VecDeque::new()), ready: Semaphore::new(0) }
    }
    fn push(&self, item: T) {
        self.items.lock().push_back(item);
        self.ready.release();
    }
    fn pop(&self) -> T {
        loop {
            self.ready.acquire();
            if let Some(item) = self.items.lock().pop_front() {
                return item;
            }
        }
    }
}

/// Where the replica's answers to one serving thread's requests go. Requests are
/// numbered, so an answer can only ever reach the request it belongs to.
struct Slot {
    next: AtomicU64,
    answer: Mutex<Option<(u64, Result<Reply, Status>)>>,
    ready: Semaphore,
}

impl Slot {
    fn new() -> Self {
        Slot { next: AtomicU64::new(0), answer: Mutex::new(None), ready: Semaphore::new(0) }
    }
    fn number(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
    fn fill(&self, number: u64, answer: Result<Reply, Status>) {
        *self.answer.lock() = Some((number, answer));
        self.ready.release();
    }
    fn wait(&self, number: u64) -> Result<Reply, Status> {
        loop {
            self.ready.acquire();
            match self.answer.lock().take() {
                Some((n, answer)) if n == number => return answer,
                _ => {}
            }
        }
    }
}

/// The latest confirmation for one other replica (each supersedes the last).
struct Mailbox {
    to: u8,
    latest: Mutex<Option<Vec<u8>>>,
    ready: Semaphore,
}

impl Mailbox {
    fn post(&self, bytes: Vec<u8>) {
        *self.latest.lock() = Some(bytes);
        self.ready.release();
    }
    fn take(&self) -> Vec<u8> {
        loop {
            self.ready.acquire();
            if let Some(bytes) = self.latest.lock().take() {
                return bytes;
            }
        }
    }
}

/// A request's place for the replica's answer: (slot, number within the slot).
type Ticket = (usize, u64);

/// What every thread shares.
struct Shared {
    index: u8,
    identity: Identity,
    replica: Mutex<Replica<Ticket>>,
    /// One per serving thread: the service's, then the replica port's.
    slots: Vec<Slot>,
    to_group: Queue<Vec<u8>>,
    to_store: Queue<(u64, StoreOp)>,
    peers: Vec<Mailbox>,
    /// Answers the replica gave to requests on the service's port, the internal
    /// reads of standard commands included (for `STD_STATUS`).
    answered: AtomicU64,
    /// How this replica came up (for its report).
    start: StartReport,
}

impl Shared {
    /// Runs `f` on the replica (with the time), then hands out what it produced.
    fn with_replica<R>(&self, f: impl FnOnce(&mut Replica<Ticket>, u64) -> R) -> R {
        let mut replica = self.replica.lock();
        let result = f(&mut replica, time::now_us());
        let mut posted: Option<Vec<u8>> = None;
        while let Some(output) = replica.poll_output() {
            match output {
                Output::Group(bytes) => self.to_group.push(bytes),
                // Only confirmations go point to point, one copy per member, and a
                // newer one says all an older one did: every other replica gets the
                // latest, once.
                Output::Peer { bytes, .. } => {
                    if posted.as_ref() != Some(&bytes) {
                        self.peers.iter().for_each(|p| p.post(bytes.clone()));
                        posted = Some(bytes);
                    }
                }
                Output::Reply { handle: (slot, number), result } => {
                    if slot < SERVICE_THREADS {
                        self.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    self.slots[slot].fill(number, result)
                }
                Output::Store { id, op } => self.to_store.push((id, op)),
            }
        }
        result
    }

    fn report(&self) -> ReplicaReport {
        let replica = self.replica.lock();
        let state = replica.state();
        ReplicaReport {
            index: self.index,
            member: replica.member_id(),
            serving: replica.is_serving(),
            applied: state.applied,
            visible: replica.visible_state().applied,
            durable: replica.durable_position(),
            state: state.checksum(),
            answered: self.answered.load(Ordering::Relaxed),
            updates: replica.update_timings(),
            start: self.start.clone(),
        }
    }
}

/// A serving thread's way to the replica.
#[derive(Clone, Copy)]
struct Handle {
    shared: &'static Shared,
    slot: usize,
}

impl Submit for Handle {
    fn submit(&self, request: Request) -> Result<Reply, Status> {
        let slot = &self.shared.slots[self.slot];
        let ticket = (self.slot, slot.number());
        self.shared.with_replica(|r, now| r.on_request(now, ticket, request));
        slot.wait(ticket.1)
    }
    fn peer_message(&self, bytes: &[u8]) {
        self.shared.with_replica(|r, now| r.on_peer(now, bytes));
    }
    fn report(&self) -> ReplicaReport {
        self.shared.report()
    }
}

/// Says that a read at recovery failed and will be tried again (on the console
/// and in `report`), and pauses.
fn retry_pause(index: u8, report: &mut StartReport) -> impl FnMut(store::Retry) + '_ {
    move |retry: store::Retry| {
        report.note_retry(retry.reading);
        let what = match retry.reading {
            store::Reading::Anchor(r) => format!("replica {r}'s anchor"),
            store::Reading::State(r) => format!("the state replica {r}'s anchor names"),
        };
        println!(
            "directory-server {index}: reading {what} failed ({}), attempt {} of {}; trying again",
            retry.error, retry.failed, retry.attempts
        );
        time::sleep_us(RECOVERY_PAUSE_US);
    }
}

/// The state to create the group with: the best one on disk, or a new service.
/// Notes in `report` where it came from.
fn initial_state(
    store: &mut RpcStore<Nucleus>,
    config: &Config,
    report: &mut StartReport,
) -> Result<State, String> {
    let i = config.index;
    let recovered = store::recover(store, MAX_REPLICAS, RECOVERY_ATTEMPTS, retry_pause(i, report))
        .map_err(|error| format!("cannot recover the stored state: {error}"))?;
    let Some(recovered) = recovered else {
        report.beginning = Beginning::New;
        println!("directory-server {i}: a new service");
        return Ok(State::new(config.identity.port(), config.identity.super_random));
    };
    for (replica, error) in &recovered.skipped {
        println!("directory-server {i}: replica {replica}'s anchor did not load ({error}); an equal one did");
    }
    let state = recovered.state;
    if state.port != config.identity.port() || state.super_random != config.identity.super_random {
        return Err(String::from("the stored state belongs to another service"));
    }
    report.beginning = Beginning::Recovered(Recovery {
        from: recovered.from,
        updates: state.applied,
        directories: state.dirs.len() as u64,
        epoch: u64::from(state.epoch),
        skipped: recovered.skipped.iter().map(|(replica, _)| *replica).collect(),
    });
    println!(
        "directory-server {i}: recovered {} updates, {} directories, from replica {}'s anchor (epoch {})",
        state.applied,
        state.dirs.len(),
        recovered.from,
        state.epoch
    );
    Ok(state)
}

fn enter_group(config: &Config) -> Result<Group, Status> {
    match &config.group {
        Some(capability) => Group::join(capability),
        None => {
            let (group, owner) = Group::create(config.identity.group_get_port(), 1)?;
            // Others join with what a replica needs; the owner capability
            // stays here.
            let capability =
                owner.restrict(directory_server::REPLICA_GROUP_RIGHTS).map_err(|_| Status::SysErr)?;
            println!("directory-server {}: group {capability}", config.index);
            starter::announce_soon("directory-server", Announcement::Group(capability));
            Ok(group)
        }
    }
}

/// What the replica makes of one entry of the order. The nucleus does not list
/// the members a joiner finds, so members are learnt from their first message.
fn group_inputs(entry: &Received, data: &[u8], known: &mut BTreeSet<u32>) -> Vec<GroupInput> {
    let mut inputs = Vec::new();
    match entry.kind {
        EntryKind::Message => {
            if known.insert(entry.sender) {
                inputs.push(GroupInput::MemberJoined { member: entry.sender });
            }
            inputs.push(GroupInput::Message { sender: entry.sender, payload: data.to_vec() });
        }
        EntryKind::MemberJoined => {
            known.insert(entry.sender);
            inputs.push(GroupInput::MemberJoined { member: entry.sender });
        }
        EntryKind::MemberLeft => {
            known.remove(&entry.sender);
            inputs.push(GroupInput::MemberLeft { member: entry.sender });
        }
        EntryKind::Reset => {
            let removed: Vec<u32> =
                data.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes"))).collect();
            removed.iter().for_each(|m| {
                known.remove(m);
            });
            inputs.push(GroupInput::Reset { removed });
        }
    }
    inputs
}

/// Receives the group's order for good (the first thread's work).
fn receive_forever(shared: &'static Shared, group: &Group, me: u32) -> ! {
    let mut buf = vec![0u8; GROUP_MESSAGE_MAX + 64];
    let mut known = BTreeSet::from([me]);
    loop {
        match group.receive_entry(&mut buf) {
            Ok(entry) => {
                let inputs = group_inputs(&entry, &buf[..entry.len.min(buf.len())], &mut known);
                shared.with_replica(|r, now| inputs.into_iter().for_each(|input| r.on_group(now, input)));
            }
            Err(status) => {
                println!("directory-server {}: out of the group ({status}); stopping", shared.index);
                shared.with_replica(|r, now| r.on_group(now, GroupInput::Gone));
                // Let the serving threads give their answers before the process ends.
                time::sleep_us(200_000);
                sys::exit(3);
            }
        }
    }
}

fn spawn(f: impl FnOnce() + Send + 'static) {
    drop(thread::spawn_with_stack(THREAD_STACK, f));
}

/// Serves `get` with `dispatch` on this thread until `get_request` fails.
fn serve_port(
    index: u8,
    get: GetPort,
    dispatch: impl FnMut(&amoeba_abi::Header, &[u8]) -> (amoeba_abi::Header, Vec<u8>),
) -> ! {
    let status = serve(&get, REQUEST_MAX, dispatch);
    println!("directory-server {index}: get_request failed: {status}");
    sys::exit(4);
}

fn start_service_threads(shared: &'static Shared) {
    for slot in 0..SERVICE_THREADS {
        spawn(move || {
            let mut service = Service::new(Handle { shared, slot }, shared.identity.port());
            serve_port(shared.index, shared.identity.service_get_port(), |h, b| service.dispatch(h, b));
        });
    }
}

fn start_helpers(shared: &'static Shared, group: &'static Group, mut store: RpcStore<Nucleus>) {
    let index = shared.index;
    spawn(move || {
        loop {
            let bytes = shared.to_group.pop();
            if let Err(status) = group.send(&bytes) {
                println!("directory-server {index}: group send failed: {status}");
            }
        }
    });
    spawn(move || {
        loop {
            let (id, op) = shared.to_store.pop();
            let result = op.run(&mut store);
            shared.with_replica(|r, now| r.on_store_done(now, id, result));
        }
    });
    for peer in &shared.peers {
        let to = shared.identity.replica_capability(peer.to);
        spawn(move || {
            loop {
                let bytes = peer.take();
                if replica_port::Client::new(Nucleus).deliver(&to, &bytes).is_err() {
                    time::sleep_us(PEER_RETRY_US);
                }
            }
        });
    }
    for k in 0..REPLICA_PORT_THREADS {
        spawn(move || {
            let handle = Handle { shared, slot: SERVICE_THREADS + k };
            let identity = shared.identity;
            let own = identity.replica_get_port(index);
            let mut port = ReplicaPort::new(handle, own.put_port(), identity.ports.replica_random);
            serve_port(index, own, |h, b| port.dispatch(h, b));
        });
    }
    spawn(move || {
        let mut serving = false;
        loop {
            time::sleep_us(TICK_US);
            let (now_serving, applied) = shared.with_replica(|r, now| {
                r.on_tick(now);
                (r.is_serving(), r.state().applied)
            });
            if now_serving && !serving {
                serving = true;
                start_service_threads(shared);
                println!("directory-server {index}: serving at position {applied}");
                let own = shared.identity.replica_capability(index);
                starter::announce_soon("directory-server", Announcement::Serving(own));
            }
        }
    });
}

fn main(_: u64) -> i32 {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(why) => {
            println!("directory-server: {why}");
            return 1;
        }
    };
    let i = config.index;
    let mut store = match RpcStore::open(Nucleus, config.bullet, config.slots.clone()) {
        Ok(store) => store,
        Err(status) => {
            println!("directory-server {i}: the anchor disk does not answer: {status}");
            return 1;
        }
    };
    let mut start_report = StartReport::default();
    let previous = {
        let mut pause = retry_pause(i, &mut start_report);
        store::with_retries(store::Reading::Anchor(i), RECOVERY_ATTEMPTS, &mut pause, || {
            store::read_anchor(&mut store, i).map_err(store::RecoveryError::Store)
        })
    };
    let previous = match previous {
        Ok(anchor) => anchor,
        Err(error) => {
            println!("directory-server {i}: reading my anchor failed: {error}");
            return 1;
        }
    };
    let start = if config.create {
        match initial_state(&mut store, &config, &mut start_report) {
            Ok(state) => Start::Create(state),
            Err(why) => {
                println!("directory-server {i}: {why}");
                return 1;
            }
        }
    } else {
        start_report.beginning = Beginning::Joined;
        Start::Join
    };
    let group = match enter_group(&config) {
        Ok(group) => &*Box::leak(Box::new(group)),
        Err(status) => {
            println!("directory-server {i}: cannot enter the group: {status}");
            return 1;
        }
    };
    let me = match group.info() {
        Ok(info) => info.member_id,
        Err(status) => {
            println!("directory-server {i}: no group info: {status}");
            return 1;
        }
    };
    let replica_config = ReplicaConfig {
        replicas: config.replicas,
        index: i,
        max_message_len: GROUP_MESSAGE_MAX,
        persist: PersistConfig { anchor_len: store.anchor_len(), ..PersistConfig::default() },
        ..ReplicaConfig::default()
    };
    let replica = Replica::new(replica_config, start, previous, config.seed);
    let peers = (0..config.replicas)
        .filter(|r| *r != i)
        .map(|to| Mailbox { to, latest: Mutex::new(None), ready: Semaphore::new(0) })
        .collect();
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        index: i,
        identity: config.identity,
        replica: Mutex::new(replica),
        slots: (0..SERVICE_THREADS + REPLICA_PORT_THREADS).map(|_| Slot::new()).collect(),
        to_group: Queue::new(),
        to_store: Queue::new(),
        peers,
        answered: AtomicU64::new(0),
        start: start_report,
    }));
    shared.with_replica(|r, now| r.on_group(now, GroupInput::Joined { member_id: me, members: vec![me] }));
    println!(
        "directory-server {i}: member {me} of the group; {}",
        if config.create { "created" } else { "catching up" }
    );
    start_helpers(shared, group, store);
    receive_forever(shared, group, me)
}
