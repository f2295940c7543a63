//! The SOAP directory service (Amoeba's numbering from 2100): directories are
//! objects whose rows map a name to a capability set, with one rights mask per
//! column (up to [`SP_MAXCOLUMNS`], e.g. owner / group / other). A holder of a
//! directory capability with column `c`'s right sees a row's capabilities
//! restricted to column `c`'s mask (the union, for several columns).
//!
//! Every operation is declared `public()`: the service is replicated, and a
//! replica verifies the capabilities an operation names in its state machine, at
//! the operation's place in the total order. The dispatcher could only check
//! them against the state its own replica has applied so far, which may not yet
//! hold a directory whose creation another replica has already acknowledged.

use crate::interface::Transport;
use alloc::string::String;
use alloc::vec::Vec;
use amoeba_abi::{Capability, Rights, Status};
use serde::{Deserialize, Serialize};

/// Most rights columns of a directory.
pub const SP_MAXCOLUMNS: usize = 4;
/// The rights bits that select columns: bit `c` (0..=3) reads through column `c`.
pub const COLUMN_RIGHTS: Rights = Rights((1 << SP_MAXCOLUMNS) - 1);
/// Directory right: change rows (append, delete, replace, chmod, install).
/// Amoeba's `SP_MODRGT`.
pub const RIGHT_MODIFY: Rights = Rights(0x40);
/// Directory right: discard the directory itself. Amoeba's `SP_DELRGT`.
/// (`STD_DESTROY` also needs the standard delete right, 0x08.)
pub const RIGHT_DELETE: Rights = Rights(0x80);
/// Largest listing a client asks for.
pub const SP_LIST_MAX: usize = 128 * 1024;

/// The right that selects column `c`.
pub const fn column_right(c: usize) -> Rights {
    Rights(1 << c)
}

/// A row to append: its name, capability set and one mask per column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewRow {
    /// Row name (1..=255 bytes, no `/`).
    pub name: String,
    /// The capabilities (copies of one object, e.g. on several servers).
    pub caps: Vec<Capability>,
    /// One mask per column of the directory.
    pub masks: Vec<Rights>,
}

/// New masks for a row.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MaskChange {
    /// Row name.
    pub name: String,
    /// One mask per column.
    pub masks: Vec<Rights>,
}

/// A compare-and-swap of a row's capability set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Replacement {
    /// Row name.
    pub name: String,
    /// The set the caller last saw (as its capability sees it); `NotNow` if the
    /// row no longer holds it.
    pub expect: Vec<Capability>,
    /// The new set.
    pub caps: Vec<Capability>,
}

/// One row written by `SP_INSTALL`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstallEntry {
    /// The directory (needs [`RIGHT_MODIFY`]).
    pub dir: Capability,
    /// Row name.
    pub name: String,
    /// The new capability set.
    pub caps: Vec<Capability>,
    /// The new masks (one per column of the directory).
    pub masks: Vec<Rights>,
    /// `None`: write the row whether it exists or not. `Some(set)`: the row must
    /// exist and hold `set` as this capability would see it, else the whole install
    /// fails with `NotNow`.
    pub expect: Option<Vec<Capability>>,
}

/// One row of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ListedRow {
    /// Row name.
    pub name: String,
    /// Its masks, one per column.
    pub masks: Vec<Rights>,
}

/// A directory's column names and rows (by name).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Listing {
    /// Column names.
    pub columns: Vec<String>,
    /// Every row, sorted by name.
    pub rows: Vec<ListedRow>,
}

/// The answer to a path lookup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lookup {
    /// The last component's capability set, restricted by the columns' masks.
    Found(Vec<Capability>),
    /// A component names a directory of another server: go on there with `rest`.
    Continue {
        /// That directory's capability set (restricted).
        caps: Vec<Capability>,
        /// The path still to walk.
        rest: String,
    },
}

/// Most rows installed by one `SP_INSTALL`, and names looked up by one
/// `SP_SETLOOKUP` (the service refuses more; clients split bigger batches).
pub const MAX_BATCH: usize = 32;

/// A (directory, name) pair of a set lookup.
pub type NameInDirectory = (Capability, String);

/// The outcome of one pair of a set lookup.
pub type SetLookupResult = Result<Vec<Capability>, Status>;

crate::interface! {
    /// Directories.
    pub mod soap {
        /// A new directory with these column names (1..=4), from any capability of
        /// the service; its owner capability.
        fn create as SP_CREATE = 2100, public() (columns: data<Vec<String>>) -> (dir: cap);
        /// Remove the directory, which must be empty (needs [`RIGHT_DELETE`]).
        fn discard as SP_DISCARD = 2101, public() () -> ();
        /// Column names and every row's name and masks (needs a column right).
        fn list as SP_LIST = 2102, public() () -> (listing: data<Listing>) limit SP_LIST_MAX;
        /// Add a row whose name is new (needs [`RIGHT_MODIFY`]).
        fn append as SP_APPEND = 2103, public() (row: data<NewRow>) -> ();
        /// Set a row's column masks (needs [`RIGHT_MODIFY`]).
        fn chmod as SP_CHMOD = 2104, public() (change: data<MaskChange>) -> ();
        /// Remove a row (needs [`RIGHT_MODIFY`]).
        fn delete as SP_DELETE = 2105, public() (name: text) -> ();
        /// Walk `path` (names separated by `/`) from this directory.
        fn lookup as SP_LOOKUP = 2106, public() (path: text) -> (result: data<Lookup>);
        /// Look up several (directory, name) pairs at once (at most 32); the
        /// capability names the service.
        fn setlookup as SP_SETLOOKUP = 2107, public() (items: data<Vec<NameInDirectory>>)
            -> (results: data<Vec<SetLookupResult>>);
        /// Write several rows, possibly in several directories, all or nothing (at
        /// most 32); the capability names the service.
        fn install as SP_INSTALL = 2108, public() (entries: data<Vec<InstallEntry>>) -> ();
        /// Swap a row's capability set if it still holds the expected one
        /// (`NotNow` if not; needs [`RIGHT_MODIFY`]).
        fn replace as SP_REPLACE = 2109, public() (change: data<Replacement>) -> ();
        /// One row's masks (needs a column right).
        fn getmasks as SP_GETMASKS = 2110, public() (name: text) -> (masks: data<Vec<Rights>>);
    }
}

/// Walks `path` from the directory `start`, following the walk onto other
/// directory servers when a component names one of their directories
/// ([`Lookup::Continue`]); the last component's capability set.
pub fn walk<T: Transport>(
    transport: &mut T,
    start: &Capability,
    path: &str,
) -> Result<Vec<Capability>, Status> {
    let mut client = soap::Client::new(transport);
    let (mut here, mut rest) = (*start, String::from(path));
    // A server hands on only what it could not walk itself, so a walk takes at
    // most one hop per component; more means servers passing it back and forth.
    for _ in 0..=path.split('/').count() {
        match client.lookup(&here, &rest)? {
            Lookup::Found(caps) => return Ok(caps),
            Lookup::Continue { caps, rest: left } => {
                here = *caps.first().ok_or(Status::NotFound)?;
                rest = left;
            }
        }
    }
    Err(Status::Overflow)
}
