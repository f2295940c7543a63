//! The run directory's `capabilities` file: the capabilities `up` saved for
//! the commands and for other parts of the pool, one `NAME CAPABILITY` per
//! line (`board<N>` for the boards' host capabilities; `bullet`, `run`,
//! `boot`, `root` for the servers and the root directory, `logs` for the log
//! server `up` runs). It holds the pool's
//! root capability, so it is written mode 0600 and refused when others may read it.

use amoeba_abi::Capability;
use anyhow::{Context, Result, bail};
use std::path::Path;

/// The file's name in the run directory.
pub const CAPABILITIES_FILE: &str = "capabilities";

/// Writes the run directory's capabilities file, mode 0600.
pub fn save(run_dir: &Path, capabilities: &[(String, Capability)]) -> Result<()> {
    use std::io::Write;
    let mut file = qemu_pool::create_private_file(&run_dir.join(CAPABILITIES_FILE))?;
    for (name, capability) in capabilities {
        writeln!(file, "{name} {capability}")?;
    }
    Ok(())
}

/// Reads a `capabilities` file (`name capability` per line), which must be
/// its owner's alone: it holds the pool's root capability.
pub fn read(path: &Path) -> Result<Vec<(String, Capability)>> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    // SAFETY: geteuid only reads the process's effective user id.
    let me = unsafe { libc::geteuid() };
    if meta.mode() & 0o077 != 0 || meta.uid() != me {
        bail!(
            "{} holds the pool's root capability, so it must be yours and readable by you alone \
             (it is mode {:o}); `chmod 600 {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (name, capability) =
                line.split_once(' ').with_context(|| format!("{}: bad line {line:?}", path.display()))?;
            let capability = capability
                .trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: {name}: {e:?}", path.display()))?;
            Ok((String::from(name), capability))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_rows() -> Vec<(String, Capability)> {
        ["root", "bullet"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let capability = Capability::owner(
                    amoeba_abi::Port([1, 2, 3, 4, 5, 6]),
                    i as u32,
                    amoeba_abi::Check([7; 6]),
                );
                (String::from(*name), capability)
            })
            .collect()
    }

    #[test]
    fn a_capabilities_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("capabilities");
        let text: String = file_rows().iter().map(|(n, c)| format!("{n} {c}\n")).collect();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = read(&path).unwrap_err().to_string();
        assert!(error.contains("readable by you alone") && error.contains("644"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&path).unwrap(), file_rows());
    }
}
