//! The SOAP interface (`amoeba_ipc::interfaces::soap`) and each replica's own port
//! ([`replica_port`]) served through a replica: every operation becomes a
//! [`Request`] handed to the replica, and the serving thread waits for the
//! replica's answer before it replies (the program has one such thread per
//! request in flight). The standard commands come from the generated dispatcher
//! through [`Objects`], whose capability checks are linearizable reads too.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, Header, Port, Rights, Status};
use amoeba_ipc::interface::{Call, Objects};
use amoeba_ipc::interfaces::directory::{
    InstallEntry, ListedRow, Listing, Lookup, MaskChange, NameInDirectory, NewRow, Replacement, SP_LIST_MAX,
    SetLookupResult,
};
use amoeba_ipc::interfaces::soap;

use crate::ReplicaReport;
use crate::ops::{Query, Reply, Request, Update};

/// How requests reach the replica (the program: under its lock, then waiting for
/// the answer; host tests: a plain [`crate::State`]).
pub trait Submit {
    /// Hands `request` to the replica and returns its answer.
    fn submit(&self, request: Request) -> Result<Reply, Status>;
    /// A message from another replica, for [`crate::Replica::on_peer`].
    fn peer_message(&self, bytes: &[u8]);
    /// What the replica says of itself (`replica_port::report`; `STD_STATUS`
    /// is its text).
    fn report(&self) -> ReplicaReport;
}

fn unexpected<T>(reply: Reply) -> Result<T, Status> {
    let _ = reply;
    Err(Status::SysErr)
}

fn done(reply: Reply) -> Result<(), Status> {
    match reply {
        Reply::Done => Ok(()),
        other => unexpected(other),
    }
}

fn listing(reply: Reply) -> Result<Listing, Status> {
    match reply {
        Reply::List { columns, rows } => Ok(Listing {
            columns,
            rows: rows.into_iter().map(|(name, masks)| ListedRow { name, masks }).collect(),
        }),
        other => unexpected(other),
    }
}

fn lookup(reply: Reply) -> Result<Lookup, Status> {
    match reply {
        Reply::Lookup(found) => Ok(found),
        other => unexpected(other),
    }
}

/// The SOAP interface and the standard commands on the service's port, for one
/// serving thread (it remembers the capability of the request it is answering).
pub struct Service<S: Submit> {
    submit: S,
    port: Port,
    current: Capability,
}

impl<S: Submit> Service<S> {
    /// Serves the directories of the service on put-port `port` through `submit`.
    pub fn new(submit: S, port: Port) -> Self {
        Service { submit, port, current: Capability::default() }
    }

    /// Answers one request.
    pub fn dispatch(&mut self, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
        self.current = header.capability();
        soap::dispatch(self, header, buf)
    }

    fn update(&self, update: Update) -> Result<Reply, Status> {
        self.submit.submit(Request::Update(update))
    }

    fn query(&self, query: Query) -> Result<Reply, Status> {
        self.submit.submit(Request::Query(query))
    }
}

impl<S: Submit> Objects for Service<S> {
    fn port(&self) -> Port {
        self.port
    }
    /// Read through the replica like any query, so a directory another replica
    /// has acknowledged creating is known here too.
    fn check(&self, object: u32) -> Option<Check> {
        match self.query(Query::Random { object }) {
            Ok(Reply::Random(random)) => random,
            _ => None,
        }
    }
    fn touch_object(&mut self, object: u32) {
        if object != 0 {
            let _ = self.update(Update::Touch { cap: self.current });
        }
    }
    fn describe(&mut self, _: u32) -> String {
        match self.query(Query::Info { cap: self.current }) {
            Ok(Reply::Info(text)) => text,
            Ok(_) => String::from("directory: ?"),
            Err(status) => format!("directory: {status}"),
        }
    }
    fn destroy_object(&mut self, _: u32) -> Result<(), Status> {
        self.update(Update::Discard { dir: self.current }).and_then(done)
    }
    fn age_objects(&mut self) -> Result<u32, Status> {
        match self.update(Update::Age { server: self.current })? {
            Reply::Count(n) => Ok(n),
            other => unexpected(other),
        }
    }
    fn status_text(&self) -> String {
        self.submit.report().to_string()
    }
}

impl<S: Submit> soap::Server for Service<S> {
    fn create(&mut self, call: &Call<'_>, columns: Vec<String>) -> Result<Capability, Status> {
        // The replica that takes the request draws the new directory's check.
        let update = Update::Create { server: call.capability, columns, check: Check::default() };
        match self.update(update)? {
            Reply::Capability(dir) => Ok(dir),
            other => unexpected(other),
        }
    }
    fn discard(&mut self, call: &Call<'_>) -> Result<(), Status> {
        self.update(Update::Discard { dir: call.capability }).and_then(done)
    }
    fn list(&mut self, call: &Call<'_>) -> Result<Listing, Status> {
        self.query(Query::List { dir: call.capability }).and_then(listing)
    }
    fn append(&mut self, call: &Call<'_>, row: NewRow) -> Result<(), Status> {
        let NewRow { name, caps, masks } = row;
        self.update(Update::Append { dir: call.capability, name, caps, masks }).and_then(done)
    }
    fn chmod(&mut self, call: &Call<'_>, change: MaskChange) -> Result<(), Status> {
        let MaskChange { name, masks } = change;
        self.update(Update::Chmod { dir: call.capability, name, masks }).and_then(done)
    }
    fn delete(&mut self, call: &Call<'_>, name: String) -> Result<(), Status> {
        self.update(Update::Delete { dir: call.capability, name }).and_then(done)
    }
    fn lookup(&mut self, call: &Call<'_>, path: String) -> Result<Lookup, Status> {
        self.query(Query::Lookup { dir: call.capability, path }).and_then(lookup)
    }
    fn setlookup(
        &mut self,
        _: &Call<'_>,
        items: Vec<NameInDirectory>,
    ) -> Result<Vec<SetLookupResult>, Status> {
        match self.query(Query::SetLookup { items })? {
            Reply::SetLookup(results) => Ok(results),
            other => unexpected(other),
        }
    }
    fn install(&mut self, _: &Call<'_>, entries: Vec<InstallEntry>) -> Result<(), Status> {
        self.update(Update::Install { entries }).and_then(done)
    }
    fn replace(&mut self, call: &Call<'_>, change: Replacement) -> Result<(), Status> {
        let Replacement { name, expect, caps } = change;
        self.update(Update::Replace { dir: call.capability, name, expect, caps }).and_then(done)
    }
    fn getmasks(&mut self, call: &Call<'_>, name: String) -> Result<Vec<Rights>, Status> {
        match self.query(Query::GetMasks { dir: call.capability, name })? {
            Reply::Masks(masks) => Ok(masks),
            other => unexpected(other),
        }
    }
}

amoeba_ipc::interface! {
    /// What one replica answers on its own port, to holders of the service's super
    /// capability made for that port ([`crate::layout::Identity::replica_capability`]):
    /// the other replicas' messages, and reads answered by this replica alone (for
    /// tests and tools that must ask one replica). `STD_STATUS` there gives the
    /// replica's position and a checksum of its state.
    pub mod replica_port {
        /// A message from another replica (an encoded [`crate::protocol::Envelope`]).
        fn deliver as DIR_REPLICA_DELIVER = 2150, server(Rights::ALL) (message: bytes) -> ();
        /// Walk a path from a directory, at this replica.
        fn lookup as DIR_REPLICA_LOOKUP = 2151, server(Rights::ALL) (walk: data<NameInDirectory>)
            -> (result: data<Lookup>);
        /// List a directory, at this replica.
        fn list as DIR_REPLICA_LIST = 2152, server(Rights::ALL) (dir: data<Capability>)
            -> (listing: data<Listing>) limit SP_LIST_MAX;
        /// What this replica says of itself, typed (`STD_STATUS` is its text).
        fn report as DIR_REPLICA_REPORT = 2153, server(Rights::ALL) () -> (report: data<ReplicaReport>);
    }
}

/// One replica's own port.
pub struct ReplicaPort<S: Submit> {
    submit: S,
    port: Port,
    /// The check of the replica port's own capability: a random of its own,
    /// not the service's super check, so that a peer call carries nothing
    /// the service's get-ports or super capability follow from.
    replica_random: Check,
}

impl<S: Submit> ReplicaPort<S> {
    /// Serves put-port `port` to holders of the capability whose check is
    /// `replica_random` (the replica port's own random).
    pub fn new(submit: S, port: Port, replica_random: Check) -> Self {
        ReplicaPort { submit, port, replica_random }
    }

    /// Answers one request.
    pub fn dispatch(&mut self, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
        replica_port::dispatch(self, header, buf)
    }
}

impl<S: Submit> Objects for ReplicaPort<S> {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == 0).then_some(self.replica_random)
    }
    fn status_text(&self) -> String {
        self.submit.report().to_string()
    }
}

impl<S: Submit> replica_port::Server for ReplicaPort<S> {
    fn deliver(&mut self, _: &Call<'_>, message: &[u8]) -> Result<(), Status> {
        self.submit.peer_message(message);
        Ok(())
    }
    fn lookup(&mut self, _: &Call<'_>, walk: NameInDirectory) -> Result<Lookup, Status> {
        let (dir, path) = walk;
        self.submit.submit(Request::Query(Query::Lookup { dir, path })).and_then(lookup)
    }
    fn list(&mut self, _: &Call<'_>, dir: Capability) -> Result<Listing, Status> {
        self.submit.submit(Request::Query(Query::List { dir })).and_then(listing)
    }
    fn report(&mut self, _: &Call<'_>) -> Result<ReplicaReport, Status> {
        Ok(self.submit.report())
    }
}
