//! A terminal as an object: where a process's standard output goes when its
//! capability environment has STDOUT. The host serves one per program it starts, so
//! the output comes back to the user's terminal.

use amoeba_abi::Rights;

/// TTY right: write output.
pub const TTY_WRITE_RIGHT: Rights = Rights::MODIFY;

crate::interface! {
    /// Terminal output.
    pub mod tty {
        /// Write bytes to the terminal.
        fn write as TTY_WRITE = 3300, object(TTY_WRITE_RIGHT) (data: bytes) -> ();
    }
}
