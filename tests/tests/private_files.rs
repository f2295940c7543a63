//! Files that hold secrets are private: after `boot up`, nothing in the run
//! directory (initrds with the boards' host capabilities, consoles where servers
//! print theirs, the disk image with the root directory's, the capabilities
//! file, the sockets onto the pool's network, QEMU's debugger sockets) grants
//! any access to group or others, and the directory itself is 0700, even where
//! an earlier run, or the user's umask, left them looser.

use pool_tests::up::Up;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Every entry under `dir` (and `dir` itself), with its permission bits.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out = vec![(dir.display().to_string(), std::fs::symlink_metadata(dir).unwrap().mode() & 0o7777)];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        if meta.is_dir() {
            out.extend(modes(&entry.path()));
        } else {
            out.push((entry.file_name().to_string_lossy().into_owned(), meta.mode() & 0o7777));
        }
    }
    out
}

#[test]
fn nothing_in_the_run_directory_is_readable_by_others_after_up() {
    let run_dir = tempfile::Builder::new().prefix("up-").tempdir_in("/tmp").unwrap();
    // Looser than they must be: a run directory and files an earlier run left.
    std::fs::set_permissions(run_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for stale in ["disk.img", "board0.console", "nucleus.img"] {
        std::fs::write(run_dir.path().join(stale), b"").unwrap();
        std::fs::set_permissions(run_dir.path().join(stale), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let up = Up::fresh(3).in_run_dir(run_dir).start();
    let dir = up.run_dir();
    let deadline = Instant::now() + Duration::from_secs(180);
    // The control socket comes last, once `up` serves commands.
    while !dir.join("control.sock").exists() {
        assert!(Instant::now() < deadline, "no control socket:\n{}", up.output());
        std::thread::sleep(Duration::from_millis(50));
    }

    let found = modes(dir);
    let listing: Vec<String> = found.iter().map(|(name, mode)| format!("{mode:04o} {name}")).collect();
    println!("{}", listing.join("\n"));
    let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "disk.img",
        "capabilities",
        "board0.console",
        "board0.initrd",
        "nucleus.img",
        "bundle.img",
        "host.sock",
        "board0.sock",
        "board0.gdb",
        "control.sock",
    ] {
        assert!(names.contains(&expected), "no {expected} in the run directory:\n{}", listing.join("\n"));
    }
    assert_eq!(found[0].1, 0o700, "the run directory itself");
    let open: Vec<&String> =
        found.iter().zip(&listing).filter(|((_, mode), _)| mode & 0o077 != 0).map(|(_, line)| line).collect();
    assert!(open.is_empty(), "open to group or others: {open:?}");

    up.stop();
}
