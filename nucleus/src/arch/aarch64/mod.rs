//! Architecture code: everything that knows it runs on an AArch64 CPU at EL1.
//! Board-specific addresses live in `crate::board`.

pub mod cache;
pub mod context;
pub mod cpu;
pub mod exception;
pub mod firmware;
pub mod mmu;
pub mod pmu;
pub mod timer;

core::arch::global_asm!(include_str!("boot.s"));
core::arch::global_asm!(include_str!("vectors.s"));
core::arch::global_asm!(include_str!("context.s"));
