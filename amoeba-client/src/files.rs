//! Whole files on a Bullet server, from anywhere (host or board), streamed in
//! pieces of at most [`BS_IO_MAX`] bytes so that neither end holds more than one
//! piece at a time: a file that fits one piece is created (and committed with the
//! safety flag) by one request; a larger one is reserved at its full size, written
//! piece by piece straight onto the server's disk, and committed with the safety
//! flag. A file is read back the same way, piece by piece. The caller hears of the
//! progress, and when a server has no room, [`why_no_room`] says why with sizes.

use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::{Capability, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::{BS_COMMIT, BS_IO_MAX, BS_SAFETY, bullet, standard};

/// Why a streamed [`put_from`] or [`get_into`] failed: the file server said no (or
/// could not be reached), or the caller's own source or sink failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError<E> {
    /// The server's answer (or the transport's failure).
    Server(Status),
    /// What the source or the sink reported.
    Local(E),
}

impl<E> From<Status> for StreamError<E> {
    fn from(status: Status) -> Self {
        StreamError::Server(status)
    }
}

impl<E: fmt::Display> fmt::Display for StreamError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Server(status) => write!(f, "{status}"),
            StreamError::Local(error) => write!(f, "{error}"),
        }
    }
}

/// Where the pieces of a file come from: lent from a slice, or read into a buffer.
trait Pieces {
    type Error;
    /// The `len` bytes at `offset` (asked for in order).
    fn piece(&mut self, offset: u64, len: usize) -> Result<&[u8], Self::Error>;
}

/// A file in memory: its pieces are lent, not copied.
struct Slice<'a>(&'a [u8]);

impl Pieces for Slice<'_> {
    type Error = core::convert::Infallible;
    fn piece(&mut self, offset: u64, len: usize) -> Result<&[u8], Self::Error> {
        Ok(&self.0[offset as usize..offset as usize + len])
    }
}

/// A file read from a source, one piece at a time into one buffer.
struct Filled<F> {
    fill: F,
    buffer: Vec<u8>,
}

impl<E, F: FnMut(&mut [u8]) -> Result<(), E>> Pieces for Filled<F> {
    type Error = E;
    fn piece(&mut self, _: u64, len: usize) -> Result<&[u8], E> {
        let piece = &mut self.buffer[..len];
        (self.fill)(piece)?;
        Ok(piece)
    }
}

/// Stores `data` as a new committed file on the Bullet server whose super
/// capability is `server`; returns once it is on disk. `progress` hears the bytes
/// sent so far, once per piece.
pub fn put<T: Transport>(
    transport: &mut T,
    server: &Capability,
    data: &[u8],
    progress: impl FnMut(u64),
) -> Result<Capability, Status> {
    put_pieces(transport, server, data.len() as u64, Slice(data), progress).map_err(|error| match error {
        StreamError::Server(status) => status,
        StreamError::Local(never) => match never {},
    })
}

/// Stores a file of `size` bytes whose contents `fill` provides, in order, one
/// piece (at most [`BS_IO_MAX`] bytes) at a time; returns once it is on disk. Only
/// one piece is ever in memory, here and on the server. `progress` hears the
/// bytes sent so far, once per piece.
pub fn put_from<T: Transport, E>(
    transport: &mut T,
    server: &Capability,
    size: u64,
    fill: impl FnMut(&mut [u8]) -> Result<(), E>,
    progress: impl FnMut(u64),
) -> Result<Capability, StreamError<E>> {
    let piece = size.min(BS_IO_MAX as u64) as usize;
    let mut buffer = Vec::new();
    buffer.try_reserve_exact(piece).map_err(|_| Status::NoMem)?;
    buffer.resize(piece, 0);
    put_pieces(transport, server, size, Filled { fill, buffer }, progress)
}

fn put_pieces<T: Transport, P: Pieces>(
    transport: &mut T,
    server: &Capability,
    size: u64,
    mut pieces: P,
    mut progress: impl FnMut(u64),
) -> Result<Capability, StreamError<P::Error>> {
    let mut files = bullet::Client::new(&mut *transport);
    if size <= BS_IO_MAX as u64 {
        let data = pieces.piece(0, size as usize).map_err(StreamError::Local)?;
        let file = files.create(server, BS_COMMIT | BS_SAFETY, data)?;
        progress(size);
        return Ok(file);
    }
    let file = files.reserve(server, size)?;
    let written = write_pieces(&mut files, &file, size, &mut pieces, &mut progress)
        .and_then(|()| files.commit(&file, BS_SAFETY).map_err(StreamError::Server));
    if written.is_err() {
        // Give the reserved blocks back now rather than when the file ages out.
        let _ = standard::Client::new(&mut *transport).destroy(&file);
    }
    written.map(|()| file)
}

fn write_pieces<T: Transport, P: Pieces>(
    files: &mut bullet::Client<T>,
    file: &Capability,
    size: u64,
    pieces: &mut P,
    progress: &mut impl FnMut(u64),
) -> Result<(), StreamError<P::Error>> {
    let mut sent = 0;
    while sent < size {
        let len = (size - sent).min(BS_IO_MAX as u64) as usize;
        let piece = pieces.piece(sent, len).map_err(StreamError::Local)?;
        files.write(file, sent, piece)?;
        sent += len as u64;
        progress(sent);
    }
    Ok(())
}

/// Reads a whole file into memory (`NoMem` if this side has no room for it);
/// `progress` hears the bytes read so far.
pub fn get<T: Transport>(
    transport: &mut T,
    file: &Capability,
    mut progress: impl FnMut(u64),
) -> Result<Vec<u8>, Status> {
    let size = bullet::Client::new(&mut *transport).size(file)?;
    let mut data = Vec::new();
    data.try_reserve_exact(usize::try_from(size).map_err(|_| Status::NoMem)?).map_err(|_| Status::NoMem)?;
    let read = get_into(
        transport,
        file,
        |piece| {
            data.extend_from_slice(piece);
            Ok::<(), core::convert::Infallible>(())
        },
        &mut progress,
    );
    match read {
        Ok(_) => Ok(data),
        Err(StreamError::Server(status)) => Err(status),
        Err(StreamError::Local(never)) => match never {},
    }
}

/// Reads a whole file piece by piece, handing each to `sink` in order; only one
/// piece is in memory at a time. Returns the file's size; `progress` hears the
/// bytes read so far.
pub fn get_into<T: Transport, E>(
    transport: &mut T,
    file: &Capability,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    mut progress: impl FnMut(u64),
) -> Result<u64, StreamError<E>> {
    let mut files = bullet::Client::new(transport);
    let size = files.size(file)?;
    let mut done = 0;
    while done < size {
        let want = (size - done).min(BS_IO_MAX as u64) as u32;
        let piece = files.read(file, done, want)?;
        if piece.is_empty() || piece.len() > want as usize {
            return Err(StreamError::Server(Status::SysErr)); // the file ended before its size
        }
        sink(&piece).map_err(StreamError::Local)?;
        done += piece.len() as u64;
        progress(done);
    }
    Ok(size)
}

/// Why a Bullet server has no room for a new file, in sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// Not one free block.
    DiskFull,
    /// The file is longer than the longest run of blocks the server can make
    /// (after compacting), `largest` bytes.
    TooLarge {
        /// The file's size.
        size: u64,
        /// The largest file the server would take now.
        largest: u64,
    },
    /// The file is longer than any the server takes, `limit` bytes.
    AboveLimit {
        /// The file's size.
        size: u64,
        /// The largest file the server takes at all.
        limit: u64,
    },
    /// The server holds as many files as it can.
    TooManyFiles {
        /// How many that is.
        max: u64,
    },
    /// There is room now: space came free since the refusal.
    RoomNow,
}

/// Why the server whose super capability is `server` could not take a file of
/// `size` bytes (after it answered `NoSpace` or `Overflow`), from its stats.
pub fn why_no_room<T: Transport>(
    transport: &mut T,
    server: &Capability,
    size: u64,
) -> Result<NoRoom, Status> {
    let stats = bullet::Client::new(transport).stats(server)?;
    Ok(if size > stats.max_file_size {
        NoRoom::AboveLimit { size, limit: stats.max_file_size }
    } else if stats.files + stats.uncommitted >= stats.max_files {
        NoRoom::TooManyFiles { max: stats.max_files }
    } else if stats.largest_file == 0 && size > 0 {
        NoRoom::DiskFull
    } else if size > stats.largest_file {
        NoRoom::TooLarge { size, largest: stats.largest_file }
    } else {
        NoRoom::RoomNow
    })
}

/// `bytes` for people: `512 B`, `1.5 KiB`, `200 MiB`, `1.2 GiB`.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, scale) in UNITS {
            if self.0 >= scale {
                let tenths = (self.0 * 10 + scale / 2) / scale;
                return if tenths.is_multiple_of(10) {
                    write!(f, "{} {unit}", tenths / 10)
                } else {
                    write!(f, "{}.{} {unit}", tenths / 10, tenths % 10)
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl fmt::Display for NoRoom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NoRoom::DiskFull => f.write_str("disk full"),
            NoRoom::TooLarge { size, largest } => {
                write!(f, "file too large: {}, the largest free run is {}", Size(size), Size(largest))
            }
            NoRoom::AboveLimit { size, limit } => {
                write!(f, "file too large: {}, the file server takes files up to {}", Size(size), Size(limit))
            }
            NoRoom::TooManyFiles { max } => {
                write!(f, "the file server holds as many files as it can ({max})")
            }
            NoRoom::RoomNow => f.write_str("no room at the time; there is room now, try again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn sizes_read_as_people_write_them() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1536, "1.5 KiB"),
            (200 << 20, "200 MiB"),
            ((180 << 20) + (300 << 10), "180.3 MiB"),
            (1 << 30, "1 GiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(Size(bytes).to_string(), text);
        }
        let too_large = NoRoom::TooLarge { size: 200 << 20, largest: 180 << 20 };
        assert_eq!(too_large.to_string(), "file too large: 200 MiB, the largest free run is 180 MiB");
        assert_eq!(NoRoom::DiskFull.to_string(), "disk full");
    }
}
