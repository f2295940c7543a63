//! Kernel console on the PL011: `print!`/`println!`.

use crate::board;
use crate::drivers::pl011::Pl011;
use crate::sync::IrqMutex;
use core::fmt::{self, Write};

// SAFETY: the UART is mapped as device memory by the boot translation table
// and the console is its only user.
static CONSOLE: IrqMutex<Pl011> = IrqMutex::new(unsafe { Pl011::new(board::phys_to_virt(board::UART_BASE)) });

pub fn init() {
    CONSOLE.lock().init();
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Writes raw bytes (user output) in one piece.
pub fn write_bytes(bytes: &[u8]) {
    let console = CONSOLE.lock();
    for &byte in bytes {
        if byte == b'\n' {
            console.write_byte(b'\r');
        }
        console.write_byte(byte);
    }
}

/// A writer for fatal reports that does not wait for the console lock (the
/// failing code may hold it).
pub fn emergency_writer() -> Pl011 {
    // SAFETY: the board is about to stop; interleaving with a half-written
    // line is acceptable, deadlocking on the lock is not.
    unsafe { Pl011::new(board::phys_to_virt(board::UART_BASE)) }
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}
