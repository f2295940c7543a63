//! `ax`: run a program where the run server puts it (or on a board of the
//! user's choice), with its output in this terminal and its exit status as
//! `ax`'s own. Errors are told in the user's words.

use super::Workstation;
use amoeba_abi::{Capability, Status};
use amoeba_client::exec::{Exec, ExecError, Party, Program, exec_placed};
use amoeba_ipc::interfaces::process_server;
use anyhow::Result;

/// How `ax` runs a program.
#[derive(Clone, Debug, Default)]
pub struct AxOptions {
    /// Run it on this board instead of where the run server chooses.
    pub on: Option<u16>,
    /// Print the process capability and return at once.
    pub detach: bool,
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

impl Workstation {
    /// The file of program `name`: `/bin/NAME`, or the path itself when it
    /// has a `/`.
    pub fn program_file(&mut self, name: &str) -> Result<Capability> {
        let path = if name.contains('/') { String::from(name) } else { format!("/bin/{name}") };
        self.resolve(&path)
            .map_err(|_| anyhow::anyhow!("ax {name}: no such program: {path} (see `just ls /bin`)"))
    }

    /// `ax`: runs `argv[0]` with `argv`; its exit status (`None` when detached).
    pub fn ax(&mut self, argv: &[String], options: &AxOptions) -> Result<Option<i32>> {
        let program = argv.first().map(String::as_str).unwrap_or_default();
        let file = self.program_file(program)?;
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let terminal = self.terminal()?;
        let mut exec = Exec::new(program, &words)
            .with_capability("STDOUT", terminal.capability)
            .with_capability("STDERR", terminal.capability);
        if let Some(root) = self.capability("root") {
            exec = exec.with_capability("ROOT", root).with_capability("WORK", root);
        }
        let (host, process) = match options.on {
            Some(board) => {
                let host = self.host_capability(board)?;
                let process = amoeba_client::exec::exec(self.rpc(), &host, Program::File(file), &exec)
                    .map_err(|e| explain(program, &e))?;
                (format!("board{board}"), process)
            }
            None => {
                let run = self.capability("run").ok_or_else(|| {
                    anyhow::anyhow!(
                        "ax {program}: the pool has no run server (start the system with `just up`)"
                    )
                })?;
                exec_placed(self.rpc(), &run, &file, &exec).map_err(|e| explain(program, &e))?
            }
        };
        if options.detach {
            println!("{program}: process {} on {host}, capability {process}", process.object);
            return Ok(None);
        }
        let status = process_server::Client::new(self.rpc())
            .wait(&process)
            .map_err(|status| anyhow::anyhow!("ax {program}: lost the process on {host} ({status})"))?;
        Ok(Some(status))
    }
}
