//! A terminal as an object: where a process's standard output goes when its
//! capability environment has STDOUT, and where its standard input comes from
//! when it has STDIN. The host serves one per program a user starts (`ax`), so
//! the output comes back to the user's terminal and what the user types or
//! pipes in reaches the program; it also serves logs, terminals whose output
//! goes to a file the user reads later (a detached program's STDOUT).
//!
//! End of input is a read that returns no bytes: a read waits until at least
//! one byte is there, so an empty answer can only mean that no more will come.

use amoeba_abi::Rights;

/// TTY right: write output.
pub const TTY_WRITE_RIGHT: Rights = Rights::MODIFY;
/// TTY right: read input.
pub const TTY_READ_RIGHT: Rights = Rights::READ;
/// TTY server right (on the server's own capability): open logs.
pub const TTY_CREATE_RIGHT: Rights = Rights::CREATE;
/// TTY right: name a log (its owner's).
pub const TTY_NAME_RIGHT: Rights = Rights::DELETE;

/// Most bytes one read returns.
pub const TTY_READ_MAX: u32 = 16 * 1024;

/// Longest name of a log.
pub const TTY_LOG_NAME_MAX: usize = 128;

crate::interface! {
    /// Terminal input and output, and logs.
    pub mod tty {
        /// Write bytes to the terminal.
        fn write as TTY_WRITE = 3300, object(TTY_WRITE_RIGHT) (data: bytes) -> ();
        /// Read up to `size` bytes of input (at most `TTY_READ_MAX`), waiting
        /// until some come; no bytes at all means end of input.
        fn read as TTY_READ = 3301, object(TTY_READ_RIGHT) (size: size<u32>) -> (data: bytes) limit size;
        /// A new log named `name` (letters, digits, `.`, `-`, `_`): a terminal
        /// whose output the server keeps for the user to read later, never
        /// making the writer wait; its owner capability.
        fn open_log as TTY_OPEN_LOG = 3302, server(TTY_CREATE_RIGHT) (name: text) -> (log: cap);
        /// Gives a log a new name (once the program writing it has a process id).
        fn name_log as TTY_NAME_LOG = 3303, object(TTY_NAME_RIGHT) (name: text) -> ();
    }
}

/// Whether `name` may name a log: not empty, at most [`TTY_LOG_NAME_MAX`]
/// bytes of ASCII letters, digits, `.`, `-` and `_`, not starting with `.`
/// (so that it is one plain file name wherever the server keeps logs).
pub fn is_log_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= TTY_LOG_NAME_MAX
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_plain_file_names() {
        assert!(is_log_name("ticker.board2.7"));
        assert!(is_log_name("dir-client_1"));
        for bad in ["", ".hidden", "..", "a/b", "a b", "ä", &"x".repeat(TTY_LOG_NAME_MAX + 1)] {
            assert!(!is_log_name(bad), "{bad:?}");
        }
    }
}
