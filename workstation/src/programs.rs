//! `ax`: run a program where the run server puts it (or on a board of the
//! user's choice) as a session that owns it, the way `ssh` or Plan 9's `cpu`
//! does: its standard input, output and error are this terminal (a TTY object
//! the host serves), Ctrl-C interrupts it (a second Ctrl-C, or a program that
//! does not end within [`GRACE`], kills it) and `ax` then exits 130, and its
//! board ends it by itself once this terminal stops answering (its owner, see
//! `process_server::set_owner`), so a killed `ax` or a lost host leaves nothing
//! running. `--detach` instead gives the program a log that `up` keeps, so it
//! never waits for anyone to read its output. Errors are told in the user's
//! words.

use super::Workstation;
use amoeba_abi::syscall::{EXIT_DESTROYED, EXIT_SIGNAL_BASE};
use amoeba_abi::{Capability, Status};
use amoeba_client::exec::{Exec, ExecError, Party, Program, exec_placed};
use amoeba_ipc::interfaces::process::SIGNAL_INTERRUPT;
use amoeba_ipc::interfaces::{TTY_WRITE_RIGHT, process_server, standard, tty};
use anyhow::Result;
use host_station::rpc_client::RpcClient;
use host_station::tty_server::{Input, Sink};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long an interrupted program has to end before `ax` kills it.
pub const GRACE: Duration = Duration::from_secs(3);

/// The exit status of `ax` (like a shell's) after the user interrupted it.
pub const INTERRUPTED_STATUS: i32 = 130;

/// How often `ax` looks for the user's Ctrl-C while the program runs.
const POLL: Duration = Duration::from_millis(50);

/// How long `ax` waits for a killed program's board to confirm its end.
const KILL_CONFIRM: Duration = Duration::from_secs(5);

/// How `ax` runs a program.
#[derive(Clone, Debug, Default)]
pub struct AxOptions {
    /// Run it on this board instead of where the run server chooses.
    pub on: Option<u16>,
    /// Print the process capability and return at once; the output goes to a log.
    pub detach: bool,
}

/// The user's interrupts (Ctrl-C, or SIGTERM / SIGHUP to `ax`), counted by a
/// signal handler the caller installs (`ctrlc`); `ax` reads the count.
#[derive(Clone, Debug, Default)]
pub struct Interrupts(Arc<AtomicUsize>);

impl Interrupts {
    /// A count of none yet.
    pub fn new() -> Interrupts {
        Interrupts::default()
    }

    /// One more interrupt (call it from the signal handler).
    pub fn raise(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// How many so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a failed exec means to the user: an error names the party that could
/// not be reached (the run server, the file server holding the program, or the
/// processor chosen for it).
fn explain(program: &str, error: &ExecError) -> anyhow::Error {
    let unreachable = matches!(error.status, Status::RpcNotFound | Status::RpcFailure | Status::RpcTryAgain);
    let text = match (error.party, error.status) {
        (Party::RunServer, _) if unreachable => {
            String::from("the run server is not reachable (is the pool up? see `just status`)")
        }
        (Party::RunServer, Status::NoSpace) => format!("no processor has room for {program}"),
        (Party::RunServer, Status::NotFound) => String::from("no processor is answering"),
        (Party::FileServer, _) if unreachable => {
            format!("the file server holding {program}'s file is not reachable")
        }
        (Party::FileServer, Status::CapBad | Status::NotFound) => {
            format!("no such program: {program} (its file is gone from the file server)")
        }
        (_, Status::Denied) => format!("not allowed to run {program} with these capabilities"),
        (Party::Processor, _) if unreachable => {
            format!("the processor chosen for {program} stopped answering")
        }
        (_, status) => format!("{}: {status}", error.step),
    };
    anyhow::anyhow!("ax {program}: {text}")
}

/// What ended a session: the program's status, or the user's interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The program ended with this status.
    Exited(i32),
    /// The user interrupted it and it ended of that (or was killed): `ax`
    /// exits [`INTERRUPTED_STATUS`].
    Interrupted,
}

impl Ending {
    /// `ax`'s own exit status.
    pub fn status(self) -> i32 {
        match self {
            Ending::Exited(status) => status,
            Ending::Interrupted => INTERRUPTED_STATUS,
        }
    }
}

/// Whether a program interrupted by the user ended of it: by the interrupt
/// signal it did not catch, or killed. A program that caught the interrupt and
/// ended with a status of its own passes that status on, as in a shell.
pub fn ended_by_interrupt(status: i32) -> bool {
    status == EXIT_SIGNAL_BASE - SIGNAL_INTERRUPT as i32 || status == EXIT_DESTROYED
}

impl Workstation {
    /// The file of program `name`: `/bin/NAME`, or the path itself when it
    /// has a `/`.
    pub fn program_file(&mut self, name: &str) -> Result<Capability> {
        let path = if name.contains('/') { String::from(name) } else { format!("/bin/{name}") };
        let root = self.root()?;
        // Only a name the directory does not hold is "no such program"; a
        // directory that does not answer says so.
        pool_system::names::resolve(self.rpc(), &root, &path).map_err(|status| match status {
            Status::NotFound => anyhow::anyhow!("ax {name}: no such program: {path} (see `just ls /bin`)"),
            other => anyhow::anyhow!("ax {name}: {:#}", crate::files::explain_lookup(&path, other)),
        })
    }

    /// Starts `argv[0]` with `exec`'s environment, on `options.on` or where
    /// the run server puts it: where it runs (`board<N>`) and its capability.
    fn start(&mut self, argv: &[String], exec: &Exec, options: &AxOptions) -> Result<(String, Capability)> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let file = self.program_file(program)?;
        match options.on {
            Some(board) => {
                let host = self.host_capability(board)?;
                let process = amoeba_client::exec::exec(self.rpc(), &host, Program::File(file), exec)
                    .map_err(|e| explain(program, &e))?;
                Ok((format!("board{board}"), process))
            }
            None => {
                let run = self.capability("run").ok_or_else(|| {
                    anyhow::anyhow!(
                        "ax {program}: the pool has no run server (start the system with `just up`)"
                    )
                })?;
                exec_placed(self.rpc(), &run, &file, exec).map_err(|e| explain(program, &e))
            }
        }
    }

    /// The environment every `ax` program gets: argv, ROOT and WORK.
    fn ax_exec(&self, program: &str, words: &[&str]) -> Exec {
        let mut exec = Exec::new(program, words);
        if let Some(root) = self.capability("root") {
            exec = exec.with_capability("ROOT", root).with_capability("WORK", root);
        }
        exec
    }

    /// `ax` without interrupts: the program's exit status (`None` when detached).
    pub fn ax(&mut self, argv: &[String], options: &AxOptions) -> Result<Option<i32>> {
        Ok(self.ax_session(argv, options, &Interrupts::new())?.map(Ending::status))
    }

    /// `ax`: runs `argv[0]` with `argv` as a session (see the module's note);
    /// its ending (`None` when detached). `interrupts` counts the user's Ctrl-C.
    pub fn ax_session(
        &mut self,
        argv: &[String],
        options: &AxOptions,
        interrupts: &Interrupts,
    ) -> Result<Option<Ending>> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        if options.detach {
            self.ax_detached(argv, options)?;
            return Ok(None);
        }
        let terminal = self.tty()?.terminal_with_input(Sink::Stdout { prefix: String::new() }, Input::Stdin);
        let exec = self
            .ax_exec(program, &words)
            .with_capability("STDIN", terminal.capability)
            .with_capability("STDOUT", terminal.capability)
            .with_capability("STDERR", terminal.capability);
        let (host, process) = self.start(argv, &exec, options)?;
        // From here on the program is ours to end: on any error, and once
        // this terminal stops answering its board.
        let owned = process_server::Client::new(self.rpc()).set_owner(&process, &Some(terminal.capability));
        if let Err(status) = owned {
            let _ = standard::Client::new(self.rpc()).destroy(&process);
            anyhow::bail!(
                "ax {program}: its processor on {host} did not take this session as its owner ({status})"
            );
        }
        let ending = self.supervise(program, &host, &process, interrupts);
        if ending.is_err() {
            let _ = standard::Client::new(self.rpc()).destroy(&process);
        }
        ending.map(Some)
    }

    /// Waits for the program to end, interrupting it on the user's first
    /// Ctrl-C and killing it on the second or after [`GRACE`].
    fn supervise(
        &mut self,
        program: &str,
        host: &str,
        process: &Capability,
        interrupts: &Interrupts,
    ) -> Result<Ending> {
        // The wait has a client of its own: this one signals meanwhile.
        let mut waiter = RpcClient::new(self.new_port()?);
        let (sender, ended) = mpsc::channel();
        let waited = *process;
        std::thread::Builder::new().name("ax-wait".into()).spawn(move || {
            let _ = sender.send(process_server::Client::new(&mut waiter).wait(&waited));
        })?;
        let mut interrupted_at: Option<Instant> = None;
        let mut killed_at: Option<Instant> = None;
        loop {
            match ended.recv_timeout(POLL) {
                Ok(Ok(status)) => {
                    return Ok(match interrupted_at {
                        Some(_) if ended_by_interrupt(status) => Ending::Interrupted,
                        _ => Ending::Exited(status),
                    });
                }
                Ok(Err(status)) if killed_at.is_some() => {
                    let _ = status; // killed: its board may have forgotten it meanwhile
                    return Ok(Ending::Interrupted);
                }
                Ok(Err(status)) => anyhow::bail!("ax {program}: lost the process on {host} ({status})"),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("ax {program}: lost the process on {host}")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let count = interrupts.count();
            if count >= 1 && interrupted_at.is_none() {
                interrupted_at = Some(Instant::now());
                // A program that has just ended cannot take it: its wait says so.
                let _ = process_server::Client::new(self.rpc()).signal(process, SIGNAL_INTERRUPT);
            }
            let overdue = interrupted_at.is_some_and(|at| at.elapsed() >= GRACE);
            if (count >= 2 || overdue) && killed_at.is_none() {
                killed_at = Some(Instant::now());
                let _ = standard::Client::new(self.rpc()).destroy(process);
            }
            if killed_at.is_some_and(|at| at.elapsed() >= KILL_CONFIRM) {
                // Its board does not answer: it ends the program itself once
                // this terminal is gone.
                return Ok(Ending::Interrupted);
            }
        }
    }

    /// `ax --detach`: the program's output goes to a log `up` keeps
    /// (`just log`), named `PROGRAM.board<N>.<pid>`; it has no input.
    fn ax_detached(&mut self, argv: &[String], options: &AxOptions) -> Result<()> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let logs = self.capability("logs").ok_or_else(|| {
            anyhow::anyhow!("ax --detach {program}: the pool keeps no logs (start it again with `just up`)")
        })?;
        let base = program.rsplit('/').next().unwrap_or(program);
        let log_name: String = base
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
            .collect();
        let log = tty::Client::new(self.rpc()).open_log(&logs, &log_name).map_err(|status| {
            anyhow::anyhow!("ax --detach {program}: `up` could not open a log ({status})")
        })?;
        let output = log.restrict(TTY_WRITE_RIGHT).unwrap_or(log);
        let exec =
            self.ax_exec(program, &words).with_capability("STDOUT", output).with_capability("STDERR", output);
        let (host, process) = self.start(argv, &exec, options)?;
        let name = format!("{log_name}.{host}.{}", process.object);
        if let Err(status) = tty::Client::new(self.rpc()).name_log(&log, &name) {
            eprintln!("ax: naming its log {name}: {status}");
        }
        println!("{program}: process {} on {host}, capability {process}", process.object);
        println!("its output: just log {host}/{}", process.object);
        Ok(())
    }
}
