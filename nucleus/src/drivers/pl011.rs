//! PL011 UART, transmit side (the console).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! {
    u32,
    FR [
        TXFF OFFSET(5) NUMBITS(1) [],
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    LCR_H [
        WLEN OFFSET(5) NUMBITS(2) [EightBit = 0b11],
        FEN OFFSET(4) NUMBITS(1) []
    ],
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
}

register_structs! {
    Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

pub struct Pl011 {
    base: usize,
}

// SAFETY: the registers are MMIO owned by this one driver instance; moving
// it to another context (all on one core) keeps that exclusive ownership.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the kernel virtual address of a PL011, mapped as device
    /// memory, and only this driver may use it.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn registers(&self) -> &Registers {
        // SAFETY: `new`'s caller guaranteed `base` points at mapped PL011 registers.
        unsafe { &*(self.base as *const Registers) }
    }

    /// 8N1 with FIFOs; QEMU ignores the baud rate, so it is left alone.
    pub fn init(&self) {
        self.flush();
        self.registers().cr.set(0);
        self.registers().icr.set(0x7ff);
        self.registers().lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
        self.registers().cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    }

    pub fn write_byte(&self, byte: u8) {
        while self.registers().fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.registers().dr.set(byte as u32);
    }

    pub fn flush(&self) {
        while self.registers().fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}

impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(byte);
        }
        Ok(())
    }
}
