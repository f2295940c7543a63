//! The SOAP interface and a replica's own port, served through a [`Submit`] that
//! applies requests to a plain state (no replication): what the board program
//! wires to a replica, checked here end to end through the generated client
//! stubs over a loopback transport.

use std::cell::{Cell, RefCell};

use amoeba_abi::{Capability, Check, Header, Rights, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::directory::{Lookup, NewRow, column_right};
use amoeba_ipc::interfaces::{soap, standard};
use directory_server::checker::lin::Spec;
use directory_server::checker::spec::Dirs;
use directory_server::layout::{Identity, Ports};
use directory_server::service::{ReplicaPort, Service, Submit, replica_port};
use directory_server::workload::{Directories, Generator, perform, value_cap};
use directory_server::{Reply, Request, State, Update};

/// Applies every request at once to one state.
struct Direct {
    state: RefCell<State>,
    next_check: Cell<u8>,
    peer_messages: Cell<usize>,
}

impl Direct {
    fn new(identity: &Identity) -> Direct {
        Direct {
            state: RefCell::new(State::new(identity.port(), identity.super_random)),
            next_check: Cell::new(1),
            peer_messages: Cell::new(0),
        }
    }
}

impl Submit for &Direct {
    fn submit(&self, request: Request) -> Result<Reply, Status> {
        match request {
            Request::Query(q) => self.state.borrow().query(&q),
            Request::Update(mut u) => {
                if let Update::Create { check, .. } = &mut u {
                    let k = self.next_check.get();
                    self.next_check.set(k + 1);
                    *check = Check([k, 0x5a, 3, 4, 5, k]);
                }
                self.state.borrow_mut().apply(&u)
            }
        }
    }
    fn peer_message(&self, _: &[u8]) {
        self.peer_messages.set(self.peer_messages.get() + 1);
    }
    fn report(&self) -> directory_server::ReplicaReport {
        directory_server::ReplicaReport { applied: self.state.borrow().applied, ..Default::default() }
    }
}

/// The service's port and replica 0's port, answered by one [`Direct`].
struct Loopback<'a> {
    identity: Identity,
    service: Service<&'a Direct>,
    replica: ReplicaPort<&'a Direct>,
}

impl<'a> Loopback<'a> {
    fn new(identity: Identity, direct: &'a Direct) -> Loopback<'a> {
        let replica_port = identity.replica_get_port(0).put_port();
        Loopback {
            identity,
            service: Service::new(direct, identity.port()),
            replica: ReplicaPort::new(direct, replica_port, identity.ports.replica_random),
        }
    }
}

impl Transport for Loopback<'_> {
    fn trans(&mut self, header: &Header, buf: &[u8], _: usize) -> Result<(Header, Vec<u8>), Status> {
        if header.capability().port == self.identity.port() {
            Ok(self.service.dispatch(header, buf))
        } else if header.capability().port == self.identity.replica_get_port(0).put_port() {
            Ok(self.replica.dispatch(header, buf))
        } else {
            Err(Status::RpcNotFound)
        }
    }
}

fn identity() -> Identity {
    let mut n = 0u8;
    let ports = Ports::random(|| {
        n += 1;
        Ok::<_, ()>([0x77, n, 3, 4, 5, 6])
    })
    .unwrap();
    Identity::new(Check([0x11, 0x22, 0x33, 0x44, 0x55, 0x66]), ports)
}

#[test]
fn the_workload_through_the_stubs_behaves_as_the_model() {
    let id = identity();
    let direct = Direct::new(&id);
    let mut t = Loopback::new(id, &direct);
    let dirs = Directories::create(&mut t, &id.super_capability()).unwrap();
    let mut model = Dirs::default();
    for client in 0..3 {
        let mut calls = Generator::new(client, 7);
        for _ in 0..400 {
            let input = calls.next_call();
            let expected = model.step(&input);
            assert_eq!(perform(&mut t, &dirs, &input), Ok(expected), "{input:?}");
        }
    }
    let notes = soap::Client::new(&mut t).list(&dirs.notes).unwrap();
    assert!(notes.rows.len() > 50, "{} notes", notes.rows.len());
}

#[test]
fn columns_restrict_what_a_holder_sees_and_does() {
    let id = identity();
    let direct = Direct::new(&id);
    let mut t = Loopback::new(id, &direct);
    let columns: Vec<String> = ["owner", "group", "other"].iter().map(|c| c.to_string()).collect();
    let dir = soap::Client::new(&mut t).create(&id.super_capability(), &columns).unwrap();
    let file = value_cap(9);
    let row = |name: &str, other: u8| NewRow {
        name: name.into(),
        caps: vec![file],
        masks: vec![Rights(0xff), Rights(0x0f), Rights(other)],
    };
    soap::Client::new(&mut t).append(&dir, &row("readable", 0x02)).unwrap();
    soap::Client::new(&mut t).append(&dir, &row("hidden", 0x00)).unwrap();
    let other = standard::Client::new(&mut t).restrict(&dir, column_right(2)).unwrap();
    assert_eq!(other.rights, column_right(2));
    let mut client = soap::Client::new(&mut t);
    match client.lookup(&other, "readable").unwrap() {
        Lookup::Found(caps) => assert_eq!(caps, vec![file.restrict(Rights(0x02)).unwrap()]),
        other => panic!("{other:?}"),
    }
    // A mask of nothing hands out the capability with no rights at all.
    match client.lookup(&other, "hidden").unwrap() {
        Lookup::Found(caps) => assert_eq!(caps, vec![file.restrict(Rights::NONE).unwrap()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.list(&other).unwrap().rows.len(), 2);
    assert_eq!(client.append(&other, &row("new", 0)), Err(Status::Denied));
    assert_eq!(client.delete(&other, "readable"), Err(Status::Denied));
    let forged = Capability { check: Check([9; 6]), ..dir };
    assert_eq!(client.list(&forged), Err(Status::CapBad));
    let raised = Capability { rights: Rights::ALL, ..other };
    assert_eq!(client.lookup(&raised, "readable"), Err(Status::CapBad));
    let mut std = standard::Client::new(&mut t);
    assert_eq!(std.destroy(&other), Err(Status::Denied));
    assert_eq!(std.restrict(&forged, Rights::ALL), Err(Status::CapBad));
    assert!(std.info(&dir).unwrap().contains("2 rows"), "{}", std.info(&dir).unwrap());
}

#[test]
fn standard_commands_go_through_the_state() {
    let id = identity();
    let direct = Direct::new(&id);
    let mut t = Loopback::new(id, &direct);
    let columns = vec!["only".to_string()];
    let dir = soap::Client::new(&mut t).create(&id.super_capability(), &columns).unwrap();
    let before = direct.state.borrow().applied;
    standard::Client::new(&mut t).touch(&dir).unwrap();
    assert_eq!(direct.state.borrow().applied, before + 1, "a touch is an update");
    assert_eq!(standard::Client::new(&mut t).age(&dir), Err(Status::Denied));
    standard::Client::new(&mut t).destroy(&dir).unwrap();
    assert_eq!(soap::Client::new(&mut t).list(&dir), Err(Status::CapBad));
    assert_eq!(standard::Client::new(&mut t).info(&dir), Err(Status::CapBad));
    assert_eq!(standard::Client::new(&mut t).age(&id.super_capability()), Ok(0));
}

#[test]
fn a_replica_port_answers_only_the_super_capability_made_for_it() {
    let id = identity();
    let direct = Direct::new(&id);
    let mut t = Loopback::new(id, &direct);
    let dirs = Directories::create(&mut t, &id.super_capability()).unwrap();
    let mine = id.replica_capability(0);
    let mut client = replica_port::Client::new(&mut t);
    client.deliver(&mine, b"hello").unwrap();
    assert_eq!(direct.peer_messages.get(), 1);
    assert!(
        matches!(client.lookup(&mine, &(dirs.root, "sub".into())), Ok(Lookup::Found(caps)) if caps == vec![dirs.sub])
    );
    assert_eq!(client.list(&mine, &dirs.sub).unwrap().rows.len(), 0);
    let restricted = standard::Client::new(&mut t).restrict(&mine, Rights::READ).unwrap();
    let mut client = replica_port::Client::new(&mut t);
    assert_eq!(client.deliver(&restricted, b"x"), Err(Status::Denied));
    let forged = Capability { check: Check([1; 6]), ..mine };
    assert_eq!(client.deliver(&forged, b"x"), Err(Status::CapBad));
    assert_eq!(direct.peer_messages.get(), 1);
    // The typed report, and STD_STATUS made from it; a forged capability gets neither.
    let report = replica_port::Client::new(&mut t).report(&mine).unwrap();
    assert_eq!(report.applied, direct.state.borrow().applied);
    assert!(report.applied > 0, "{report:?}");
    let text = standard::Client::new(&mut t).status(&mine).unwrap();
    assert!(text.contains(&format!("applied {}", report.applied)), "{text}");
    assert_eq!(replica_port::Client::new(&mut t).report(&forged).map(|_| ()), Err(Status::CapBad));
}
