//! Property tests of the state machine: any sequence of operations gives the same
//! replies and the same final state as a simple model; three replicas applying one
//! sequence end identical; encodings round-trip and garbage is refused.

mod common;

use amoeba_abi::{Capability, Check, Port, Rights, Status};
use common::model::Model;
use directory_server::codec::{decode_reply, encode_reply};
use directory_server::{InstallEntry, Query, Request, State, Update};
use proptest::prelude::*;

const PORT: Port = Port([0xd1, 0x4e, 0xc7, 0x00, 0x00, 0x01]);
const SUPER: Check = Check([1, 2, 3, 4, 5, 6]);
const FOREIGN: Port = Port([0xb0, 0x11, 0xe7, 0, 0, 2]);
const NAMES: &[&str] = &["a", "b", "sub", "x", "", "a/b", "..", "."];

/// How a generated operation names a capability; resolved against the directories
/// created so far.
#[derive(Clone, Debug)]
enum CapRef {
    Super,
    SuperRestricted(u8),
    Dir(usize),
    DirRestricted(usize, u8),
    Forged(usize),
    Foreign,
}

/// A capability to store in a row.
#[derive(Clone, Debug)]
enum Val {
    Own(usize, u8),
    ForeignOwner(u32),
    ForeignRestricted(u32, u8),
}

/// One generated install row: directory, name, set, masks, expected set.
type InstallRow = (CapRef, usize, Vec<Val>, Vec<u8>, Option<Vec<Val>>);

#[derive(Clone, Debug)]
enum Op {
    Create(CapRef, usize, [u8; 6]),
    Discard(CapRef),
    Append(CapRef, usize, Vec<Val>, Vec<u8>),
    Delete(CapRef, usize),
    Replace(CapRef, usize, Vec<Val>, Vec<Val>),
    Chmod(CapRef, usize, Vec<u8>),
    Install(Vec<InstallRow>),
    Touch(CapRef),
    Age(CapRef),
    List(CapRef),
    GetMasks(CapRef, usize),
    Lookup(CapRef, Vec<usize>),
    SetLookup(Vec<(CapRef, usize)>),
    Info(CapRef),
    Restrict(CapRef, u8),
}

fn mask() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0xff), Just(0x0f), Just(0x02), Just(0x00), Just(0x41), Just(0x01), any::<u8>()]
}

fn cap_ref() -> impl Strategy<Value = CapRef> {
    prop_oneof![
        1 => Just(CapRef::Super),
        1 => mask().prop_map(CapRef::SuperRestricted),
        6 => (0..6usize).prop_map(CapRef::Dir),
        3 => (0..6usize, mask()).prop_map(|(i, m)| CapRef::DirRestricted(i, m)),
        1 => (0..6usize).prop_map(CapRef::Forged),
        1 => Just(CapRef::Foreign),
    ]
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => (0..6usize, mask()).prop_map(|(i, m)| Val::Own(i, m)),
        2 => (1..4u32).prop_map(Val::ForeignOwner),
        2 => (1..4u32, mask()).prop_map(|(o, m)| Val::ForeignRestricted(o, m)),
    ]
}

fn name() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..4usize, 1 => 0..NAMES.len()]
}

fn vals() -> impl Strategy<Value = Vec<Val>> {
    prop_oneof![8 => prop::collection::vec(val(), 1..3), 1 => Just(vec![])]
}

fn masks() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![6 => prop::collection::vec(mask(), 3), 2 => prop::collection::vec(mask(), 1..5)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (cap_ref(), 0..6usize, any::<[u8; 6]>()).prop_map(|(c, n, k)| Op::Create(c, n, k)),
        1 => cap_ref().prop_map(Op::Discard),
        6 => (cap_ref(), name(), vals(), masks()).prop_map(|(c, n, v, m)| Op::Append(c, n, v, m)),
        2 => (cap_ref(), name()).prop_map(|(c, n)| Op::Delete(c, n)),
        2 => (cap_ref(), name(), vals(), vals()).prop_map(|(c, n, e, v)| Op::Replace(c, n, e, v)),
        2 => (cap_ref(), name(), masks()).prop_map(|(c, n, m)| Op::Chmod(c, n, m)),
        2 => prop::collection::vec(
            (cap_ref(), name(), vals(), masks(), prop::option::of(vals())),
            0..4
        )
        .prop_map(Op::Install),
        1 => cap_ref().prop_map(Op::Touch),
        1 => cap_ref().prop_map(Op::Age),
        2 => cap_ref().prop_map(Op::List),
        2 => (cap_ref(), name()).prop_map(|(c, n)| Op::GetMasks(c, n)),
        5 => (cap_ref(), prop::collection::vec(name(), 0..4)).prop_map(|(c, p)| Op::Lookup(c, p)),
        2 => prop::collection::vec((cap_ref(), name()), 0..4).prop_map(Op::SetLookup),
        1 => cap_ref().prop_map(Op::Info),
        1 => (cap_ref(), mask()).prop_map(|(c, m)| Op::Restrict(c, m)),
    ]
}

/// Resolves generated references to concrete capabilities.
struct Resolver {
    created: Vec<Capability>,
    sup: Capability,
}

impl Resolver {
    fn dir(&self, i: usize) -> Capability {
        if self.created.is_empty() { self.sup } else { self.created[i % self.created.len()] }
    }
    fn cap(&self, r: &CapRef) -> Capability {
        match r {
            CapRef::Super => self.sup,
            CapRef::SuperRestricted(m) => self.sup.restrict(Rights(*m)).unwrap(),
            CapRef::Dir(i) => self.dir(*i),
            CapRef::DirRestricted(i, m) => self.dir(*i).restrict(Rights(*m)).unwrap(),
            CapRef::Forged(i) => {
                let mut c = self.dir(*i);
                c.check.0[0] ^= 0x40;
                c
            }
            CapRef::Foreign => Capability::owner(FOREIGN, 1, Check([9; 6])),
        }
    }
    fn val(&self, v: &Val) -> Capability {
        match v {
            Val::Own(i, m) => self.dir(*i).restrict(Rights(*m)).unwrap(),
            Val::ForeignOwner(o) => Capability::owner(FOREIGN, *o, Check([*o as u8; 6])),
            Val::ForeignRestricted(o, m) => {
                Capability::owner(FOREIGN, *o, Check([*o as u8; 6])).restrict(Rights(*m)).unwrap()
            }
        }
    }
    fn vals(&self, v: &[Val]) -> Vec<Capability> {
        v.iter().map(|x| self.val(x)).collect()
    }
}

fn masks_of(m: &[u8]) -> Vec<Rights> {
    m.iter().map(|b| Rights(*b)).collect()
}

fn columns(n: usize) -> Vec<String> {
    ["owner", "group", "other", "world", "extra"][..n].iter().map(|s| s.to_string()).collect()
}

/// The concrete request for a generated operation.
fn concrete(op: &Op, r: &Resolver) -> Request {
    let n = |i: &usize| NAMES[*i].to_string();
    let u = |u| Request::Update(u);
    let q = |q| Request::Query(q);
    match op {
        Op::Create(c, k, check) => {
            u(Update::Create { server: r.cap(c), columns: columns(*k), check: Check(*check) })
        }
        Op::Discard(c) => u(Update::Discard { dir: r.cap(c) }),
        Op::Append(c, i, v, m) => {
            u(Update::Append { dir: r.cap(c), name: n(i), caps: r.vals(v), masks: masks_of(m) })
        }
        Op::Delete(c, i) => u(Update::Delete { dir: r.cap(c), name: n(i) }),
        Op::Replace(c, i, e, v) => {
            u(Update::Replace { dir: r.cap(c), name: n(i), expect: r.vals(e), caps: r.vals(v) })
        }
        Op::Chmod(c, i, m) => u(Update::Chmod { dir: r.cap(c), name: n(i), masks: masks_of(m) }),
        Op::Install(es) => u(Update::Install {
            entries: es
                .iter()
                .map(|(c, i, v, m, e)| InstallEntry {
                    dir: r.cap(c),
                    name: n(i),
                    caps: r.vals(v),
                    masks: masks_of(m),
                    expect: e.as_ref().map(|e| r.vals(e)),
                })
                .collect(),
        }),
        Op::Touch(c) => u(Update::Touch { cap: r.cap(c) }),
        Op::Age(c) => u(Update::Age { server: r.cap(c) }),
        Op::List(c) => q(Query::List { dir: r.cap(c) }),
        Op::GetMasks(c, i) => q(Query::GetMasks { dir: r.cap(c), name: n(i) }),
        Op::Lookup(c, p) => q(Query::Lookup {
            dir: r.cap(c),
            path: p.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join("/"),
        }),
        Op::SetLookup(items) => {
            q(Query::SetLookup { items: items.iter().map(|(c, i)| (r.cap(c), n(i))).collect() })
        }
        Op::Info(c) => q(Query::Info { cap: r.cap(c) }),
        Op::Restrict(c, m) => q(Query::Restrict { cap: r.cap(c), mask: Rights(*m) }),
    }
}

/// Does every field of `req` fit the model's limits (so its encoding must decode)?
fn well_formed(req: &Request) -> bool {
    use directory_server::types::{valid_capset, valid_columns, valid_name};
    let masks_ok = |m: &[Rights]| (1..=4).contains(&m.len());
    let batch_ok = |n: usize| (1..=32).contains(&n);
    match req {
        Request::Update(u) => match u {
            Update::Create { columns, .. } => valid_columns(columns),
            Update::Append { name, caps, masks, .. } => {
                valid_name(name) && valid_capset(caps) && masks_ok(masks)
            }
            Update::Delete { name, .. } => valid_name(name),
            Update::Replace { name, expect, caps, .. } => {
                valid_name(name) && valid_capset(expect) && valid_capset(caps)
            }
            Update::Chmod { name, masks, .. } => valid_name(name) && masks_ok(masks),
            Update::Install { entries } => {
                batch_ok(entries.len())
                    && entries.iter().all(|e| {
                        valid_name(&e.name)
                            && valid_capset(&e.caps)
                            && masks_ok(&e.masks)
                            && e.expect.as_ref().is_none_or(|x| valid_capset(x))
                    })
            }
            Update::Discard { .. } | Update::Touch { .. } | Update::Age { .. } => true,
        },
        Request::Query(q) => match q {
            Query::GetMasks { name, .. } => valid_name(name),
            Query::SetLookup { items } => batch_ok(items.len()) && items.iter().all(|(_, n)| valid_name(n)),
            _ => true,
        },
    }
}

/// The state's directories in the model's shape, for comparison.
fn as_model_dirs(s: &State) -> Vec<common::model::MDir> {
    s.dirs
        .iter()
        .map(|(o, d)| common::model::MDir {
            object: *o,
            random: d.random,
            life: d.life,
            columns: d.columns.clone(),
            rows: d
                .rows
                .iter()
                .map(|(n, r)| common::model::MRow {
                    name: n.clone(),
                    caps: r.caps.clone(),
                    masks: r.masks.clone(),
                })
                .collect(),
        })
        .collect()
}

fn sorted_model_dirs(m: &Model) -> Vec<common::model::MDir> {
    let mut dirs = m.dirs.clone();
    dirs.sort_by_key(|d| d.object);
    for d in &mut dirs {
        d.rows.sort_by(|a, b| a.name.cmp(&b.name));
    }
    dirs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn state_matches_model_and_replicas_agree(ops in prop::collection::vec(op(), 1..80)) {
        let mut replicas = [State::new(PORT, SUPER), State::new(PORT, SUPER), State::new(PORT, SUPER)];
        let mut model = Model::new(PORT, SUPER);
        let mut r = Resolver { created: vec![], sup: replicas[0].super_capability() };
        let mut updates = 0;
        for op in &ops {
            let req = concrete(op, &r);
            // Every well-formed request survives its encoding; the others are refused.
            match Request::decode(&req.encode()) {
                Ok(back) => prop_assert_eq!(&back, &req),
                Err(e) => prop_assert!(!well_formed(&req), "{:?} refused: {:?}", req, e),
            }
            match &req {
                Request::Update(u) => {
                    updates += 1;
                    let expect = model.apply(u);
                    for s in replicas.iter_mut() {
                        prop_assert_eq!(&s.apply(u), &expect, "update {:?}", u);
                    }
                    prop_assert_eq!(decode_reply(&encode_reply(&expect)), Ok(expect.clone()));
                    if let Ok(directory_server::Reply::Capability(c)) = expect
                        && matches!(u, Update::Create { .. })
                    {
                        r.created.push(c);
                    }
                }
                Request::Query(q) => {
                    let expect = model.query(q);
                    for s in &replicas {
                        prop_assert_eq!(&s.query(q), &expect, "query {:?}", q);
                    }
                    prop_assert_eq!(decode_reply(&encode_reply(&expect)), Ok(expect.clone()));
                }
            }
        }
        let bytes = replicas[0].encode();
        for s in &replicas {
            prop_assert_eq!(s.applied, updates);
            prop_assert_eq!(&s.encode(), &bytes);
        }
        let decoded = State::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&replicas[0]));
        prop_assert_eq!(as_model_dirs(&replicas[0]), sorted_model_dirs(&model));
    }

    #[test]
    fn garbage_requests_are_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(req) = Request::decode(&bytes) {
            // Whatever decodes must encode back to the same bytes.
            prop_assert_eq!(req.encode(), bytes.clone());
        }
        let _ = decode_reply(&bytes);
        let _ = State::decode(&bytes);
        let _ = Update::decode(&bytes);
    }

    #[test]
    fn truncated_or_flipped_encodings_are_refused(ops in prop::collection::vec(op(), 1..30), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let mut s = State::new(PORT, SUPER);
        let mut r = Resolver { created: vec![], sup: s.super_capability() };
        for op in &ops {
            if let Request::Update(u) = concrete(op, &r) {
                if let Ok(directory_server::Reply::Capability(c)) = s.apply(&u)
                    && matches!(u, Update::Create { .. })
                {
                    r.created.push(c);
                }
                let bytes = Request::Update(u).encode();
                let k = cut.index(bytes.len());
                prop_assert!(Request::decode(&bytes[..k]).is_err());
            }
        }
        let bytes = s.encode();
        let k = cut.index(bytes.len());
        prop_assert!(State::decode(&bytes[..k]).is_err());
        let mut extra = bytes.clone();
        extra.push(0);
        prop_assert_eq!(State::decode(&extra), Err(directory_server::DecodeError::Trailing));
        // A flipped byte either fails to decode or decodes to something else.
        let mut flipped = bytes.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 0x80;
        prop_assert_ne!(State::decode(&flipped).ok(), Some(s.clone()));
        let _ = Status::Ok;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn envelopes_round_trip_and_garbage_is_refused(
        ops in prop::collection::vec(op(), 1..10),
        nonce: u64,
        pos: u64,
        member: u32,
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        use directory_server::protocol::Envelope;
        let r = Resolver { created: vec![], sup: State::new(PORT, SUPER).super_capability() };
        let mut envs = vec![
            Envelope::Renew { nonce, applied: pos },
            Envelope::Barrier { nonce },
            Envelope::StateRequest { nonce, target: member },
            Envelope::Applied { from: member, pos },
            Envelope::Chunk { to: member, nonce, index: 0, total: 1, bytes: bytes.clone() },
        ];
        for op in &ops {
            if let Request::Update(update) = concrete(op, &r)
                && well_formed(&Request::Update(update.clone()))
            {
                envs.push(Envelope::Update { req: nonce, update });
            }
        }
        for e in &envs {
            let enc = e.encode();
            prop_assert_eq!(Envelope::decode(&enc), Ok(e.clone()));
            prop_assert!(Envelope::decode(&enc[..enc.len() - 1]).is_err());
        }
        if let Ok(e) = Envelope::decode(&bytes) {
            prop_assert_eq!(e.encode(), bytes);
        }
    }
}
