//! `boot`: start a pool of nucleus boards on a virtual Ethernet and act as
//! the user's workstation on it.

mod benches;
mod cli;
mod commands;
mod demos;
mod running;

use benches::*;
use clap::Parser;
use cli::*;
use commands::*;
use demos::*;
use running::*;
use workstation::Action;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { boards, pool, faults, seed, fresh_disk, part } => {
            up(boards, &pool, &faults, seed, fresh_disk, &part)
        }
        Command::Down { run_dir } => control(&run_dir, "down").map(|reply| print!("{reply}")),
        Command::Status { run_dir } => control(&run_dir, "status").map(|reply| print!("{reply}")),
        Command::RestartBoard { board, run_dir } => {
            control(&run_dir, &format!("restart-board {board}")).map(|reply| print!("{reply}"))
        }
        Command::Services { run_dir } => workstation(&run_dir, workstation::services),
        Command::Fault { spec, run_dir } => {
            control(&run_dir, &format!("fault {}", spec.join(" "))).map(|reply| print!("{reply}"))
        }
        Command::Ping { boards, pool } => ping(boards, &pool),
        Command::Bench { instructions: true, pool, .. } => instructions_bench(&pool),
        Command::Bench { rounds, boot_sizes, group_sizes, only, pool, instructions: false } => match only {
            Some(BenchSection::Group) => group_bench(&group_sizes, &pool),
            Some(BenchSection::Rpc) => rpc_bench(&pool),
            Some(BenchSection::Idle) => idle_bench(&pool),
            Some(BenchSection::Processes) => processes_bench(&pool),
            Some(BenchSection::Bullet) => bullet_bench(&pool),
            Some(BenchSection::Directory) => directory_bench(&pool),
            Some(BenchSection::System) => system_bench(),
            None => bench(rounds, &boot_sizes, &pool)
                .and_then(|()| group_bench(&group_sizes, &pool))
                .and_then(|()| system_benches(&pool)),
        },
        Command::Gdb { board, pool } => gdb(board, &pool),
        Command::Rpc { call, run_dir } => rpc(call, &run_dir),
        Command::Run { board, program, argument, run_to_completion, detach, run_dir } => {
            run_program(board, &program, argument, run_to_completion, detach, &run_dir)
        }
        Command::Ax { on, detach, run_dir, argv } => ax(&run_dir, &argv, on, detach),
        Command::Ls { path, run_dir } => workstation(&run_dir, |ws| ws.ls(&path)),
        Command::Mkdir { path, run_dir } => {
            workstation(&run_dir, |ws| ws.mkdir(&path).map(|_| String::new()))
        }
        Command::Rm { path, run_dir } => workstation(&run_dir, |ws| ws.rm(&path).map(|()| String::new())),
        Command::Chmod { path, masks, run_dir } => {
            workstation(&run_dir, |ws| ws.chmod(&path, masks.0).map(|()| String::new()))
        }
        Command::Put { local, path, run_dir } => workstation(&run_dir, |ws| {
            ws.put_file(&local, &path).map(|size| format!("{size} bytes stored as {path}\n"))
        }),
        Command::Get { path, local, run_dir } => {
            workstation(&run_dir, |ws| ws.get_to(&path, local.as_deref()).map(|_| String::new()))
        }
        Command::Info { path, run_dir } => {
            workstation(&run_dir, |ws| ws.info(&path).map(|i| format!("{i}\n")))
        }
        Command::Ps { all, run_dir } => workstation(&run_dir, |ws| workstation::ps(ws, all)),
        Command::Stun { process, run_dir } => control_process(&run_dir, &process, Action::Stun),
        Command::Resume { process, run_dir } => control_process(&run_dir, &process, Action::Resume),
        Command::Kill { process, all, run_dir } => {
            workstation(&run_dir, |ws| workstation::stop_or_resume(ws, &process, Action::Kill, all))
        }
        Command::Log { process, follow, run_dir } => log(&run_dir, &process, follow),
        Command::Top { once, run_dir } => top(&run_dir, once),
        Command::Hosts { run_dir } => workstation(&run_dir, workstation::hosts),
        Command::RpcDemo { pool } => rpc_demo(&pool),
        Command::GroupDemo { pool } => group_demo(&pool),
        Command::ChatDemo { lines, pool } => chat_demo(&pool, lines),
        Command::SequencerCrashDemo { pool } => sequencer_crash_demo(&pool),
    };
    if let Err(error) = result {
        eprintln!("boot: {error:#}");
        std::process::exit(1);
    }
}
