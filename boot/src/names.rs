//! Paths in the directory service, from a root directory, over any transport:
//! what `up` uses to make `/bin` and `/hosts`, and the workstation commands
//! use for `ls`, `mkdir`, `put`, ... Errors are statuses; the commands put them
//! into words.

use amoeba::interface::Transport;
use amoeba::interfaces::directory::{NewRow, Replacement, column_right, soap, walk};
use amoeba::interfaces::standard;
use amoeba::{Capability, Rights, Status};

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
    walk(transport, root, inner)?.first().copied().ok_or(Status::NotFound)
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

/// Makes `name` in `parent` name `object`: a new row, or the old row's set
/// swapped atomically; the capabilities the old row held, for the caller to
/// destroy or keep.
pub fn enter<T: Transport>(
    transport: &mut T,
    parent: &Capability,
    name: &str,
    object: Capability,
) -> Result<Vec<Capability>, Status> {
    let row = NewRow { name: String::from(name), caps: vec![object], masks: default_masks() };
    match soap::Client::new(&mut *transport).append(parent, &row) {
        Err(Status::Exists) => {}
        other => return other.map(|()| Vec::new()),
    }
    let old = walk(transport, parent, name)?;
    let swap = Replacement { name: String::from(name), expect: old.clone(), caps: vec![object] };
    soap::Client::new(transport).replace(parent, &swap)?;
    Ok(old)
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
