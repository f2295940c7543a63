//! Whole files on a Bullet server, from anywhere (host or board): a file of any
//! size up to the server's limit is created in pieces of at most
//! [`BS_IO_MAX`] bytes (uncommitted until the last, which commits it with the
//! safety flag) and read back the same way. The caller hears of the progress.

use alloc::vec::Vec;

use crate::interface::Transport;
use crate::interfaces::{BS_COMMIT, BS_IO_MAX, BS_SAFETY, bullet};
use crate::{Capability, Status};

/// Stores `data` as a new committed file on the Bullet server whose super
/// capability is `server`; returns once it is on disk. `progress` hears the
/// bytes sent so far.
pub fn put<T: Transport>(
    transport: &mut T,
    server: &Capability,
    data: &[u8],
    mut progress: impl FnMut(u64),
) -> Result<Capability, Status> {
    let mut files = bullet::Client::new(transport);
    let mut pieces = data.chunks(BS_IO_MAX);
    let first = pieces.next().unwrap_or(&[]);
    let last_piece = data.len() <= BS_IO_MAX;
    let commit = if last_piece { BS_COMMIT | BS_SAFETY } else { 0 };
    let file = files.create(server, commit, first)?;
    let mut sent = first.len() as u64;
    progress(sent);
    let count = pieces.len();
    for (index, piece) in pieces.enumerate() {
        let flags = if index + 1 == count { BS_COMMIT | BS_SAFETY } else { 0 };
        // An uncommitted file grows in place: the same capability comes back.
        files.modify(&file, sent, flags, piece)?;
        sent += piece.len() as u64;
        progress(sent);
    }
    Ok(file)
}

/// Reads a whole file; `progress` hears the bytes read so far.
pub fn get<T: Transport>(
    transport: &mut T,
    file: &Capability,
    mut progress: impl FnMut(u64),
) -> Result<Vec<u8>, Status> {
    let mut files = bullet::Client::new(transport);
    let size = files.size(file)?;
    let mut data = Vec::with_capacity(size as usize);
    while (data.len() as u64) < size {
        let want = (size - data.len() as u64).min(BS_IO_MAX as u64) as u32;
        let piece = files.read(file, data.len() as u64, want)?;
        if piece.is_empty() {
            return Err(Status::SysErr); // the file ended before its size
        }
        data.extend_from_slice(&piece);
        progress(data.len() as u64);
    }
    Ok(data)
}
