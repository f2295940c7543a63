//! `ps`, `stun`, `resume`, `kill` and `hosts`: the processes of every board
//! (asked of each board's process server) and the processors as the run
//! server sees them. `ps` tells a running process from one whose threads all
//! wait, and says on what: a program stuck on output nobody takes shows
//! `blocked`, not `running`.

use super::Workstation;
use amoeba_abi::Capability;
use amoeba_ipc::interfaces::process::{Activity, HostInfo, ProcessReport, ProcessState};
use amoeba_ipc::interfaces::{process_server, run_server, standard};
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;

/// Which process a command means: a capability, `BOARD/PID`, or a program
/// name `ps` shows (which must name one process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Capability(Capability),
    Pid { board: u16, pid: u32 },
    Name(String),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(text: &str) -> Result<Target, String> {
        if let Ok(capability) = text.parse() {
            return Ok(Target::Capability(capability));
        }
        if let Some((board, pid)) = text.split_once('/')
            && let (Ok(board), Ok(pid)) = (board.trim_start_matches("board").parse(), pid.parse())
        {
            return Ok(Target::Pid { board, pid });
        }
        if text.is_empty() {
            return Err(String::from("name a process: its capability, BOARD/PID, or its program's name"));
        }
        Ok(Target::Name(String::from(text)))
    }
}

/// Every process of every board that answers: (board, report).
pub(super) fn all_processes(
    workstation: &mut Workstation,
) -> Vec<(u16, Result<Vec<ProcessReport>, amoeba_abi::Status>)> {
    workstation
        .boards()
        .into_iter()
        .map(|(board, host)| (board, process_server::Client::new(workstation.rpc()).processes(&host)))
        .collect()
}

/// A process's state in a word or two: `running`, `blocked` (every thread
/// waits, one for a transaction's reply: output, a file, a server), `serving`
/// (waiting for requests), `waiting` (sleeping, on a lock, ...), `stunned`,
/// `exited N`.
pub fn state_text(report: &ProcessReport) -> String {
    match report.state {
        ProcessState::Running => String::from(match report.activity {
            Activity::Runnable => "running",
            Activity::Transaction => "blocked",
            Activity::Serving => "serving",
            Activity::Waiting => "waiting",
        }),
        ProcessState::Stunned => String::from("stunned"),
        ProcessState::Exited(status) => format!("exited {status}"),
    }
}

/// `ps`: a table of every process on every board.
pub fn ps(workstation: &mut Workstation, all: bool) -> Result<String> {
    let mut table = format!("{:<8} {:>6}  {:<20} {:<12} {:>10}\n", "BOARD", "PID", "PROGRAM", "STATE", "CPU");
    for (board, processes) in all_processes(workstation) {
        match processes {
            Ok(processes) => {
                for p in processes.iter().filter(|p| all || !matches!(p.state, ProcessState::Exited(_))) {
                    let cpu = format!("{:.2} s", p.cpu_us as f64 / 1e6);
                    let _ = writeln!(
                        table,
                        "{:<8} {:>6}  {:<20} {:<12} {:>10}",
                        format!("board{board}"),
                        p.pid,
                        p.name,
                        state_text(p),
                        cpu
                    );
                }
            }
            Err(status) => {
                let _ = writeln!(table, "{:<8} (not answering: {status})", format!("board{board}"));
            }
        }
    }
    Ok(table)
}

/// The live processes running program `name`: (board, pid).
fn running(workstation: &mut Workstation, name: &str) -> Vec<(u16, u32)> {
    all_processes(workstation)
        .into_iter()
        .filter_map(|(board, list)| Some((board, list.ok()?)))
        .flat_map(|(board, list)| {
            list.into_iter()
                .filter(|p| p.name == name && !matches!(p.state, ProcessState::Exited(_)))
                .map(move |p| (board, p.pid))
        })
        .collect()
}

/// The capability of the process `target` names.
fn resolve(workstation: &mut Workstation, target: &Target) -> Result<Capability> {
    match target {
        Target::Capability(capability) => Ok(*capability),
        Target::Pid { board, pid } => {
            let host = workstation.host_capability(*board)?;
            process_server::Client::new(workstation.rpc())
                .process_capability(&host, *pid)
                .map_err(|status| anyhow::anyhow!("board{board} has no process {pid} ({status})"))
        }
        Target::Name(name) => match running(workstation, name).as_slice() {
            [] => bail!("no process runs {name} (see `ps`)"),
            [(board, pid)] => resolve(workstation, &Target::Pid { board: *board, pid: *pid }),
            several => {
                let names: Vec<String> = several.iter().map(|(b, p)| format!("board{b}/{p}")).collect();
                bail!(
                    "{} processes run {name}: say which ({}), or all of them with --all",
                    several.len(),
                    names.join(", ")
                )
            }
        },
    }
}

/// What `stun`, `resume` and `kill` do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Stun,
    Resume,
    Kill,
}

/// `stun`, `resume` or `kill` the process `target` names, or with `all`
/// every process running the program `target` names; what was done, in words
/// (empty for one process).
pub fn stop_or_resume(
    workstation: &mut Workstation,
    target: &Target,
    action: Action,
    all: bool,
) -> Result<String> {
    if !all {
        let capability = resolve(workstation, target)?;
        return act(workstation, &capability, action).map(|()| String::new()).map_err(explain);
    }
    let Target::Name(name) = target else {
        bail!("--all takes a program's name (as `ps` shows it)");
    };
    let targets = running(workstation, name);
    if targets.is_empty() {
        bail!("no process runs {name} (see `ps`)");
    }
    let mut failed = Vec::new();
    for &(board, pid) in &targets {
        let host = workstation.host_capability(board)?;
        let done = process_server::Client::new(workstation.rpc())
            .process_capability(&host, pid)
            .and_then(|capability| act(workstation, &capability, action));
        match done {
            // One that ended meanwhile is as good as done.
            Ok(()) | Err(amoeba_abi::Status::NotFound) => {}
            Err(status) => failed.push(format!("board{board}/{pid}: {}", explain(status))),
        }
    }
    let verb = match action {
        Action::Stun => "stunned",
        Action::Resume => "resumed",
        Action::Kill => "killed",
    };
    if !failed.is_empty() {
        bail!(
            "{} of {} processes running {name} not {verb}: {}",
            failed.len(),
            targets.len(),
            failed.join("; ")
        );
    }
    Ok(format!("{verb} {} processes running {name}\n", targets.len()))
}

/// Applies `action` to one process.
fn act(
    workstation: &mut Workstation,
    capability: &Capability,
    action: Action,
) -> Result<(), amoeba_abi::Status> {
    match action {
        Action::Stun => process_server::Client::new(workstation.rpc()).stun(capability),
        Action::Resume => process_server::Client::new(workstation.rpc()).resume(capability),
        Action::Kill => standard::Client::new(workstation.rpc()).destroy(capability),
    }
}

/// What a refused `stun`, `resume` or `kill` means, in words.
fn explain(status: amoeba_abi::Status) -> anyhow::Error {
    match status {
        amoeba_abi::Status::Denied => anyhow::anyhow!("not allowed by this capability"),
        amoeba_abi::Status::CapBad => anyhow::anyhow!("no such process (or a forged capability)"),
        amoeba_abi::Status::NotFound => anyhow::anyhow!("the process has already ended"),
        other => anyhow::anyhow!("{other}"),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

fn host_row(name: &str, alive: &str, info: Option<&HostInfo>) -> String {
    match info {
        Some(info) => format!(
            "{:<10} {:<6} {:>6.2} {:>10} {:>12} {:>9} {:>12}\n",
            name,
            alive,
            info.load_milli() as f64 / 1000.0,
            mib(info.free_bytes),
            mib(info.largest_free),
            info.processes,
            mib(info.kernel_heap_free)
        ),
        None => format!("{name:<10} {alive:<6} (no report)\n"),
    }
}

/// `hosts`: each processor's load, free memory, largest free run, and whether
/// the run server counts it alive.
pub fn hosts(workstation: &mut Workstation) -> Result<String> {
    let run =
        workstation.capability("run").context("the pool has no run server (start it with `just up`)")?;
    let reports = run_server::Client::new(workstation.rpc())
        .hosts(&run)
        .map_err(|status| anyhow::anyhow!("the run server is not reachable ({status})"))?;
    let mut table = format!(
        "{:<10} {:<6} {:>6} {:>10} {:>12} {:>9} {:>12}\n",
        "HOST", "ALIVE", "LOAD", "FREE", "LARGEST RUN", "PROCESSES", "KERNEL HEAP"
    );
    for report in reports {
        table.push_str(&host_row(
            &report.name,
            if report.alive { "yes" } else { "no" },
            report.info.as_ref(),
        ));
    }
    Ok(table)
}
