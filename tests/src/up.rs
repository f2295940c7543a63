//! `boot up` as a user runs it, for the pool tests that drive the whole
//! system through the command line: one harness that starts `boot up` in a
//! run directory of its own (optionally in a network namespace, as a part of
//! a pool across hosts), waits until it says the system is up, and runs
//! `boot COMMAND --run-dir RUN_DIR ...` against it, as other terminals would.
//! The tests that need it used to carry a copy each.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long `boot up` may take on a loaded machine, unless told.
const UP_TIMEOUT: Duration = Duration::from_secs(240);

/// The line `boot up` prints once the system serves.
const SYSTEM_UP: &str = "system up";

/// The `boot` program `just build` makes.
pub fn boot_program() -> PathBuf {
    let path = qemu_pool::boot_program();
    assert!(path.is_file(), "{} is not built; run the tests with `just test`", path.display());
    path
}

/// A command's standard output and error, as a person reads them.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// How to start `boot up`: its arguments, where, and how long it may take.
pub struct Starting {
    args: Vec<String>,
    run_dir: Option<tempfile::TempDir>,
    namespace: Option<String>,
    timeout: Duration,
}

impl Starting {
    /// Up to `timeout` until the system is up (four minutes unless told).
    pub fn timeout(mut self, timeout: Duration) -> Starting {
        self.timeout = timeout;
        self
    }

    /// In `run_dir` rather than a fresh one (a second `up` on a disk kept).
    pub fn in_run_dir(mut self, run_dir: tempfile::TempDir) -> Starting {
        self.run_dir = Some(run_dir);
        self
    }

    /// In the network namespace `namespace` (`ip netns exec`), as one host of
    /// several; its commands run there too.
    pub fn in_namespace(mut self, namespace: &str) -> Starting {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Starts `boot up ARGS --run-dir RUN_DIR` and waits until it says the
    /// system is up; panics with what it printed if it ends or times out first.
    pub fn start(self) -> Up {
        let run_dir = match self.run_dir {
            Some(run_dir) => run_dir,
            None => tempfile::Builder::new().prefix("up-").tempdir_in("/tmp").unwrap(),
        };
        let mut command = in_namespace(self.namespace.as_deref());
        let mut child = command
            .arg("up")
            .args(&self.args)
            .arg("--run-dir")
            .arg(run_dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // A thread keeps reading its output, so that it never blocks on a full pipe.
        let output = Arc::new(Mutex::new(Vec::new()));
        let (lines, seen) = (BufReader::new(child.stdout.take().unwrap()).lines(), output.clone());
        let (up_sender, up) = channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let system_up = line.starts_with(SYSTEM_UP);
                seen.lock().unwrap().push(line);
                if system_up {
                    let _ = up_sender.send(());
                }
            }
        });
        let up_process = Up { namespace: self.namespace, child, run_dir, output };
        match up.recv_timeout(self.timeout) {
            Ok(()) => up_process,
            Err(RecvTimeoutError::Disconnected) => panic!("boot up ended:\n{}", up_process.output()),
            Err(RecvTimeoutError::Timeout) => {
                panic!("the system did not come up within {:?}:\n{}", self.timeout, up_process.output())
            }
        }
    }
}

/// `boot`, or `ip netns exec NAMESPACE boot`.
fn in_namespace(namespace: Option<&str>) -> Command {
    match namespace {
        Some(namespace) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", namespace]).arg(boot_program());
            command
        }
        None => Command::new(boot_program()),
    }
}

/// `boot up` running in its own run directory; killed when dropped (its
/// boards die with it).
pub struct Up {
    namespace: Option<String>,
    child: Child,
    run_dir: tempfile::TempDir,
    output: Arc<Mutex<Vec<String>>>,
}

impl Up {
    /// `boot up BOARDS --fresh-disk`, waited for until the system is up.
    pub fn start(boards: u16) -> Up {
        Up::fresh(boards).start()
    }

    /// `boot up BOARDS --fresh-disk`, to adjust and then [`Starting::start`];
    /// bringing the servers up on many boards under emulation takes minutes.
    pub fn fresh(boards: u16) -> Starting {
        Up::with_args(&[&boards.to_string(), "--fresh-disk"])
            .timeout(UP_TIMEOUT + Duration::from_secs(10) * u32::from(boards))
    }

    /// `boot up ARGS`, to adjust and then [`Starting::start`].
    pub fn with_args(args: &[&str]) -> Starting {
        Starting {
            args: args.iter().map(|a| a.to_string()).collect(),
            run_dir: None,
            namespace: None,
            timeout: UP_TIMEOUT,
        }
    }

    /// Its run directory.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The file `name` in its run directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.run_dir().join(name)
    }

    /// The network namespace it runs in (empty: the machine's own).
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }

    /// Every line `boot up` printed so far.
    pub fn output_lines(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// What `boot up` printed so far.
    pub fn output(&self) -> String {
        self.output_lines().join("\n")
    }

    /// `boot COMMAND --run-dir RUN_DIR REST` (in its namespace), to adjust.
    pub fn boot(&self, args: &[&str]) -> Command {
        let (first, rest) = args.split_first().expect("a command");
        let mut command = in_namespace(self.namespace.as_deref());
        command.arg(first).arg("--run-dir").arg(self.run_dir()).args(rest);
        command
    }

    /// Runs `boot COMMAND --run-dir RUN_DIR REST`; its output and status.
    pub fn command(&self, args: &[&str]) -> Output {
        self.boot(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Like [`Up::command`], and it must succeed; its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args);
        assert!(output.status.success(), "boot {args:?} failed: {}", text(&output));
        text(&output)
    }

    /// Repeats `args` until `done` holds for its output (at most `timeout`).
    pub fn until(&self, args: &[&str], timeout: Duration, done: impl Fn(&Output) -> bool) -> Output {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.command(args);
            if done(&output) {
                return output;
            }
            assert!(Instant::now() < deadline, "boot {args:?} never did: {}", text(&output));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every board's console.
    pub fn consoles(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.run_dir()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "console") {
                all.push_str(&String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap_or_default()));
            }
        }
        all
    }

    /// Stops the pool (as `boot down` does) and keeps its run directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let down = self.command(&["down"]);
        assert!(down.status.success(), "boot down failed: {}", text(&down));
        let _ = self.child.wait();
        let empty = tempfile::Builder::new().prefix("up-gone-").tempdir_in("/tmp").unwrap();
        std::mem::replace(&mut self.run_dir, empty)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- boot up {} ---\n{}", self.namespace(), self.output());
            eprintln!("=== consoles ===\n{}", self.consoles());
        }
    }
}
