//! What an exception taken to EL1 looks like on AArch64: the trap frame
//! `vectors.s` saves, which vector slot it came through, the syndrome and
//! fault address registers, and the full report of an unexpected one. What
//! to do about it is the trap entry point's business (`crate::trap`).

use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable};
use core::fmt;

/// Register state saved by `vectors.s`; the layout must match it exactly.
/// Only this module names the registers; the rest of the nucleus uses the
/// accessors (system call number and arguments, program counter, ...).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TrapFrame {
    x: [u64; 31],
    sp_el0: u64,
    elr: u64,
    spsr: u64,
    fpsr: u64,
    fpcr: u64,
    q: [u128; 32],
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 800);

/// System call arguments travel in x0..x5.
pub use nucleus::call_types::SYSCALL_ARGS;
/// Below the interrupted stack pointer, the room a signal handler's frame
/// starts under (the interrupted code's red zone is left alone).
const SIGNAL_STACK_GAP: u64 = 512;
/// The stack pointer's alignment at EL0.
const STACK_ALIGN: u64 = 16;

impl TrapFrame {
    /// The state that enters EL0 at `entry` with stack pointer `sp`,
    /// interrupts unmasked, and `args` in x0..x3.
    pub fn for_user_entry(entry: u64, sp: u64, args: [u64; 4]) -> Self {
        let mut x = [0; 31];
        x[..4].copy_from_slice(&args);
        // SPSR 0: EL0t with every exception unmasked.
        Self { x, sp_el0: sp, elr: entry, spsr: 0, fpsr: 0, fpcr: 0, q: [0; 32] }
    }

    /// The system call number (x8).
    pub fn syscall_number(&self) -> u64 {
        self.x[8]
    }

    /// The system call arguments (x0..x5).
    pub fn syscall_args(&self) -> [u64; SYSCALL_ARGS] {
        let mut args = [0; SYSCALL_ARGS];
        args.copy_from_slice(&self.x[..SYSCALL_ARGS]);
        args
    }

    /// Sets the system call result (x0).
    pub fn set_syscall_result(&mut self, value: u64) {
        self.x[0] = value;
    }

    /// The syscall result register (x0): what a restored frame returns.
    pub fn syscall_result(&self) -> u64 {
        self.x[0]
    }

    /// Where EL0 resumes (ELR).
    pub fn pc(&self) -> u64 {
        self.elr
    }

    /// Diverts EL0 into a signal handler: `handler(signal)` on a stack
    /// below the interrupted one.
    pub fn enter_signal_handler(&mut self, handler: u64, signal: u32) {
        self.elr = handler;
        self.x[0] = signal as u64;
        self.sp_el0 = self.sp_el0.wrapping_sub(SIGNAL_STACK_GAP) & !(STACK_ALIGN - 1);
    }
}

/// Where an exception came from and what kind it is (the vector table slot).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ExceptionKind(u64);

impl ExceptionKind {
    const SOURCES: [&'static str; 4] =
        ["current EL with SP0", "current EL with SPx", "lower EL (AArch64)", "lower EL (AArch32)"];
    const TYPES: [&'static str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

    /// The kind of the vector table slot `vectors.s` passes (0..16).
    pub fn from_slot(slot: u64) -> Self {
        Self(slot)
    }

    pub fn is_irq(self) -> bool {
        self.0 % 4 == 1
    }

    pub fn is_synchronous(self) -> bool {
        self.0.is_multiple_of(4)
    }

    /// Taken from EL0 (a user process).
    pub fn is_from_user(self) -> bool {
        self.0 >= 8
    }
}

impl fmt::Display for ExceptionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = Self::SOURCES[(self.0 / 4) as usize % 4];
        let kind = Self::TYPES[(self.0 % 4) as usize];
        write!(f, "{kind} exception from {source}")
    }
}

/// Decoded exception syndrome register (ESR_EL1).
pub struct Syndrome(pub u64);

/// Exception class of an SVC from AArch64.
const CLASS_SVC64: u64 = 0x15;

impl Syndrome {
    /// The syndrome of the exception being handled (ESR_EL1).
    pub fn read() -> Self {
        Self(ESR_EL1.get())
    }

    /// A system call (`svc`) from EL0.
    pub fn is_svc(&self) -> bool {
        self.class() == CLASS_SVC64
    }

    fn class(&self) -> u64 {
        (self.0 >> 26) & 0x3f
    }

    fn iss(&self) -> u64 {
        self.0 & 0x1ff_ffff
    }

    fn class_name(&self) -> &'static str {
        match self.class() {
            0x00 => "unknown reason",
            0x01 => "trapped WFI/WFE",
            0x07 => "FP/SIMD access trapped",
            0x0e => "illegal execution state",
            CLASS_SVC64 => "SVC from AArch64",
            0x18 => "trapped system register access",
            0x20 => "instruction abort from a lower EL",
            0x21 => "instruction abort from the same EL",
            0x22 => "PC alignment fault",
            0x24 => "data abort from a lower EL",
            0x25 => "data abort from the same EL",
            0x26 => "SP alignment fault",
            0x2c => "trapped floating-point exception",
            0x2f => "SError",
            0x30 | 0x31 => "breakpoint",
            0x32 | 0x33 => "software step",
            0x34 | 0x35 => "watchpoint",
            0x3c => "BRK instruction",
            _ => "other",
        }
    }

    fn is_abort(&self) -> bool {
        matches!(self.class(), 0x20 | 0x21 | 0x24 | 0x25)
    }

    fn fault_status_name(&self) -> &'static str {
        let status = self.iss() & 0x3f;
        match status {
            0x00..=0x03 => "address size fault",
            0x04..=0x07 => "translation fault",
            0x09..=0x0b => "access flag fault",
            0x0d..=0x0f => "permission fault",
            0x10 => "synchronous external abort",
            0x21 => "alignment fault",
            0x30 => "TLB conflict",
            _ => "other fault",
        }
    }
}

impl Syndrome {
    /// One line for a user process fault report.
    pub fn short(&self) -> ShortSyndrome<'_> {
        ShortSyndrome(self)
    }
}

pub struct ShortSyndrome<'a>(&'a Syndrome);

impl fmt::Display for ShortSyndrome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let syndrome = self.0;
        write!(f, "{}", syndrome.class_name())?;
        if syndrome.is_abort() {
            write!(f, ", {}", syndrome.fault_status_name())?;
            if syndrome.class() == 0x24 {
                let access = if syndrome.iss() & (1 << 6) != 0 { "write" } else { "read" };
                write!(f, " on {access}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ESR {:#010x}: EC {:#04x} ({}), IL {}, ISS {:#09x}",
            self.0,
            self.class(),
            self.class_name(),
            (self.0 >> 25) & 1,
            self.iss()
        )?;
        if self.is_abort() {
            let level = self.iss() & 0x3;
            write!(f, "; {} at level {level}", self.fault_status_name())?;
            if matches!(self.class(), 0x24 | 0x25) {
                let access = if self.iss() & (1 << 6) != 0 { "write" } else { "read" };
                write!(f, " on {access}")?;
            }
        }
        Ok(())
    }
}

/// The faulting address of an abort being handled (FAR_EL1).
pub fn fault_address() -> u64 {
    FAR_EL1.get()
}

/// The full report of an unexpected exception: kind, syndrome, fault
/// address, and every register of `frame`.
pub fn write_report(out: &mut impl fmt::Write, frame: &TrapFrame, kind: ExceptionKind) -> fmt::Result {
    let syndrome = Syndrome::read();
    let far = fault_address();
    writeln!(out, "\n*** nucleus: unexpected {kind}")?;
    writeln!(out, "    {syndrome}")?;
    writeln!(
        out,
        "    FAR {far:#018x}  ELR {:#018x}  SPSR {:#010x}  SP_EL0 {:#018x}",
        frame.elr, frame.spsr, frame.sp_el0
    )?;
    for row in frame.x.chunks(4).enumerate() {
        write!(out, "   ")?;
        for (col, value) in row.1.iter().enumerate() {
            write!(out, " x{:<2} {value:#018x}", row.0 * 4 + col)?;
        }
        writeln!(out)?;
    }
    Ok(())
}
