//! Turns the nucleus ELF into the raw arm64 Image QEMU boots (the Linux boot
//! path, so QEMU passes the device tree in x0 and loads an initrd).

use anyhow::{Context, Result, bail};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, elf};
use std::path::Path;

/// Copies every loadable segment to its physical (load) address relative
/// to the lowest one; gaps are zero.
pub fn elf_to_image(elf_bytes: &[u8]) -> Result<Vec<u8>> {
    let file = ElfFile64::<Endianness>::parse(elf_bytes).context("the nucleus is not a 64-bit ELF file")?;
    let endian = file.endian();
    let segments: Vec<_> = file
        .elf_program_headers()
        .iter()
        .filter(|header| header.p_type(endian) == elf::PT_LOAD && header.p_filesz(endian) > 0)
        .collect();
    let Some(base) = segments.iter().map(|h| h.p_paddr(endian)).min() else {
        bail!("the nucleus ELF has no loadable segments");
    };
    let mut image = Vec::new();
    for header in segments {
        let offset = (header.p_paddr(endian) - base) as usize;
        let data = header.data(endian, elf_bytes).map_err(|_| anyhow::anyhow!("truncated ELF segment"))?;
        if image.len() < offset + data.len() {
            image.resize(offset + data.len(), 0);
        }
        image[offset..offset + data.len()].copy_from_slice(data);
    }
    if image.len() < 64 || &image[56..60] != b"ARM\x64" {
        bail!("the nucleus does not start with an arm64 Image header");
    }
    Ok(image)
}

/// Writes the Image for the nucleus at `elf_path` to `image_path`.
pub fn write_image(elf_path: &Path, image_path: &Path) -> Result<()> {
    let elf_bytes = std::fs::read(elf_path).with_context(|| {
        format!("reading the nucleus at {} (build it with `just build`)", elf_path.display())
    })?;
    let image = elf_to_image(&elf_bytes)?;
    std::fs::write(image_path, image).with_context(|| format!("writing {}", image_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused() {
        assert!(elf_to_image(b"not an elf").is_err());
        assert!(elf_to_image(&[]).is_err());
    }
}
