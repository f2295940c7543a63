//! The boot service on a pool: `up` writes its configuration into the
//! directory (`/system/boot`, a file only the root's owner column reaches),
//! starts it (`boot-server`, on `boot_service_board`: the board before the
//! run server's on a pool of five or more), waits until it sees every
//! service up, and then watches it from the host: the boot service restarts
//! the other services, and `up`, which keeps running, restarts the boot
//! service if its process ends (or its board reboots), on its board or, if
//! that board's QEMU has stopped, on another running board.
//!
//! What each service starts with mirrors how `up` starts it the first time
//! (`start_bullet`, `DirectoryService::start_replica` in join mode,
//! `start_run_server_for`), with capabilities of a board's disk asked of the
//! board afresh at every start.

use super::directory::{self, DirectoryService};
use super::{ANCHOR_BLOCKS, BULLET_HEAP, in_directory};
use crate::names;
use amoeba_abi::{Capability, Rights, Status};
use amoeba_client::exec::Exec;
use amoeba_ipc::interfaces::boot::{ServiceReport, ServiceState};
use amoeba_ipc::interfaces::directory::MaskChange;
use amoeba_ipc::interfaces::process::{ProcessState, Quotas};
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_ipc::interfaces::{DISK_READ, boot_service, process_server, soap};
use anyhow::{Context, Result, bail};
use boot_server::config::{
    Board, BootConfig, CapabilitySource, NamedCapability, ServiceCheck, ServiceConfig,
};
use directory_server::layout::{SLOT_BLOCKS, slot_first_block};
use qemu_pool::exec::Started;
use qemu_pool::pool::Pool;
use std::time::{Duration, Instant};

/// The program.
pub const PROGRAM: &str = "boot-server";
/// The directory of the root that holds the configuration, and the file's name there.
pub const SYSTEM_DIRECTORY: &str = "system";
/// The configuration's name in [`SYSTEM_DIRECTORY`].
pub const CONFIG_NAME: &str = "boot";
/// The boot service's heap: its table and its threads' stacks.
const HEAP: u64 = 8 << 20;
/// How long the boot service has to find every service up.
const SETTLE: Duration = Duration::from_secs(60);
/// How long `up` waits for the boot service's board to say how its process is.
const WATCH_DEADLINE: Duration = Duration::from_secs(1);

/// What the boot service needs of a board: create processes (and read its
/// boot programs), read its process list and uptime, find a process by id,
/// make capabilities for its disks, and age the board's objects (`STD_AGE`,
/// which takes the board's owner capability: Amoeba's boot server held the
/// servers' super capabilities too).
pub const BOOT_HOST_RIGHTS: Rights = Rights::ALL;

/// Random hex: `bytes` bytes from the host's random source.
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// The services `up` started, as the boot service should start them again.
pub struct Services<'a> {
    /// The Bullet server's super capability, its board and its `SEED`.
    pub bullet: (Capability, usize, &'a str),
    /// The directory service as `up` started it.
    pub directory: &'a DirectoryService,
    /// The run server's capability, board, pool directory and `SEED`.
    pub run: (Capability, usize, Capability, &'a str),
    /// The directory whose listing checks a replica (small; `/system`).
    pub check_directory: Capability,
}

fn given(name: &str, capability: Capability) -> NamedCapability {
    NamedCapability { name: String::from(name), source: CapabilitySource::Given(capability) }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| String::from(*s)).collect()
}

/// The boot service's configuration for `services` on `pool`.
pub fn config(pool: &Pool, services: &Services<'_>) -> Result<BootConfig> {
    let id = |index: usize| pool.boards()[index].spec.id;
    let boards = (0..pool.boards().len())
        .map(|index| {
            let host = pool
                .host_capability(index)
                .restrict(BOOT_HOST_RIGHTS)
                .expect("an owner capability restricts");
            Board { id: id(index), host }
        })
        .collect();
    let (bullet, bullet_board, bullet_seed) = services.bullet;
    let mut list = vec![ServiceConfig {
        name: String::from("bullet"),
        program: String::from("bullet-server"),
        boards: vec![id(bullet_board)],
        heap_bytes: BULLET_HEAP,
        argv: strings(&["bullet-server"]),
        environment: vec![format!("SEED={bullet_seed}")],
        capabilities: vec![NamedCapability {
            name: String::from("DISK"),
            source: CapabilitySource::Disk {
                board: id(bullet_board),
                first: ANCHOR_BLOCKS,
                count: 0,
                rights: Rights::ALL,
            },
        }],
        check: ServiceCheck::Info(bullet),
        after: Vec::new(),
        set: None,
    }];
    let dir = services.directory;
    let replicas = dir.replicas.len() as u8;
    for index in 0..replicas {
        let mut capabilities =
            vec![given("SERVICE", dir.identity.super_capability()), given("BULLET", bullet)];
        for slot in 0..directory_server::layout::MAX_REPLICAS {
            let rights = if slot == index { Rights::ALL } else { DISK_READ };
            capabilities.push(NamedCapability {
                name: format!("ANCHOR{slot}"),
                source: CapabilitySource::Disk {
                    board: id(bullet_board),
                    first: slot_first_block(slot),
                    count: SLOT_BLOCKS as u32,
                    rights,
                },
            });
        }
        capabilities.push(given("GROUP", dir.group));
        list.push(ServiceConfig {
            name: format!("directory {index}"),
            program: String::from(directory::PROGRAM),
            boards: vec![id(dir.replicas[index as usize].board)],
            heap_bytes: directory::REPLICA_HEAP,
            argv: strings(&[directory::PROGRAM]),
            environment: vec![
                format!("INDEX={index}"),
                format!("REPLICAS={replicas}"),
                String::from("MODE=join"),
                format!("SEED={}", random_hex(23)?),
                format!("PORTS={}", dir.identity.ports.to_hex()),
            ],
            capabilities,
            check: ServiceCheck::DirectoryReplica {
                replica: dir.identity.replica_capability(index),
                directory: services.check_directory,
            },
            after: vec![String::from("bullet")],
            set: Some(String::from("directory")),
        });
    }
    let (run, run_board, pool_directory, run_seed) = services.run;
    // The run server may move: its board first, then the others from the last.
    let mut run_boards = vec![id(run_board)];
    run_boards.extend((0..pool.boards().len()).rev().map(id).filter(|b| *b != id(run_board)));
    list.push(ServiceConfig {
        name: String::from("run"),
        program: String::from("run-server"),
        boards: run_boards,
        heap_bytes: amoeba_client::exec::DEFAULT_HEAP_SIZE,
        argv: strings(&["run-server"]),
        environment: vec![format!("SEED={run_seed}")],
        capabilities: vec![given("POOLDIR", pool_directory)],
        check: ServiceCheck::Info(run),
        after: Vec::new(),
        set: None,
    });
    let config = BootConfig { boards, services: list };
    config.validate().map_err(|e| anyhow::anyhow!("the boot configuration: {e}"))?;
    Ok(config)
}

/// Masks that let only the owner column see a row.
fn owner_only() -> Vec<Rights> {
    vec![Rights::ALL, Rights(0), Rights(0)]
}

/// `/system`, made if it is not there, reachable only through the root's owner column.
pub fn system_directory(pool: &Pool, root: &Capability) -> Result<Capability> {
    let rpc = || pool.rpc();
    let system =
        in_directory("making /system", || names::ensure_directory(&mut *rpc(), root, SYSTEM_DIRECTORY))?;
    let change = MaskChange { name: String::from(SYSTEM_DIRECTORY), masks: owner_only() };
    in_directory("protecting /system", || soap::Client::new(&mut *rpc()).chmod(root, &change))?;
    Ok(system)
}

/// Stores `config` as `/system/boot` (replacing an older one), readable through
/// the owner column only.
pub fn write_config(
    pool: &Pool,
    bullet: &Capability,
    system: &Capability,
    config: &BootConfig,
) -> Result<()> {
    let bytes = config.encode().map_err(|e| anyhow::anyhow!("encoding the boot configuration: {e}"))?;
    let file = amoeba_client::files::put(&mut *pool.rpc(), bullet, &bytes, |_| {})
        .map_err(|status| anyhow::anyhow!("storing the boot configuration: {status}"))?;
    let rpc = || pool.rpc();
    in_directory("entering /system/boot", || {
        names::replace_and_destroy(&mut *rpc(), system, CONFIG_NAME, file)
    })?;
    let change = MaskChange { name: String::from(CONFIG_NAME), masks: owner_only() };
    in_directory("protecting /system/boot", || soap::Client::new(&mut *rpc()).chmod(system, &change))?;
    Ok(())
}

/// The boot service as `up` runs it.
pub struct BootService {
    /// Its capability (the same after every start: it follows from its seed).
    pub capability: Capability,
    /// Its process.
    pub process: Started,
    exec: Exec,
}

/// Starts the boot service on board `board` with the configuration in `system`.
pub fn start(pool: &Pool, board: usize, system: &Capability) -> Result<BootService> {
    let seed = random_hex(32)?;
    let capability = boot_server::capability(boot_server::parse_seed(&seed).context("a seed of 32 bytes")?);
    let mut exec = Exec::new(PROGRAM, &[PROGRAM]).with_capability("SYSTEM", *system);
    exec.startup.environment.push(format!("SEED={seed}"));
    exec.heap_size = HEAP;
    // It polls every board and checks every service from threads of its own,
    // each with a transaction outstanding at times: more than a process's
    // default of 8 (its board's owner, which `up` is, may give it more).
    exec.quotas.transactions = Quotas::CEILING.transactions;
    let (process, expected) = crate::start_expecting(pool, board, &exec)?;
    crate::wait_announced(pool, &process, &expected, PROGRAM, SETTLE, |announcement| {
        (*announcement == Announcement::Serving(capability)).then_some(())
    })
    .context("the boot service did not announce its capability")?;
    // Started again by `keep_alive` without a starter to tell: nobody waits then.
    Ok(BootService { capability, process, exec })
}

impl BootService {
    /// What the boot service reports.
    pub fn services(&self, pool: &Pool) -> Result<Vec<ServiceReport>, Status> {
        boot_service::Client::new(&mut *pool.rpc()).services(&self.capability)
    }

    /// Waits until the boot service sees every service up.
    pub fn wait_all_up(&self, pool: &Pool) -> Result<Vec<ServiceReport>> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let reports = self.services(pool);
            if let Ok(reports) = &reports
                && reports.iter().all(|r| r.state == ServiceState::Up)
            {
                return Ok(reports.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "the boot service does not see every service up: {reports:?}\n{}",
                    pool.boards()[self.process.board].console_tail(15)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts the boot service again if its process has ended or its board
    /// rebooted (on another running board if its board's QEMU has stopped);
    /// what it did, in words. A board that is only slow to answer is left alone.
    pub fn keep_alive(&mut self, pool: &Pool) -> Option<String> {
        let board = self.process.board;
        let running = pool.boards()[board].is_running();
        let seen = {
            let mut rpc = pool.rpc();
            rpc.deadline = Some(Instant::now() + WATCH_DEADLINE);
            let seen = process_server::Client::new(&mut *rpc).inspect(&self.process.capability);
            rpc.deadline = None;
            seen
        };
        let gone = match seen {
            Ok(report) => matches!(report.state, ProcessState::Exited(_)),
            Err(Status::CapBad | Status::NotFound | Status::ServerRestarted) => true,
            Err(_) => !running,
        };
        if !gone {
            return None;
        }
        let target = if running {
            board
        } else {
            (0..pool.boards().len()).rev().find(|&b| pool.boards()[b].is_running())?
        };
        match pool.exec_with(target, PROGRAM, &self.exec) {
            Ok(process) => {
                self.process = process;
                Some(format!(
                    "the boot service's process on board {board} is gone; started it again on board {target}"
                ))
            }
            Err(error) => Some(format!("starting the boot service again on board {target}: {error:#}")),
        }
    }
}
