//! The commands people type, as they type them: `boot up` brings the whole
//! system up in a run directory, and `boot ax`, `ps`, `hosts`, `kill` work
//! on it from other processes, with the programs' output in their own
//! standard output and the programs' exit status as theirs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `boot` program `just build` makes.
fn boot_program() -> PathBuf {
    let path = boot::boot_program();
    assert!(path.is_file(), "{} is not built; run the tests with `just test`", path.display());
    path
}

/// `boot up` running in its own run directory; stopped when dropped.
struct Up {
    child: Child,
    run_dir: tempfile::TempDir,
    output: Vec<String>,
}

impl Up {
    /// Starts `boot up BOARDS` and waits until it says the system is up.
    fn start(boards: u16, fresh_disk: bool) -> Up {
        let run_dir = tempfile::Builder::new().prefix("up-").tempdir_in("/tmp").unwrap();
        Up::start_in(run_dir, boards, fresh_disk)
    }

    fn start_in(run_dir: tempfile::TempDir, boards: u16, fresh_disk: bool) -> Up {
        let mut command = Command::new(boot_program());
        command.args(["up", &boards.to_string(), "--run-dir"]).arg(run_dir.path());
        if fresh_disk {
            command.arg("--fresh-disk");
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let mut output = Vec::new();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let line =
                lines.next().unwrap_or_else(|| panic!("boot up ended:\n{}", output.join("\n"))).unwrap();
            output.push(line.clone());
            if line.starts_with("system up") {
                break;
            }
            assert!(Instant::now() < deadline, "the system did not come up:\n{}", output.join("\n"));
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Up { child, run_dir, output }
    }

    fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// Runs `boot ARGS --run-dir RUN_DIR`.
    fn command(&self, args: &[&str]) -> Output {
        let (first, rest) = args.split_first().unwrap();
        Command::new(boot_program())
            .arg(first)
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(rest)
            .output()
            .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn ax_runs_a_program_where_the_run_server_puts_it_with_its_output_and_status_here() {
    let up = Up::start(4, true);
    assert!(up.output.iter().any(|l| l.contains("Bullet server on board 0")), "{}", up.output.join("\n"));
    let hello = up.command(&["ax", "hello", "world", "again"]);
    assert_eq!(hello.status.code(), Some(7), "{}", text(&hello));
    let out = String::from_utf8_lossy(&hello.stdout);
    assert!(out.contains("hello from the pool") && out.contains("hello: world again"), "{out}");

    let on_two = up.command(&["ax", "--on", "2", "show-env", "x"]);
    assert_eq!(on_two.status.code(), Some(42), "{}", text(&on_two));
    assert!(String::from_utf8_lossy(&on_two.stdout).contains("show-env: argv x"));

    let missing = up.command(&["ax", "no-such-program"]);
    assert!(!missing.status.success());
    assert!(text(&missing).contains("no such program"), "{}", text(&missing));

    // ps shows the servers; hosts shows every processor alive.
    let ps = text(&up.command(&["ps"]));
    assert!(ps.contains("bullet-server") && ps.contains("run-server"), "{ps}");
    let hosts = text(&up.command(&["hosts"]));
    assert_eq!(hosts.lines().filter(|l| l.starts_with("board") && l.contains(" yes ")).count(), 4, "{hosts}");

    // A detached program shows in ps and ends by name.
    let detached = up.command(&["ax", "--detach", "ticker"]);
    assert!(detached.status.success(), "{}", text(&detached));
    assert!(text(&up.command(&["ps"])).contains("ticker"));
    let kill = up.command(&["kill", "ticker"]);
    assert!(kill.status.success(), "{}", text(&kill));
    assert!(!text(&up.command(&["ps"])).contains("ticker"), "the ticker still runs");
    let again = up.command(&["kill", "ticker"]);
    assert!(text(&again).contains("no process runs ticker"), "{}", text(&again));
}
