//! The operations of the directory service: updates (which change the state and
//! go through the total order), queries (pure functions of the state) and their
//! replies, with the command number each answers to.

use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, Rights, Status};
use amoeba_ipc::interfaces::soap::{
    SP_APPEND, SP_CHMOD, SP_CREATE, SP_DELETE, SP_DISCARD, SP_GETMASKS, SP_INSTALL, SP_LIST, SP_LOOKUP,
    SP_REPLACE, SP_SETLOOKUP,
};
use amoeba_ipc::interfaces::standard::{STD_AGE, STD_INFO, STD_RESTRICT, STD_TOUCH};

/// The shared wire types (declared with the interface, so host and board clients use
/// them too): a row of `SP_INSTALL`, and the answer to a lookup.
pub use amoeba_ipc::interfaces::directory::{InstallEntry, Lookup};

/// A change to the directory state. Every replica applies the same updates in the
/// same order; anything random is carried in the update.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Update {
    /// `SP_CREATE`: a new directory with these column names. `server` is any valid
    /// capability of this service. `check` is the new directory's random check
    /// value, chosen by the replica that takes the request (a client's is replaced).
    Create {
        /// Any capability of this service (object 0 or a directory).
        server: Capability,
        /// 1..=4 column names.
        columns: Vec<String>,
        /// The random check of the new directory's owner capability.
        check: Check,
    },
    /// `SP_DISCARD` / `STD_DESTROY`: remove an empty directory (needs [`crate::RIGHT_DELETE`]).
    Discard {
        /// The directory.
        dir: Capability,
    },
    /// `SP_APPEND`: add a row; the name must be new.
    Append {
        /// The directory (needs modify).
        dir: Capability,
        /// Row name.
        name: String,
        /// Capability set.
        caps: Vec<Capability>,
        /// One mask per column.
        masks: Vec<Rights>,
    },
    /// `SP_DELETE`: remove a row.
    Delete {
        /// The directory (needs modify).
        dir: Capability,
        /// Row name.
        name: String,
    },
    /// `SP_REPLACE`: swap a row's capability set if it still holds `expect` (as this
    /// capability sees it); `NotNow` if it does not.
    Replace {
        /// The directory (needs modify).
        dir: Capability,
        /// Row name.
        name: String,
        /// The set the caller last saw.
        expect: Vec<Capability>,
        /// The new set.
        caps: Vec<Capability>,
    },
    /// `SP_CHMOD`: set a row's column masks.
    Chmod {
        /// The directory (needs modify).
        dir: Capability,
        /// Row name.
        name: String,
        /// One mask per column.
        masks: Vec<Rights>,
    },
    /// `SP_INSTALL`: write several rows (possibly in several directories) at once,
    /// all or nothing.
    Install {
        /// The rows; no (directory, name) twice.
        entries: Vec<InstallEntry>,
    },
    /// `STD_TOUCH`: reset a directory's lifetime.
    Touch {
        /// Any valid capability for the object.
        cap: Capability,
    },
    /// `STD_AGE`: age every directory, discarding those that reach zero.
    Age {
        /// The service's owner super capability (object 0).
        server: Capability,
    },
}

/// A question about the directory state; answering it changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// `SP_LIST`: column names and every row's name and masks (needs a column right).
    List {
        /// The directory.
        dir: Capability,
    },
    /// `SP_GETMASKS`: one row's masks.
    GetMasks {
        /// The directory.
        dir: Capability,
        /// Row name.
        name: String,
    },
    /// `SP_LOOKUP`: walk `path` (one name or several separated by `/`) from `dir`.
    Lookup {
        /// Where the walk starts.
        dir: Capability,
        /// The path.
        path: String,
    },
    /// `SP_SETLOOKUP`: look up several (directory, name) pairs at once.
    SetLookup {
        /// The pairs.
        items: Vec<(Capability, String)>,
    },
    /// `STD_INFO`: a short description of the object.
    Info {
        /// The object.
        cap: Capability,
    },
    /// `STD_RESTRICT`: the same object with rights `cap.rights & mask`.
    Restrict {
        /// The capability to restrict.
        cap: Capability,
        /// The mask.
        mask: Rights,
    },
    /// The random check value of object `object` (0: the service itself), for the
    /// program's own verification of standard commands; never sent to a client.
    Random {
        /// The object.
        object: u32,
    },
}

/// What a client asks a replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Request {
    /// A read, answered from the state.
    Query(Query),
    /// A write, ordered through the group.
    Update(Update),
}

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The update was applied; nothing to return.
    Done,
    /// A capability (new directory, restricted capability).
    Capability(Capability),
    /// A count (directories aged away).
    Count(u32),
    /// A listing.
    List {
        /// Column names.
        columns: Vec<String>,
        /// (name, masks) per row, by name.
        rows: Vec<(String, Vec<Rights>)>,
    },
    /// One row's masks.
    Masks(Vec<Rights>),
    /// A lookup's result.
    Lookup(Lookup),
    /// One result per pair of a set lookup.
    SetLookup(Vec<Result<Vec<Capability>, Status>>),
    /// Info text.
    Info(String),
    /// An object's random check value ([`Query::Random`]; `None`: no such object).
    Random(Option<Check>),
}

impl Update {
    /// The command number of this update.
    pub fn command(&self) -> u32 {
        match self {
            Update::Create { .. } => SP_CREATE,
            Update::Discard { .. } => SP_DISCARD,
            Update::Append { .. } => SP_APPEND,
            Update::Delete { .. } => SP_DELETE,
            Update::Replace { .. } => SP_REPLACE,
            Update::Chmod { .. } => SP_CHMOD,
            Update::Install { .. } => SP_INSTALL,
            Update::Touch { .. } => STD_TOUCH,
            Update::Age { .. } => STD_AGE,
        }
    }
}

impl Request {
    /// The command number of this request (`STD_DESTROY` arrives as
    /// [`Update::Discard`] and answers to `SP_DISCARD` here).
    pub fn command(&self) -> u32 {
        match self {
            Request::Query(q) => q.command(),
            Request::Update(u) => u.command(),
        }
    }
}

impl Query {
    /// The command number of this query.
    pub fn command(&self) -> u32 {
        match self {
            Query::List { .. } => SP_LIST,
            Query::GetMasks { .. } => SP_GETMASKS,
            Query::Lookup { .. } => SP_LOOKUP,
            Query::SetLookup { .. } => SP_SETLOOKUP,
            Query::Info { .. } => STD_INFO,
            Query::Restrict { .. } | Query::Random { .. } => STD_RESTRICT,
        }
    }
}
