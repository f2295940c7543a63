//! Boards under QEMU: the pool of boards a host runs (its switch, its boards'
//! images, disks, secrets and consoles), one board's QEMU, and starting
//! programs on the boards through their process servers. The pool tests use it
//! to boot real boards; `pool-system` brings the system up on it.
//!
//! Also where the workspace's build products are (the nucleus, the programs).

pub mod board;
pub mod exec;
pub mod image;
pub mod pool;

pub use board::BoardSpec;
pub use pool::{Pool, PoolConfig};

use std::path::PathBuf;

/// Creates (anew) a file only its owner may read: board secrets, capabilities.
pub fn create_private_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("boot/ has a parent").to_path_buf()
}

/// The workspace's cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// Where `cargo build -p nucleus --release --target aarch64-unknown-none` puts the nucleus.
pub fn default_nucleus() -> PathBuf {
    target_dir().join("aarch64-unknown-none/release/nucleus")
}

/// Where `just build` puts the host program `boot`.
pub fn boot_program() -> PathBuf {
    target_dir().join("release/boot")
}

/// The servers' programs, which live with their crates (`<crate>/program/`)
/// and are built with the `programs` crate.
pub const SERVER_PROGRAMS: [&str; 4] = ["boot-server", "bullet-server", "directory-server", "run-server"];

/// The user programs the pool's bundle carries: every binary of the
/// `programs` crate (its own and the servers'), as built by `just build`.
pub fn default_programs() -> Vec<(String, PathBuf)> {
    let dir = default_nucleus().parent().expect("target directory").to_path_buf();
    let Ok(entries) = std::fs::read_dir(workspace_root().join("programs/src/bin")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(String::from))
        .chain(SERVER_PROGRAMS.iter().map(|name| String::from(*name)))
        .collect();
    names.sort();
    names.into_iter().map(|name| (name.clone(), dir.join(name))).collect()
}

/// Builds the nucleus with cargo (a no-op when it is up to date).
pub fn build_nucleus() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "--quiet", "--release", "-p", "nucleus", "--target", "aarch64-unknown-none"])
        .status()
        .map_err(|e| anyhow::anyhow!("running cargo to build the nucleus: {e}"))?;
    if !status.success() {
        anyhow::bail!("building the nucleus failed ({status})");
    }
    Ok(default_nucleus())
}
