//! Standard output, without heap allocation (signal handlers and the panic
//! handler may print): to the process's STDOUT capability when its capability
//! environment has one (a TTY object, e.g. the terminal of the user who started
//! it), line by line by RPC; else, and if that fails, to the board's console
//! through the `console_write` system call.

use super::rpc::Nucleus;
use super::{env, sys};
use amoeba_ipc::interfaces::tty;
use core::fmt::{self, Write};

/// Longest output that goes out in one system call; longer output is split
/// into several writes of this size.
pub const LINE_MAX: usize = 512;

/// A formatter that collects output in a fixed buffer on the stack and
/// writes it when full and when flushed (also on drop).
pub struct Console {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Console {
    /// An empty buffer.
    pub const fn new() -> Console {
        Console { buf: [0; LINE_MAX], len: 0 }
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        // The stub borrows the buffer and expects no reply buffer: no allocation.
        if let Some(stdout) = env::capability("STDOUT")
            && tty::Client::new(Nucleus).write(&stdout, &self.buf[..self.len]).is_ok()
        {
            self.len = 0;
            return;
        }
        let mut done = 0;
        while done < self.len {
            match sys::console_write(&self.buf[done..self.len]) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        self.len = 0;
    }

    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == LINE_MAX {
                self.flush();
            }
            let n = bytes.len().min(LINE_MAX - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

impl Default for Console {
    fn default() -> Console {
        Console::new()
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Writes raw bytes to the console (one system call if they fit).
pub fn write_bytes(bytes: &[u8]) {
    let mut console = Console::new();
    console.push(bytes);
}

/// Formats and prints (used by [`print!`](crate::print)).
pub fn print(args: fmt::Arguments) {
    let mut console = Console::new();
    let _ = console.write_fmt(args);
}

/// Formats and prints a line (used by [`println!`](crate::println)).
pub fn print_line(args: fmt::Arguments) {
    let mut console = Console::new();
    let _ = console.write_fmt(args);
    console.push(b"\n");
}
