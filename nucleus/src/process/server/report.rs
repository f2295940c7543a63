//! What the process server tells about the board and its processes: the info
//! placement needs (load over the last second, free memory, the largest free
//! run), process reports, and the texts of STD_INFO and STD_STATUS.

#![forbid(unsafe_code)]

use super::state::{Object, ProcessServer};
use crate::process::thread::{Pid, ThreadState, Wait};
use crate::process::{Core, Process, ProcessState};
use alloc::format;
use alloc::string::String;
use amoeba_ipc::interfaces::process::{self as abi, Activity, HostInfo, ProcessReport};

/// What placement needs to know about the board.
pub fn host_info(server: &mut ProcessServer, core: &Core, now: u64) -> HostInfo {
    let memory = core.segments.memory.fragmentation();
    let load = server.load_meter.load(now, core.idle_us(), core.runnable_us());
    HostInfo {
        runnable_milli: (load.runnable_milli + young_runnable_milli(core, now, load.window_us)) as u32,
        cpu_load_milli: load.busy_milli,
        free_bytes: memory.free_bytes as u64,
        largest_free: memory.largest_free as u64,
        processes: core.processes.len() as u32,
        processes_created: core.processes_created,
        uptime_us: now,
        cached_texts: server.loads.text_ids(),
        kernel_heap_free: crate::heap::free_bytes() as u64,
    }
}

/// The runnable threads of processes younger than the load window, each for
/// the part of the window before its process existed (the average cannot
/// have seen them then): a program started just now counts in full.
fn young_runnable_milli(core: &Core, now: u64, window_us: u64) -> u64 {
    if window_us == 0 {
        return core.runnable_now() * u64::from(amoeba_ipc::interfaces::process::LOAD_UNIT);
    }
    let unit = u64::from(amoeba_ipc::interfaces::process::LOAD_UNIT);
    core.processes
        .values()
        .filter(|p| !p.has_exited() && now.saturating_sub(p.created_us) < window_us)
        .map(|p| {
            let runnable = p
                .threads
                .iter()
                .filter_map(|tid| core.threads.get(tid))
                .filter(|t| matches!(t.state, ThreadState::Ready | ThreadState::Running))
                .count() as u64;
            let unseen = window_us - now.saturating_sub(p.created_us);
            runnable * unit * unseen / window_us
        })
        .sum()
}

/// What a process's threads are doing: running if one can run; else blocked
/// on a transaction if one waits for a reply (output the terminal has not
/// taken yet looks like this), serving if one waits for requests, waiting
/// otherwise (sleeps, locks, joins, groups).
fn activity(core: &Core, process: &Process) -> Activity {
    let mut activity = Activity::Waiting;
    let mut any = false;
    for thread in process.threads.iter().filter_map(|tid| core.threads.get(tid)) {
        any = true;
        match thread.state {
            ThreadState::Ready | ThreadState::Running => return Activity::Runnable,
            ThreadState::Blocked(Wait::Trans(_)) => activity = Activity::Transaction,
            ThreadState::Blocked(Wait::GetRequest(_)) if activity == Activity::Waiting => {
                activity = Activity::Serving
            }
            _ => {}
        }
    }
    if any { activity } else { Activity::Runnable }
}

/// Everything `inspect` and `processes` tell about a process (`owned`: its
/// board checks an owner for it).
pub fn process_report(core: &Core, pid: Pid, process: &Process, owned: bool) -> ProcessReport {
    let state = match process.state {
        ProcessState::Running => abi::ProcessState::Running,
        ProcessState::Stunned => abi::ProcessState::Stunned,
        ProcessState::Exited(status) => abi::ProcessState::Exited(status),
    };
    let pc = process
        .threads
        .first()
        .and_then(|tid| core.threads.get(tid))
        .filter(|t| t.state != ThreadState::Dead && t.tid != core.current())
        .map_or(0, |t| t.user_pc);
    ProcessReport {
        pid,
        name: process.name.clone(),
        state,
        threads: process.threads.len() as u32,
        cpu_us: process.cpu_us,
        segments: process.mappings.iter().map(|m| (m.va as u64, m.len as u64, map_bits(m.flags))).collect(),
        pc,
        sp: 0,
        activity: activity(core, process),
        owned,
    }
}

fn map_bits(flags: crate::arch::mmu::MapFlags) -> u32 {
    (if flags.write { abi::MAP_WRITE } else { 0 }) | (if flags.execute { abi::MAP_EXECUTE } else { 0 })
}

/// STD_INFO's text for an object of the process server.
pub fn describe(server: &ProcessServer, core: &Core, object: u32) -> String {
    match server.object(core, object) {
        Some(Object::Host) => {
            let memory = core.segments.memory.fragmentation();
            format!(
                "board process server: {} processes, {} MiB free (largest run {} MiB), kernel heap {} KiB free",
                core.processes.len(),
                memory.free_bytes >> 20,
                memory.largest_free >> 20,
                crate::heap::free_bytes() >> 10
            )
        }
        Some(Object::Process(pid)) => {
            let Some(process) = core.process_record(pid) else {
                return String::from("no such object");
            };
            let state = match process.state {
                ProcessState::Running => String::from("running"),
                ProcessState::Stunned => String::from("stunned"),
                ProcessState::Exited(status) => format!("exited with status {status}"),
            };
            let (segments, segment_bytes) = core.segments.charged_to(pid);
            let tables = process.space.as_ref().map_or(0, |space| space.table_count());
            let quotas = &process.quotas;
            format!(
                "process {pid} ({}): {state}, {}/{} threads, {segments}/{} segments of {} KiB/{} KiB, \
                 {}/{} transactions, {tables}/{} translation tables",
                process.name,
                process.threads.len(),
                quotas.threads,
                quotas.segments,
                segment_bytes >> 10,
                quotas.segment_bytes >> 10,
                process.usage.transactions,
                quotas.transactions,
                quotas.translation_tables
            )
        }
        Some(Object::Segment(id)) => {
            let len = core.segments.get(id).map_or(0, |s| s.len());
            format!("segment {id}: {len} bytes")
        }
        Some(Object::BootProgram(index)) => {
            let Some(program) = server.boot_programs.get(index) else {
                return String::from("no such object");
            };
            format!("boot program {}: {} bytes", program.name, program.bytes.len())
        }
        None => String::from("no such object"),
    }
}

/// STD_STATUS's text.
pub fn status(server: &ProcessServer, core: &Core) -> String {
    format!(
        "{}; {} segments; {} waits, {} loads, {} owned processes",
        describe(server, core, 0),
        core.segments.list().count(),
        server.waits.len(),
        server.loads.active_count(),
        server.owners.len()
    )
}
