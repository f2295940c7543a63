//! Paths in the directory service, from a root directory, over any transport:
//! what `up` uses to make `/bin` and `/hosts`, and the workstation commands
//! use for `ls`, `mkdir`, `put`, ... Errors are statuses; the commands put them
//! into words.
//!
//! Files are immutable, so `put` of a path makes a new file, swaps it into the
//! path's row, and destroys the old file at once. A reader that looked the path
//! up just before the swap then finds its file gone. Of the two ways out,
//! keeping a replaced file until it ages out (Amoeba's STD_AGE/STD_TOUCH) and
//! looking the path up again, [`read_path`] does the second: when the file it
//! found is gone it looks again, and reads whatever the path names now, until
//! it has read a file that a lookup during its call named. Why this one:
//! - it is linearizable by construction: the bytes returned are those of a file
//!   the path named at a lookup made during the call (files never change), and
//!   "no such path" comes only from a lookup, never from a file gone meanwhile;
//! - the Bullet server ages only uncommitted files; keeping committed ones
//!   would need a new ageing scheme there, a directory that touches every file
//!   its rows name, and disk space held for a whole ageing period after each
//!   `put`, and a reader slower than that period would still fail;
//! - the cost falls on the rare reader that raced a writer: one more lookup.
//!
//! [`enter`] makes a writer's swap safe against other writers: it compares and
//! swaps, and when another writer (or a remover) changed the row between its
//! lookup and its swap it looks again and swaps again, so `put` means "this
//! path names these bytes now", whatever ran at the same time.

use amoeba_abi::{Capability, Rights, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::directory::{NewRow, Replacement, column_right, soap, walk};
use amoeba_ipc::interfaces::standard;

/// The columns of the directories the host makes.
pub const COLUMNS: [&str; 3] = ["owner", "group", "other"];

/// The masks of a new row: the owner may do anything; through the group and
/// other columns a file can be read and a directory walked and listed.
pub fn default_masks() -> Vec<Rights> {
    let group = column_right(1) | column_right(2) | Rights::READ;
    vec![Rights::ALL, group, column_right(2) | Rights::READ]
}

/// A path split into its directory and its last name (`None`: the path names
/// the root, or ends in nothing).
pub fn split(path: &str) -> Option<(&str, &str)> {
    let path = path.trim_end_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    (!name.is_empty()).then_some((dir, name))
}

/// The capability `path` names, walked from `root` (`/` and `` are `root`).
pub fn resolve<T: Transport>(transport: &mut T, root: &Capability, path: &str) -> Result<Capability, Status> {
    let inner = path.trim_matches('/');
    if inner.is_empty() {
        return Ok(*root);
    }
    again(|| walk(transport, root, inner))?.first().copied().ok_or(Status::NotFound)
}

/// How long a call the directory answered with "not now" is asked again.
const NOT_SERVING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// `call`, asked again with growing pauses while the directory answers
/// [`Status::RpcTryAgain`] (its replica did nothing: it has no state yet, no
/// majority, or a read barrier that did not come through under load), for up
/// to ten seconds; then its last answer.
pub fn again<T>(mut call: impl FnMut() -> Result<T, Status>) -> Result<T, Status> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(20);
    loop {
        match call() {
            Err(Status::RpcTryAgain) if started.elapsed() + pause < NOT_SERVING_PATIENCE => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
            answer => return answer,
        }
    }
}

/// A new directory named `name` in `parent`; its owner capability.
pub fn make_directory<T: Transport>(
    transport: &mut T,
    parent: &Capability,
    name: &str,
) -> Result<Capability, Status> {
    let columns: Vec<String> = COLUMNS.iter().map(|c| String::from(*c)).collect();
    let mut soap = soap::Client::new(transport);
    let dir = soap.create(parent, &columns)?;
    let row = NewRow { name: String::from(name), caps: vec![dir], masks: default_masks() };
    if let Err(status) = soap.append(parent, &row) {
        let _ = soap.discard(&dir);
        return Err(status);
    }
    Ok(dir)
}

/// The directory `name` in `parent`, made if it is not there.
pub fn ensure_directory<T: Transport>(
    transport: &mut T,
    parent: &Capability,
    name: &str,
) -> Result<Capability, Status> {
    match resolve(transport, parent, name) {
        Ok(dir) => Ok(dir),
        Err(Status::NotFound) => make_directory(transport, parent, name),
        Err(status) => Err(status),
    }
}

/// Rounds of look-up-and-try [`enter`] and [`read_path`] make before they give
/// up on a row that others keep changing (each round is a few RPCs; with
/// writers that need a round each, this many in a row does not happen).
const ROUNDS: usize = 64;

/// Makes `name` in `parent` name `object`: a new row, or the old row's set
/// swapped atomically (compare and swap, again while others change the row
/// meanwhile); the capabilities the old row held, for the caller to destroy or
/// keep. `NotNow` only if the row changed under it [`ROUNDS`] times in a row.
pub fn enter<T: Transport>(
    transport: &mut T,
    parent: &Capability,
    name: &str,
    object: Capability,
) -> Result<Vec<Capability>, Status> {
    let row = NewRow { name: String::from(name), caps: vec![object], masks: default_masks() };
    let mut refused: Option<Vec<Capability>> = None;
    for _ in 0..ROUNDS {
        match soap::Client::new(&mut *transport).append(parent, &row) {
            Err(Status::Exists) => {}
            other => return other.map(|()| Vec::new()),
        }
        let old = match walk(transport, parent, name) {
            // Removed since the append found it: append again.
            Err(Status::NotFound) => continue,
            other => other?,
        };
        // Refused twice for the same row: it did not change, the swap is not allowed.
        if refused.as_ref() == Some(&old) {
            return Err(Status::NotNow);
        }
        let swap = Replacement { name: String::from(name), expect: old.clone(), caps: vec![object] };
        match soap::Client::new(&mut *transport).replace(parent, &swap) {
            // Changed since the lookup: look again.
            Err(Status::NotNow) => refused = Some(old),
            // Removed since the lookup: append again.
            Err(Status::NotFound) => {}
            other => return other.map(|()| old),
        }
    }
    Err(Status::NotNow)
}

/// Why [`read_path`] could not read what a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError<E> {
    /// Walking the path failed (the directory service's status).
    Name(Status),
    /// Reading the object failed.
    Read(E),
    /// The path still names an object that is gone (from its server).
    Gone,
    /// The path named another object each time it was read, [`ROUNDS`] times.
    KeptChanging,
}

/// Reads what `path` (from `root`) names with `read`, as one linearizable read:
/// when `read` finds the object gone (`is_gone`: the file was replaced or removed
/// after the lookup), the path is looked up again and what it names now is read,
/// until a read succeeds, the path names nothing (`Name(NotFound)`), or it still
/// names the object that is gone ([`PathError::Gone`]). A lookup that fails in
/// the middle (its replica died) is made again. See the module's note.
pub fn read_path<T: Transport, R, E>(
    transport: &mut T,
    root: &Capability,
    path: &str,
    mut read: impl FnMut(&mut T, &Capability) -> Result<R, E>,
    is_gone: impl Fn(&E) -> bool,
) -> Result<R, PathError<E>> {
    let mut gone: Option<Capability> = None;
    for _ in 0..ROUNDS {
        let object = lookup(transport, root, path).map_err(PathError::Name)?;
        if gone == Some(object) {
            return Err(PathError::Gone);
        }
        match read(transport, &object) {
            Err(error) if is_gone(&error) => gone = Some(object),
            other => return other.map_err(PathError::Read),
        }
    }
    Err(PathError::KeptChanging)
}

/// Tries of a reader's lookup that failed in the middle (the replica it asked
/// died): a lookup changes nothing, so asking again (another replica answers)
/// is safe.
const LOOKUP_TRIES: usize = 3;

/// [`resolve`] for a reader: asked again when the replica answering it died.
fn lookup<T: Transport>(transport: &mut T, root: &Capability, path: &str) -> Result<Capability, Status> {
    let mut tries = 1;
    loop {
        match resolve(transport, root, path) {
            Err(Status::RpcFailure) if tries < LOOKUP_TRIES => tries += 1,
            other => return other,
        }
    }
}

/// Is this a file server's answer for a file that is not there (destroyed)?
pub fn file_gone(status: &Status) -> bool {
    matches!(status, Status::NotFound | Status::CapBad)
}

/// Like [`enter`], destroying the objects the old row named (the old copy of
/// a file that is put again).
pub fn replace_and_destroy<T: Transport>(
    transport: &mut T,
    parent: &Capability,
    name: &str,
    object: Capability,
) -> Result<(), Status> {
    for stale in enter(transport, parent, name, object)? {
        if stale != object {
            let _ = standard::Client::new(&mut *transport).destroy(&stale);
        }
    }
    Ok(())
}
