//! The directory model's value types — names, paths, capability sets, rights
//! columns — with their limits, so every other module validates the same way.

use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Rights, Status};

pub use amoeba_ipc::interfaces::directory::{
    COLUMN_RIGHTS, MAX_BATCH, RIGHT_DELETE, RIGHT_MODIFY, SP_MAXCOLUMNS, column_right,
};

/// Longest row name, in bytes (Amoeba's limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest column name, in bytes.
pub const MAX_COLUMN_NAME_LEN: usize = 32;
/// Most capabilities in one capability set.
pub const MAX_CAPSET: usize = 8;
/// Longest path handed to a lookup, in bytes.
pub const MAX_PATH_LEN: usize = 4096;

/// What the holder of a directory capability with `rights` sees of a row whose
/// column masks are `masks`: the union of the masks of the columns it holds.
pub fn visible_mask(rights: Rights, masks: &[Rights]) -> Rights {
    masks
        .iter()
        .enumerate()
        .filter(|(c, _)| rights.contains(column_right(*c)))
        .fold(Rights::NONE, |a, (_, m)| a | *m)
}

/// Does this capability hold any column right (i.e. may it read rows)?
pub fn may_read(rights: Rights) -> bool {
    rights.0 & COLUMN_RIGHTS.0 != 0
}

/// Is `name` acceptable as a row name: 1..=255 bytes, no `/` and no NUL, and not
/// `.` or `..` (paths use them)?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == 0)
}

/// Is `name` acceptable as a column name: 1..=32 bytes, no NUL?
pub fn valid_column_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_COLUMN_NAME_LEN && !name.bytes().any(|b| b == 0)
}

/// Is this a valid capability set (1..=[`MAX_CAPSET`] capabilities)?
pub fn valid_capset(caps: &[Capability]) -> bool {
    !caps.is_empty() && caps.len() <= MAX_CAPSET
}

/// Is this a valid list of column names (1..=4 valid, distinct names)?
pub fn valid_columns(columns: &[String]) -> bool {
    (1..=SP_MAXCOLUMNS).contains(&columns.len())
        && columns.iter().all(|c| valid_column_name(c))
        && columns.iter().enumerate().all(|(i, c)| !columns[..i].contains(c))
}

/// The components of a path: split on `/`, empty components and `.` skipped.
/// `..` is refused (directories have no parent links).
pub fn path_components(path: &str) -> Result<Vec<&str>, Status> {
    if path.len() > MAX_PATH_LEN {
        return Err(Status::ArgBad);
    }
    let mut out = Vec::new();
    for part in path.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if !valid_name(part) {
            return Err(Status::ArgBad);
        }
        out.push(part);
    }
    Ok(out)
}

/// One row of a directory: a capability set and one rights mask per column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    /// The capabilities (copies of one object, e.g. on several servers).
    pub caps: Vec<Capability>,
    /// One mask per column of the directory.
    pub masks: Vec<Rights>,
}
