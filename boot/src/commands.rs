//! The workstation's commands on a running pool (`ax`, `ps`, `log`, `top`,
//! `run`, `rpc`, ...): each connects through the capabilities file `up` saved.

use crate::cli::*;
use amoeba_ipc::interfaces::echo;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use workstation::{Action, Workstation};
use workstation::{AxOptions, Interrupts};

/// Runs a workstation command that prints a text.
pub(crate) fn workstation(
    run_dir: &Path,
    command: impl FnOnce(&mut Workstation) -> Result<String>,
) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    print!("{}", command(&mut ws)?);
    Ok(())
}

pub(crate) fn control_process(run_dir: &Path, process: &workstation::Target, action: Action) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    workstation::stop_or_resume(&mut ws, process, action, false).map(|text| print!("{text}"))
}

/// `ax`: the program's ending is ax's exit status (130 after Ctrl-C). The
/// Ctrl-C handler (also SIGTERM and SIGHUP) only counts; `ax` acts on the count.
pub(crate) fn ax(run_dir: &Path, argv: &[String], on: Option<u16>, detach: bool) -> Result<()> {
    let interrupts = Interrupts::new();
    let counter = interrupts.clone();
    ctrlc::set_handler(move || counter.raise()).context("installing the Ctrl-C handler")?;
    let mut ws = Workstation::connect(run_dir)?;
    if let Some(ending) = ws.ax_session(argv, &AxOptions { on, detach }, &interrupts)? {
        std::process::exit(ending.status());
    }
    Ok(())
}

/// `log`: a detached program's output, followed until Ctrl-C with `--follow`.
pub(crate) fn log(run_dir: &Path, process: &workstation::Target, follow: bool) -> Result<()> {
    let path = workstation::log_file(run_dir, process)?;
    let stop = Arc::new(AtomicBool::new(false));
    if follow {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    workstation::print_log(&path, &mut std::io::stdout().lock(), follow, &|| stop.load(Ordering::SeqCst))
}

/// `top`: the live view, or one view as text.
pub(crate) fn top(run_dir: &Path, once: bool) -> Result<()> {
    let mut ws = Workstation::connect(run_dir)?;
    if once {
        let snapshot = workstation::top::gather(&mut ws);
        print!("{}", workstation::top::text(&snapshot, 100));
        return Ok(());
    }
    workstation::top::run(&mut ws)
}

pub(crate) fn run_program(
    board: u16,
    program: &str,
    argument: u64,
    run_to_completion: bool,
    detach: bool,
    run_dir: &Path,
) -> Result<()> {
    let mut workstation = workstation::Workstation::connect(run_dir)?;
    let mut exec = amoeba_client::exec::Exec::new(program, &[program]);
    exec.argument = argument;
    if run_to_completion {
        exec.scheduling = amoeba_abi::syscall::SCHED_RUN_TO_COMPLETION;
    }
    let status = workstation.run(board, program, exec, detach)?;
    if let Some(status) = status {
        println!("{program} exited with status {status}");
        if status != 0 {
            std::process::exit(1);
        }
    }
    Ok(())
}

pub(crate) fn rpc(call: RpcCall, run_dir: &Path) -> Result<()> {
    let port = host_station::HostPort::connect(&run_dir.join("host.sock"))
        .with_context(|| format!("no pool is running in {} (start one with `just up`)", run_dir.display()))?;
    let mut client = host_station::rpc_client::RpcClient::new(port);
    match call {
        RpcCall::Info { capability } => match client.std_info(&capability) {
            Ok(info) => println!("{info}"),
            Err(status) => bail!("std_info failed: {status}"),
        },
        RpcCall::Echo { port, text } => {
            let start = Instant::now();
            let service = amoeba_abi::Capability::for_port(port);
            match echo::Client::new(&mut client).echo(&service, text.as_bytes()) {
                Ok((_, buf)) => println!(
                    "reply ({:.2} ms): {}",
                    start.elapsed().as_secs_f64() * 1e3,
                    String::from_utf8_lossy(&buf)
                ),
                Err(status) => bail!("trans failed: {status}"),
            }
        }
    }
    Ok(())
}
