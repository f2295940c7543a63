//! One system for a pool across hosts. One part of the pool (`up` without
//! `--join`) starts the servers; every other part (`up --join FILE`) boots
//! only its boards and joins that system over the VXLAN uplink:
//!
//! - it enters each of its boards in `/hosts` (restricted to placement: the
//!   run server reads that directory again every two seconds, so it sees every
//!   processor of the pool) and in `/system/processors` (the boards' owner host
//!   capabilities, reachable only through the root's owner column, like
//!   `/system/boot`);
//! - every part's `up` reads `/system/processors` every two seconds and keeps
//!   its run directory's `capabilities` file listing every board of the pool,
//!   so that `ps`, `ax --on N`, `kill board5/3` work from any part's side.
//!
//! **Handing the capabilities over.** A joining part needs the root
//! capability (and the run server's and Bullet's) of the part that started the
//! servers: the `capabilities` file of that part's run directory, copied to the
//! joining host the way an owner copies a private key (`scp -p`, kept mode
//! 0600) and named with `--join FILE`. `up` refuses a file that group or
//! others may read, and nothing secret goes on a command line. Everything
//! after that (the other parts' boards) comes through the directory, behind
//! the root's owner column.

use super::in_directory;
use crate::names;
use amoeba_abi::{Capability, Rights, Status};
use amoeba_ipc::interfaces::directory::{MaskChange, soap};
use amoeba_ipc::interfaces::process::HOST_PLACEMENT;
use amoeba_ipc::interfaces::run_server;
use anyhow::{Context, Result, bail};
use qemu_pool::pool::Pool;
use std::path::Path;
use std::time::{Duration, Instant};

/// The directory in `/system` with every board's owner host capability.
pub const PROCESSORS: &str = "processors";
/// How often `up` reads `/system/processors` again.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long a joining part waits for the run server to count its boards alive.
const RUN_SERVER_SEES: Duration = Duration::from_secs(60);
/// How long one refresh of the processors may take before it is left for the next.
const REFRESH_DEADLINE: Duration = Duration::from_secs(2);
/// The capabilities a joining part takes from the servers part's file.
const SYSTEM_CAPABILITIES: [&str; 4] = ["root", "bullet", "run", "boot"];

/// The name of board `id`'s rows.
fn row_name(id: u16) -> String {
    format!("board{id}")
}

/// The board ids a capabilities file names (`board<N>` rows).
pub fn boards_in(capabilities: &[(String, Capability)]) -> Vec<u16> {
    capabilities.iter().filter_map(|(name, _)| name.strip_prefix("board")?.parse().ok()).collect()
}

/// What a joining part takes from the servers part's capabilities: the
/// system's (root, Bullet, run server, boot service); an error if the root is
/// missing or one of `boards` is already the other part's.
pub fn system_capabilities(
    given: &[(String, Capability)],
    boards: &[u16],
) -> Result<Vec<(String, Capability)>> {
    if let Some(taken) = boards_in(given).into_iter().find(|id| boards.contains(id)) {
        bail!(
            "board {taken} is already a board of the part that started the servers (it has boards {:?}); \
             give this part a --first-board whose boards no other part has",
            boards_in(given)
        );
    }
    let system: Vec<(String, Capability)> =
        given.iter().filter(|(name, _)| SYSTEM_CAPABILITIES.contains(&name.as_str())).cloned().collect();
    if !system.iter().any(|(name, _)| name == "root") {
        bail!(
            "the capabilities to join with have no root directory (`root`): is it a pool's `capabilities` file?"
        );
    }
    Ok(system)
}

/// `/system/processors`, made if it is not there, reachable only through the
/// owner column of `/system` (which is reachable only through the root's).
fn processors_directory(pool: &Pool, root: &Capability) -> Result<Capability> {
    let rpc = || pool.rpc();
    let system = in_directory("finding /system", || {
        names::ensure_directory(&mut *rpc(), root, super::boot_service::SYSTEM_DIRECTORY)
    })?;
    let processors = in_directory("making /system/processors", || {
        names::ensure_directory(&mut *rpc(), &system, PROCESSORS)
    })?;
    let change =
        MaskChange { name: String::from(PROCESSORS), masks: vec![Rights::ALL, Rights(0), Rights(0)] };
    in_directory("protecting /system/processors", || soap::Client::new(&mut *rpc()).chmod(&system, &change))?;
    Ok(processors)
}

/// Enters every board of `pool` in `/system/processors` (its owner host
/// capability); with `only_these`, removes the rows of boards that are not
/// this pool's (the part that starts the servers: joining parts enter their
/// boards again when they join).
pub fn enter_processors(pool: &Pool, root: &Capability, only_these: bool) -> Result<()> {
    let processors = processors_directory(pool, root)?;
    let rpc = || pool.rpc();
    let ours: Vec<String> = pool.boards().iter().map(|b| row_name(b.spec.id)).collect();
    for (index, name) in ours.iter().enumerate() {
        let host = pool.host_capability(index);
        in_directory(&format!("entering /system/processors/{name}"), || {
            names::enter(&mut *rpc(), &processors, name, host)
        })?;
    }
    if only_these {
        let listing =
            in_directory("listing /system/processors", || soap::Client::new(&mut *rpc()).list(&processors))?;
        for row in listing.rows.iter().filter(|row| !ours.contains(&row.name)) {
            in_directory("cleaning /system/processors", || {
                soap::Client::new(&mut *rpc()).delete(&processors, &row.name)
            })?;
        }
    }
    Ok(())
}

/// Every board of the pool that `/system/processors` lists: (id, owner host
/// capability), by id. Gives up after a short while (`up` asks again later).
pub fn processors(pool: &Pool, root: &Capability) -> Result<Vec<(u16, Capability)>, Status> {
    let mut rpc = pool.rpc();
    rpc.deadline = Some(Instant::now() + REFRESH_DEADLINE);
    let result = (|| -> Result<Vec<(u16, Capability)>, Status> {
        let system = names::resolve(&mut *rpc, root, super::boot_service::SYSTEM_DIRECTORY)?;
        let processors = names::resolve(&mut *rpc, &system, PROCESSORS)?;
        let listing = soap::Client::new(&mut *rpc).list(&processors)?;
        let mut boards = Vec::new();
        for row in listing.rows {
            let Some(id) = row.name.strip_prefix("board").and_then(|n| n.parse::<u16>().ok()) else {
                continue;
            };
            boards.push((id, names::resolve(&mut *rpc, &processors, &row.name)?));
        }
        boards.sort_by_key(|(id, _)| *id);
        Ok(boards)
    })();
    rpc.deadline = None;
    result
}

/// The `capabilities` file's rows: `system`'s, then every board of `processors`.
pub fn capabilities_file(
    system: &[(String, Capability)],
    processors: &[(u16, Capability)],
) -> Vec<(String, Capability)> {
    let mut rows: Vec<(String, Capability)> =
        processors.iter().map(|(id, capability)| (row_name(*id), *capability)).collect();
    rows.extend(system.iter().filter(|(name, _)| !name.starts_with("board")).cloned());
    rows
}

/// What one part of a pool runs: the servers, or a join to another part's.
pub enum Part {
    Servers(Box<super::System>),
    /// The system's capabilities (root, Bullet, run server, boot service).
    Joined(Vec<(String, Capability)>),
}

impl Part {
    /// The root directory's capability.
    pub fn root(&self) -> Option<Capability> {
        match self {
            Part::Servers(system) => Some(system.root),
            Part::Joined(given) => given.iter().find(|(name, _)| name == "root").map(|(_, c)| *c),
        }
    }

    /// Writes `run_dir`'s `capabilities`: the system's, those of every
    /// processor in `processors`, and `local`, what this part's host runs for
    /// its own commands (its log server).
    pub fn save_capabilities(
        &self,
        pool: &Pool,
        run_dir: &Path,
        processors: &[(u16, Capability)],
        local: &[(String, Capability)],
    ) -> Result<()> {
        let system = match self {
            Part::Servers(system) => system.capabilities(pool),
            Part::Joined(given) => given.clone(),
        };
        let mut rows = capabilities_file(&system, processors);
        rows.extend(local.iter().cloned());
        crate::capabilities_file::save(run_dir, &rows)
    }
}

/// Joins this part's boards to the system of `system` (see
/// [`system_capabilities`]): enters them in `/hosts` and
/// `/system/processors`, and waits until the run server counts every one
/// alive.
pub fn join(pool: &Pool, system: &[(String, Capability)]) -> Result<()> {
    let find = |name: &str| system.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    let root = find("root").context("no root capability to join with")?;
    let rpc = || pool.rpc();
    let hosts = in_directory("finding /hosts (is the part with the servers up?)", || {
        names::resolve(&mut *rpc(), &root, "hosts")
    })?;
    for (index, board) in pool.boards().iter().enumerate() {
        let name = row_name(board.spec.id);
        let placement = pool.host_capability(index).restrict(HOST_PLACEMENT).map_err(|status| {
            anyhow::anyhow!("restricting board {}'s capability: {status}", board.spec.id)
        })?;
        in_directory(&format!("entering /hosts/{name}"), || {
            names::enter(&mut *rpc(), &hosts, &name, placement)
        })?;
    }
    enter_processors(pool, &root, false)?;
    let Some(run) = find("run") else { return Ok(()) };
    let ours: Vec<String> = pool.boards().iter().map(|b| row_name(b.spec.id)).collect();
    let deadline = Instant::now() + RUN_SERVER_SEES;
    loop {
        let reports = run_server::Client::new(&mut *rpc()).hosts(&run);
        let alive =
            |name: &String| reports.as_ref().is_ok_and(|r| r.iter().any(|h| &h.name == name && h.alive));
        if ours.iter().all(alive) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the run server does not count boards {ours:?} alive after {RUN_SERVER_SEES:?}: {reports:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Takes this part's boards out of `/hosts` and `/system/processors` (when
/// it stops), so that the run server and the other parts stop counting them.
pub fn leave(pool: &Pool, root: &Capability) {
    let mut rpc = pool.rpc();
    rpc.deadline = Some(Instant::now() + Duration::from_secs(5));
    let directories = [
        names::resolve(&mut *rpc, root, "hosts"),
        names::resolve(&mut *rpc, root, super::boot_service::SYSTEM_DIRECTORY)
            .and_then(|system| names::resolve(&mut *rpc, &system, PROCESSORS)),
    ];
    for directory in directories.into_iter().flatten() {
        for board in pool.boards() {
            let _ = soap::Client::new(&mut *rpc).delete(&directory, &row_name(board.spec.id));
        }
    }
    rpc.deadline = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capability(object: u32) -> Capability {
        Capability::owner(amoeba_abi::Port([1, 2, 3, 4, 5, 6]), object, amoeba_abi::Check([7; 6]))
    }

    fn file_rows() -> Vec<(String, Capability)> {
        ["board0", "board1", "bullet", "root", "run", "boot"]
            .iter()
            .enumerate()
            .map(|(i, name)| (String::from(*name), capability(i as u32)))
            .collect()
    }

    #[test]
    fn a_joining_part_takes_the_system_and_not_the_other_boards() {
        let system = system_capabilities(&file_rows(), &[4, 5]).unwrap();
        let names: Vec<&str> = system.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["bullet", "root", "run", "boot"]);
        let error = system_capabilities(&file_rows(), &[1, 2]).unwrap_err().to_string();
        assert!(error.contains("board 1 is already") && error.contains("--first-board"), "{error}");
        let no_root: Vec<_> = file_rows().into_iter().filter(|(n, _)| n != "root").collect();
        assert!(system_capabilities(&no_root, &[4]).unwrap_err().to_string().contains("no root"));
    }

    #[test]
    fn the_capabilities_file_lists_every_processor_and_the_system() {
        let system = system_capabilities(&file_rows(), &[4]).unwrap();
        let rows = capabilities_file(&system, &[(0, capability(10)), (4, capability(14))]);
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["board0", "board4", "bullet", "root", "run", "boot"]);
        assert_eq!(boards_in(&rows), vec![0, 4]);
    }
}
