//! Standard input: what the user types or pipes into `ax`, read from the
//! STDIN capability of the capability environment (a terminal object, see
//! [`amoeba_ipc::interfaces::tty`]) by RPC. A read waits until input comes; end of
//! input is `Ok(0)` from [`read`] and `Ok(None)` from [`read_line`]. A
//! process started without STDIN is at end of input from the start.
//!
//! ```ignore
//! while let Some(line) = amoeba_rt::stdin::read_line()? {
//!     amoeba_rt::println!("{}", line.to_uppercase());
//! }
//! ```
//!
//! Input is read a chunk at a time into one buffer shared by the process's
//! threads (behind a lock), so byte and line reads may be mixed.

use super::env;
use super::rpc::Nucleus;
use super::sync::Mutex;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::Status;
use amoeba_ipc::interfaces::{TTY_READ_MAX, tty};

/// Bytes asked of the terminal at a time.
const CHUNK: u32 = 4096;
/// Longest line [`read_line`] returns; a longer one comes in pieces of this size.
pub const LINE_MAX: usize = 64 * 1024;

struct Buffer {
    /// Input read and not yet taken, from `start` on.
    bytes: Vec<u8>,
    start: usize,
    /// The terminal said that no more input will come.
    ended: bool,
}

impl Buffer {
    fn pending(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.start;
        self.start += n;
        &self.bytes[start..start + n]
    }

    /// Reads more from the terminal (waiting for it) unless at end of input;
    /// whether anything came.
    fn fill(&mut self) -> Result<bool, Status> {
        if self.ended {
            return Ok(false);
        }
        let Some(stdin) = env::capability("STDIN") else {
            self.ended = true;
            return Ok(false);
        };
        let data = tty::Client::new(Nucleus).read(&stdin, CHUNK.min(TTY_READ_MAX))?;
        if data.is_empty() {
            self.ended = true;
            return Ok(false);
        }
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
        self.bytes.try_reserve(data.len()).map_err(|_| Status::NoMem)?;
        self.bytes.extend_from_slice(&data);
        Ok(true)
    }
}

static BUFFER: Mutex<Buffer> = Mutex::new(Buffer { bytes: Vec::new(), start: 0, ended: false });

/// Reads up to `buf.len()` bytes of input into `buf`, waiting until some
/// come; the number read, 0 at end of input (or for an empty `buf`).
pub fn read(buf: &mut [u8]) -> Result<usize, Status> {
    if buf.is_empty() {
        return Ok(0);
    }
    let mut buffer = BUFFER.lock();
    if buffer.pending().is_empty() && !buffer.fill()? {
        return Ok(0);
    }
    let n = buffer.pending().len().min(buf.len());
    buf[..n].copy_from_slice(buffer.take(n));
    Ok(n)
}

/// The next line of input without its line end (`\n`, or `\r\n`), waiting
/// until it is complete; `None` at end of input. The last line may lack a
/// line end. Bytes that are not UTF-8 become U+FFFD.
pub fn read_line() -> Result<Option<String>, Status> {
    let mut buffer = BUFFER.lock();
    loop {
        let pending = buffer.pending();
        if let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line = buffer.take(end + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(Some(String::from_utf8_lossy(line).into_owned()));
        }
        if pending.len() >= LINE_MAX {
            let line = buffer.take(LINE_MAX);
            return Ok(Some(String::from_utf8_lossy(line).into_owned()));
        }
        if !buffer.fill()? {
            let rest = buffer.pending().len();
            if rest == 0 {
                return Ok(None);
            }
            let line = buffer.take(rest);
            return Ok(Some(String::from_utf8_lossy(line).into_owned()));
        }
    }
}

/// The lines of input, until its end or the first error.
pub fn lines() -> impl Iterator<Item = Result<String, Status>> {
    let mut over = false;
    core::iter::from_fn(move || {
        if over {
            return None;
        }
        let next = read_line().transpose();
        over = !matches!(next, Some(Ok(_)));
        next
    })
}
