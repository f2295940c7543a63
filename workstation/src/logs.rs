//! `log`: what a detached program wrote. `ax --detach` gives the program a
//! log of the log server `up` runs (a TTY server whose terminals write files,
//! see `tty_server`), named `PROGRAM.board<N>.<pid>` in the run directory's
//! `logs/`. The host keeps them, not the Bullet server: an append is a write
//! to a local file that never waits for the directory or file server, whereas
//! a Bullet file is immutable and every line would make a new one.

use super::processes::Target;
use anyhow::{Result, bail};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory of the run directory where `up` keeps logs.
pub const LOGS_DIR: &str = "logs";

/// How often `log --follow` looks for more.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The log files whose names `matches` accepts, oldest first.
fn logs_where(dir: &Path, matches: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|name| !name.ends_with(".old") && matches(name)))
        .map(|e| (e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH), e.path()))
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Which log file of the pool in `run_dir` a target names: `board<N>/<pid>`
/// (or the capability of that process), or a program's name when it has one
/// log. Works while the pool is down too.
pub fn log_file(run_dir: &Path, target: &Target) -> Result<PathBuf> {
    let dir = run_dir.join(LOGS_DIR);
    let (board, pid) = match target {
        Target::Pid { board, pid } => (*board, *pid),
        Target::Capability(capability) => {
            let board = super::boards(&super::load_capabilities(run_dir)?)
                .into_iter()
                .find(|(_, host)| host.port == capability.port)
                .map(|(board, _)| board)
                .ok_or_else(|| anyhow::anyhow!("{capability} is no process of this pool"))?;
            (board, capability.object)
        }
        Target::Name(name) => {
            let prefix = format!("{name}.board");
            let found = logs_where(&dir, |file| file.starts_with(&prefix));
            return match found.as_slice() {
                [] => bail!("no log of {name} (logs are kept for programs started with `ax --detach`)"),
                [one] => Ok(one.clone()),
                several => {
                    let names: Vec<String> = several
                        .iter()
                        .filter_map(|p| p.file_name()?.to_str()?.strip_prefix(name)?.strip_prefix('.'))
                        .map(|rest| rest.replacen('.', "/", 1))
                        .collect();
                    bail!("{} logs of {name}: say which ({})", several.len(), names.join(", "))
                }
            };
        }
    };
    let suffix = format!(".board{board}.{pid}");
    logs_where(&dir, |file| file.ends_with(&suffix))
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no log of board{board}/{pid} (was it started with `ax --detach`?)"))
}

/// Copies a log to `out`: the part moved aside when it grew long, then the
/// rest; with `follow`, then what is added, until `stop` says so.
pub fn print_log(path: &Path, out: &mut dyn Write, follow: bool, stop: &dyn Fn() -> bool) -> Result<()> {
    let older =
        path.with_file_name(format!("{}.old", path.file_name().and_then(|n| n.to_str()).unwrap_or("")));
    if let Ok(mut file) = std::fs::File::open(&older) {
        std::io::copy(&mut file, out)?;
    }
    let mut file = std::fs::File::open(path)?;
    let mut at = std::io::copy(&mut file, out)?;
    out.flush()?;
    while follow && !stop() {
        std::thread::sleep(FOLLOW_POLL);
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len < at {
            // Moved aside and begun again: the new file from its start.
            file = std::fs::File::open(path)?;
            at = 0;
        }
        file.seek(std::io::SeekFrom::Start(at))?;
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        at += more.len() as u64;
        out.write_all(&more)?;
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_printed_with_the_part_moved_aside_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hog.board1.4");
        std::fs::write(dir.path().join("hog.board1.4.old"), b"old\n").unwrap();
        std::fs::write(&path, b"new\n").unwrap();
        let mut out = Vec::new();
        print_log(&path, &mut out, false, &|| true).unwrap();
        assert_eq!(out, b"old\nnew\n");
    }

    #[test]
    fn logs_are_found_by_name_but_not_their_older_parts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["hog.board1.4", "hog.board1.4.old", "ticker.board2.9", "hog.board3.1"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let hogs = logs_where(dir.path(), |f| f.starts_with("hog.board"));
        assert_eq!(hogs.len(), 2, "{hogs:?}");
        assert_eq!(logs_where(dir.path(), |f| f.ends_with(".board3.1")).len(), 1);
        assert_eq!(logs_where(dir.path(), |f| f.ends_with(".board2.9")).len(), 1);
    }
}
