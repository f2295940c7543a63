//! What each kind of capability may see and do: rights columns, restriction of
//! stored capabilities, forged capabilities, walks that leave this server.

use amoeba_abi::{Capability, Check, Port, Rights, Status};
use directory_server::types::{RIGHT_DELETE, RIGHT_MODIFY, column_right};
use directory_server::{Lookup, Query, Reply, State, Update};

const PORT: Port = Port([0xd1, 0, 0, 0, 0, 1]);
const OTHER: Port = Port([0x0b, 0, 0, 0, 0, 2]);

fn service() -> (State, Capability) {
    let mut s = State::new(PORT, Check([1; 6]));
    let sup = s.super_capability();
    let cols = ["owner", "group", "other"].map(String::from).to_vec();
    let Ok(Reply::Capability(dir)) =
        s.apply(&Update::Create { server: sup, columns: cols, check: Check([2; 6]) })
    else {
        panic!("create")
    };
    (s, dir)
}

fn append(s: &mut State, dir: Capability, name: &str, cap: Capability, masks: [u8; 3]) {
    let masks = masks.map(Rights).to_vec();
    assert_eq!(s.apply(&Update::Append { dir, name: name.into(), caps: vec![cap], masks }), Ok(Reply::Done));
}

fn lookup(s: &State, dir: Capability, path: &str) -> Result<Lookup, Status> {
    match s.query(&Query::Lookup { dir, path: path.into() }) {
        Ok(Reply::Lookup(l)) => Ok(l),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    }
}

fn found(caps: Vec<Capability>) -> Result<Lookup, Status> {
    Ok(Lookup::Found(caps))
}

#[test]
fn each_column_sees_what_its_mask_allows() {
    let (mut s, dir) = service();
    let file = Capability::owner(OTHER, 9, Check([7; 6]));
    append(&mut s, dir, "f", file, [0xff, 0x06, 0x02]);
    let other = dir.restrict(column_right(2)).unwrap();
    let group = dir.restrict(column_right(1)).unwrap();
    let both = dir.restrict(column_right(1) | column_right(2)).unwrap();
    assert_eq!(lookup(&s, dir, "f"), found(vec![file]));
    assert_eq!(lookup(&s, other, "f"), found(vec![file.restrict(Rights(0x02)).unwrap()]));
    assert_eq!(lookup(&s, group, "f"), found(vec![file.restrict(Rights(0x06)).unwrap()]));
    assert_eq!(lookup(&s, both, "f"), found(vec![file.restrict(Rights(0x06)).unwrap()]));
    // No column right: no reading at all; a column right is not a modify right.
    let none = dir.restrict(RIGHT_MODIFY).unwrap();
    assert_eq!(lookup(&s, none, "f"), Err(Status::Denied));
    let del = Update::Delete { dir: other, name: "f".into() };
    assert_eq!(s.apply(&del), Err(Status::Denied));
    assert_eq!(
        s.apply(&Update::Discard { dir: dir.restrict(RIGHT_MODIFY | column_right(0)).unwrap() }),
        Err(Status::Denied)
    );
    assert_eq!(s.apply(&Update::Discard { dir: dir.restrict(RIGHT_DELETE).unwrap() }), Err(Status::Exists));
}

#[test]
fn restricted_capabilities_of_other_servers_are_never_widened() {
    let (mut s, dir) = service();
    let owner = Capability::owner(OTHER, 9, Check([7; 6]));
    let read_write = owner.restrict(Rights(0x06)).unwrap();
    append(&mut s, dir, "rw", read_write, [0xff, 0x06, 0x02]);
    let other = dir.restrict(column_right(2)).unwrap();
    let group = dir.restrict(column_right(1)).unwrap();
    // Already within the mask: handed out as stored.
    assert_eq!(lookup(&s, group, "rw"), found(vec![read_write]));
    // Would need narrowing, which only the other server can do: withheld.
    assert_eq!(lookup(&s, other, "rw"), Err(Status::Denied));
    // In a set, only what can be handed out safely is.
    let caps = vec![read_write, owner];
    let up = Update::Replace { dir, name: "rw".into(), expect: vec![read_write], caps };
    assert_eq!(s.apply(&up), Ok(Reply::Done));
    assert_eq!(lookup(&s, other, "rw"), found(vec![owner.restrict(Rights(0x02)).unwrap()]));
}

#[test]
fn own_directories_are_restricted_here_and_still_walk() {
    let (mut s, root) = service();
    let sup = s.super_capability();
    let cols = ["owner", "group", "other"].map(String::from).to_vec();
    let Ok(Reply::Capability(sub)) =
        s.apply(&Update::Create { server: sup, columns: cols, check: Check([3; 6]) })
    else {
        panic!()
    };
    // "other" may only read through column 2 of the sub directory.
    append(&mut s, root, "sub", sub.restrict(Rights(0x7f)).unwrap(), [0xff, 0xff, 0x04]);
    let file = Capability::owner(OTHER, 1, Check([4; 6]));
    append(&mut s, sub, "f", file, [0xff, 0x0f, 0x01]);
    let other = root.restrict(column_right(2)).unwrap();
    let Ok(Lookup::Found(seen)) = lookup(&s, other, "sub") else { panic!() };
    assert_eq!(seen[0].rights, Rights(0x04));
    assert_eq!(lookup(&s, other, "sub/f"), found(vec![file.restrict(Rights(0x01)).unwrap()]));
    assert_eq!(lookup(&s, root, "/sub//./f/"), found(vec![file]));
    assert_eq!(lookup(&s, root, ""), found(vec![root]));
    assert_eq!(lookup(&s, root, "sub/../f"), Err(Status::ArgBad));
    assert_eq!(lookup(&s, root, "sub/g"), Err(Status::NotFound));
}

#[test]
fn a_walk_into_another_server_says_where_to_go_on() {
    let (mut s, root) = service();
    let remote = Capability::owner(OTHER, 5, Check([6; 6]));
    append(&mut s, root, "far", remote, [0xff, 0xff, 0xff]);
    assert_eq!(lookup(&s, root, "far/a/b"), Ok(Lookup::Continue { caps: vec![remote], rest: "a/b".into() }));
}

#[test]
fn forged_and_foreign_capabilities_are_refused() {
    let (mut s, dir) = service();
    let mut forged = dir;
    forged.check.0[5] ^= 1;
    assert_eq!(lookup(&s, forged, "x"), Err(Status::CapBad));
    let raised = Capability { rights: Rights::ALL, ..dir.restrict(column_right(2)).unwrap() };
    assert_eq!(lookup(&s, raised, "x"), Err(Status::CapBad));
    let foreign = Capability { port: OTHER, ..dir };
    assert_eq!(s.query(&Query::List { dir: foreign }), Err(Status::CapBad));
    let append = Update::Append { dir: forged, name: "x".into(), caps: vec![dir], masks: vec![Rights(1); 3] };
    assert_eq!(s.apply(&append), Err(Status::CapBad));
    // Restricting through the server never adds rights.
    let ro = dir.restrict(column_right(0)).unwrap();
    let wider = Query::Restrict { cap: ro, mask: Rights::ALL };
    assert_eq!(s.query(&wider), Ok(Reply::Capability(ro)));
    // Ageing needs the owner super capability.
    assert_eq!(s.apply(&Update::Age { server: dir }), Err(Status::Denied));
}

#[test]
fn untouched_directories_age_away() {
    let (mut s, dir) = service();
    let sup = s.super_capability();
    for _ in 0..directory_server::MAX_LIFE - 1 {
        assert_eq!(s.apply(&Update::Age { server: sup }), Ok(Reply::Count(0)));
    }
    assert_eq!(s.apply(&Update::Touch { cap: dir }), Ok(Reply::Done));
    assert_eq!(s.apply(&Update::Age { server: sup }), Ok(Reply::Count(0)));
    for _ in 0..directory_server::MAX_LIFE - 1 {
        s.apply(&Update::Age { server: sup }).unwrap();
    }
    assert_eq!(s.query(&Query::Info { cap: dir }), Err(Status::CapBad));
}
