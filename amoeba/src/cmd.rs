//! Command numbers, grouped per server as in Amoeba.
//!
//! Standard commands (every server) start at 1000 in Amoeba's order; Bullet from 2000,
//! run server from 3000 (the directory service's are declared in
//! `interfaces::directory`). The per-server numbers within a
//! group are this system's own.

/// First standard command.
pub const STD_FIRST_COM: u32 = 1000;
/// Age: decrement the lifetime of every object; destroy those that reach zero.
/// Needs the server's super capability (object 0) with all rights.
pub const STD_AGE: u32 = STD_FIRST_COM;
/// Copy an object (possibly to another server).
pub const STD_COPY: u32 = STD_FIRST_COM + 1;
/// Destroy an object (needs the delete right).
pub const STD_DESTROY: u32 = STD_FIRST_COM + 2;
/// Describe an object: reply buffer is a short text.
pub const STD_INFO: u32 = STD_FIRST_COM + 3;
/// Restrict a capability: `extra` (low 8 bits) is the rights mask; the reply's
/// `port` + `private` is the new capability.
pub const STD_RESTRICT: u32 = STD_FIRST_COM + 4;
/// Server status text.
pub const STD_STATUS: u32 = STD_FIRST_COM + 5;
/// Touch: reset the object's lifetime.
pub const STD_TOUCH: u32 = STD_FIRST_COM + 6;
/// Get server parameters.
pub const STD_GETPARAMS: u32 = STD_FIRST_COM + 7;
/// Set server parameters.
pub const STD_SETPARAMS: u32 = STD_FIRST_COM + 8;
/// Last standard command number.
pub const STD_LAST_COM: u32 = STD_SETPARAMS;

/// First Bullet server command.
pub const BULLET_FIRST_COM: u32 = 2000;
/// Create a file from the request buffer (flags in `extra`: [`BS_COMMIT`], [`BS_SAFETY`]).
pub const BS_CREATE: u32 = BULLET_FIRST_COM;
/// Read `size` bytes at `offset`.
pub const BS_READ: u32 = BULLET_FIRST_COM + 1;
/// Size of a file.
pub const BS_SIZE: u32 = BULLET_FIRST_COM + 2;
/// Modify: new (uncommitted) file with bytes replaced at `offset`.
pub const BS_MODIFY: u32 = BULLET_FIRST_COM + 3;
/// Insert: new (uncommitted) file with bytes inserted at `offset`.
pub const BS_INSERT: u32 = BULLET_FIRST_COM + 4;
/// Delete: new (uncommitted) file with `size` bytes removed at `offset`.
pub const BS_DELETE: u32 = BULLET_FIRST_COM + 5;
/// Write everything committed to disk.
pub const BS_SYNC: u32 = BULLET_FIRST_COM + 6;
/// Bullet flag: commit (make the file immutable and final).
pub const BS_COMMIT: u32 = 0x1;
/// Bullet flag: safety (commit only once on disk).
pub const BS_SAFETY: u32 = 0x2;

/// First run server command.
pub const RUN_FIRST_COM: u32 = 3000;
/// Get an execution (process server) capability for a new process.
pub const RUN_GET_EXEC_CAP: u32 = RUN_FIRST_COM;
/// Find the best host for a program.
pub const RUN_FIND_HOST: u32 = RUN_FIRST_COM + 1;
/// Create a pool directory.
pub const RUN_CREATE_POOLDIR: u32 = RUN_FIRST_COM + 2;

/// First process server command (each board's nucleus serves its processes).
pub const PS_FIRST_COM: u32 = 3100;
/// Process server: freeze every thread (needs the stun right).
pub const PS_STUN: u32 = PS_FIRST_COM;
/// Process server: let a stunned process run again (needs the stun right).
pub const PS_RESUME: u32 = PS_FIRST_COM + 1;
/// Process server: raise signal `extra` in the process (needs the signal right).
pub const PS_SIGNAL: u32 = PS_FIRST_COM + 2;

/// Is `c` a standard command?
pub fn is_std(c: u32) -> bool {
    (STD_FIRST_COM..=STD_LAST_COM).contains(&c)
}
