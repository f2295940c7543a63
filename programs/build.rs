//! Links the programs for the nucleus with `user.ld` (text, rodata and data
//! each on their own pages at 0x0040_0000, entry `_start`). Host builds are
//! stubs and link normally.
//!
//! Debug info is stripped at link time (symbols stay) to keep the boards'
//! bundles small; drop `--strip-debug` below to debug a program with GDB.
fn main() {
    println!("cargo:rerun-if-changed=user.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/user.ld");
        // Keep the symbols but not the DWARF (over a megabyte per program)
        // out of the bundle every board loads.
        println!("cargo:rustc-link-arg-bins=--strip-debug");
        // Pages are 4 KiB: no 64 KiB padding between segments in the file.
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
