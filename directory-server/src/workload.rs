//! A workload that checks the service from outside, as the pool tests run it
//! from the host and from programs on boards: random calls on two small
//! directories whose rows everyone fights over (recorded, then checked for
//! linearizability against [`crate::checker::spec`]), plus unique notes in a
//! third directory (each must be there at the end once acknowledged).
//!
//! The directories: `root` (d0), `sub` (d1, the row `sub` of root, so a walk
//! `sub/<name>` from root reads d1) and `notes`. Rows of d0 and d1 are named
//! from [`NAMES`] and hold one capability of another server whose object number
//! is the row's value.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, Port, Rights, Status};
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::directory::{InstallEntry, Lookup, MaskChange, NewRow, Replacement};
use amoeba_ipc::interfaces::soap;
use serde::{Deserialize, Serialize};

/// The row names of d0 and d1.
pub const NAMES: [&str; 3] = ["a", "b", "c"];
/// Column-0 masks a chmod may set.
pub const MASKS: [u8; 2] = [0xff, 0x0f];
/// Every row's masks for columns owner, group, other (column 0 may change).
pub const ROW_MASKS: [u8; 3] = [0xff, 0x0f, 0x02];
/// The column names of the workload's directories.
pub const COLUMNS: [&str; 3] = ["owner", "group", "other"];
/// The port of the made-up server whose capabilities the rows hold.
pub const FOREIGN: Port = Port([0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a]);

/// One call of the workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum In {
    /// Append (d, name, value).
    Append(usize, usize, u32),
    /// Delete (d, name).
    Delete(usize, usize),
    /// Replace (d, name, expected value, new value).
    Replace(usize, usize, u32, u32),
    /// Set column 0's mask of (d, name).
    Chmod(usize, usize, u8),
    /// Install rows (d, name, value), all or nothing.
    Install(Vec<(usize, usize, u32)>),
    /// Look up (d, name).
    Lookup(usize, usize),
    /// Walk `sub/<name>` from root.
    Walk(usize),
    /// List d.
    List(usize),
    /// Look up several (d, name) at once.
    SetLookup(Vec<(usize, usize)>),
    /// Append the unique row `note-<value>` to the notes directory.
    Note(u32),
}

/// What a call returned, as the model says it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Out {
    /// Done.
    Ok,
    /// The row exists.
    Exists,
    /// No such row.
    NotFound,
    /// A replace found another value.
    Conflict,
    /// Value and the rights the owner sees.
    Found(u32, u8),
    /// (name, column-0 mask) of every row named from [`NAMES`].
    List(Vec<(usize, u8)>),
    /// One result per pair.
    Set(Vec<Option<(u32, u8)>>),
    /// Anything the model never produces (a wrong status, a bad reply).
    Other(String),
}

/// Is this call an update?
pub fn is_update(input: &In) -> bool {
    !matches!(input, In::Lookup(..) | In::Walk(_) | In::List(_) | In::SetLookup(_))
}

/// One recorded call: when it was made and answered (µs on the caller's clock),
/// `None` if its outcome is unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Which client made it.
    pub client: u32,
    /// When it started.
    pub invoked: u64,
    /// When it was answered, and with what.
    pub returned: Option<(u64, Out)>,
    /// The call.
    pub input: In,
}

impl Record {
    /// One line of hex (for a console).
    pub fn to_hex(&self) -> String {
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Back from [`Record::to_hex`].
    pub fn from_hex(text: &str) -> Option<Record> {
        let bytes: Option<Vec<u8>> = (0..text.len() / 2)
            .map(|i| text.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        postcard::from_bytes(&bytes?).ok()
    }
}

/// A row's capability: value `v` of the made-up server.
pub fn value_cap(v: u32) -> Capability {
    Capability::owner(FOREIGN, v, Check([v as u8, (v >> 8) as u8, 3, 4, 5, 6]))
}

/// A row's masks with column 0 set to `m0`.
pub fn row_masks(m0: u8) -> Vec<Rights> {
    vec![Rights(m0), Rights(ROW_MASKS[1]), Rights(ROW_MASKS[2])]
}

/// The notes directory's row for note `v`.
pub fn note_name(v: u32) -> String {
    format!("note-{v}")
}

/// The workload's directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directories {
    /// d0.
    pub root: Capability,
    /// d1, the row `sub` of d0.
    pub sub: Capability,
    /// Where notes go.
    pub notes: Capability,
}

impl Directories {
    /// Makes them on the service whose super capability is `server`.
    pub fn create<T: Transport>(transport: &mut T, server: &Capability) -> Result<Directories, Status> {
        let mut client = soap::Client::new(transport);
        let columns: Vec<String> = COLUMNS.iter().map(|c| String::from(*c)).collect();
        let root = client.create(server, &columns)?;
        let sub = client.create(server, &columns)?;
        let notes = client.create(server, &columns)?;
        let row = NewRow { name: String::from("sub"), caps: vec![sub], masks: row_masks(0xff) };
        client.append(&root, &row)?;
        Ok(Directories { root, sub, notes })
    }

    fn dir(&self, d: usize) -> &Capability {
        if d == 0 { &self.root } else { &self.sub }
    }
}

fn found(caps: &[Capability]) -> Out {
    match caps {
        [one] => Out::Found(one.object, one.rights.0),
        other => Out::Other(format!("{other:?}")),
    }
}

/// What a server's answer means to the model; transport errors stay errors.
fn outcome<T>(result: Result<T, Status>, map: impl FnOnce(T) -> Out) -> Result<Out, Status> {
    match result {
        Ok(value) => Ok(map(value)),
        Err(status) if status.is_rpc_error() => Err(status),
        Err(Status::Exists) => Ok(Out::Exists),
        Err(Status::NotFound) => Ok(Out::NotFound),
        Err(Status::NotNow) => Ok(Out::Conflict),
        Err(status) => Ok(Out::Other(format!("{status}"))),
    }
}

/// Makes the call `input` through `transport`: the model's view of the answer,
/// or the transport's error (see [`Outcome::of`]).
pub fn perform<T: Transport>(transport: &mut T, dirs: &Directories, input: &In) -> Result<Out, Status> {
    let mut client = soap::Client::new(transport);
    let name = |n: usize| String::from(NAMES[n]);
    let ok = |()| Out::Ok;
    match input {
        In::Append(d, n, v) => {
            let row = NewRow { name: name(*n), caps: vec![value_cap(*v)], masks: row_masks(0xff) };
            outcome(client.append(dirs.dir(*d), &row), ok)
        }
        In::Delete(d, n) => outcome(client.delete(dirs.dir(*d), NAMES[*n]), ok),
        In::Replace(d, n, e, v) => {
            let change =
                Replacement { name: name(*n), expect: vec![value_cap(*e)], caps: vec![value_cap(*v)] };
            outcome(client.replace(dirs.dir(*d), &change), ok)
        }
        In::Chmod(d, n, m) => {
            let change = MaskChange { name: name(*n), masks: row_masks(*m) };
            outcome(client.chmod(dirs.dir(*d), &change), ok)
        }
        In::Install(rows) => {
            let entries: Vec<InstallEntry> = rows
                .iter()
                .map(|(d, n, v)| InstallEntry {
                    dir: *dirs.dir(*d),
                    name: name(*n),
                    caps: vec![value_cap(*v)],
                    masks: row_masks(0xff),
                    expect: None,
                })
                .collect();
            outcome(client.install(&dirs.root, &entries), ok)
        }
        In::Lookup(d, n) => outcome(client.lookup(dirs.dir(*d), NAMES[*n]), |l| lookup_out(&l)),
        In::Walk(n) => {
            let path = format!("sub/{}", NAMES[*n]);
            outcome(client.lookup(&dirs.root, &path), |l| lookup_out(&l))
        }
        In::List(d) => outcome(client.list(dirs.dir(*d)), |listing| {
            let rows = listing.rows.iter().filter_map(|r| {
                let index = NAMES.iter().position(|n| *n == r.name)?;
                Some((index, r.masks.first().map_or(0, |m| m.0)))
            });
            Out::List(rows.collect())
        }),
        In::SetLookup(items) => {
            let items: Vec<(Capability, String)> =
                items.iter().map(|(d, n)| (*dirs.dir(*d), name(*n))).collect();
            outcome(client.setlookup(&dirs.root, &items), |results| {
                Out::Set(
                    results
                        .iter()
                        .map(|r| match r.as_deref() {
                            Ok([one]) => Some((one.object, one.rights.0)),
                            _ => None,
                        })
                        .collect(),
                )
            })
        }
        In::Note(v) => {
            let row = NewRow { name: note_name(*v), caps: vec![value_cap(*v)], masks: row_masks(0xff) };
            outcome(client.append(&dirs.notes, &row), ok)
        }
    }
}

fn lookup_out(lookup: &Lookup) -> Out {
    match lookup {
        Lookup::Found(caps) => found(caps),
        other => Out::Other(format!("{other:?}")),
    }
}

/// How a call ended, for the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered.
    Answered(Out),
    /// It may or may not have taken effect (the server died, or gave up on it).
    Unknown,
    /// It was never taken (no server, or a replica not serving): not in the history.
    Refused,
}

impl Outcome {
    /// Classifies [`perform`]'s result.
    pub fn of(result: Result<Out, Status>) -> Outcome {
        match result {
            Ok(out) => Outcome::Answered(out),
            Err(status) if status.maybe_executed() => Outcome::Unknown,
            Err(_) => Outcome::Refused,
        }
    }
}

/// Random calls for one client, about half of them updates. Values are unique
/// per client, so every write is told apart in the history.
#[derive(Clone, Debug)]
pub struct Generator {
    state: u64,
    next_value: u32,
    /// The last value this client wrote to each row (so replaces sometimes succeed).
    written: [[u32; 3]; 2],
}

impl Generator {
    /// The calls of client `client`, from `seed`.
    pub fn new(client: u32, seed: u64) -> Generator {
        let state = seed ^ (u64::from(client) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Generator { state: state | 1, next_value: (client + 1) * 100_000, written: [[0; 3]; 2] }
    }

    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    fn value(&mut self) -> u32 {
        self.next_value += 1;
        self.next_value
    }

    fn write(&mut self, d: usize, n: usize) -> u32 {
        let v = self.value();
        self.written[d][n] = v;
        v
    }

    /// The next call.
    pub fn next_call(&mut self) -> In {
        let d = self.below(2) as usize;
        let n = self.below(NAMES.len() as u64) as usize;
        match self.below(22) {
            0..=3 => In::Append(d, n, self.write(d, n)),
            4..=5 => In::Delete(d, n),
            6..=7 => {
                let expect = self.written[d][n];
                In::Replace(d, n, expect, self.write(d, n))
            }
            8 => In::Chmod(d, n, MASKS[self.below(2) as usize]),
            9 => {
                let n2 = (n + 1) % NAMES.len();
                In::Install(vec![(d, n, self.write(d, n)), (1 - d, n2, self.write(1 - d, n2))])
            }
            10..=11 => In::Note(self.value()),
            12..=14 => In::Lookup(d, n),
            15..=16 => In::Walk(n),
            17..=18 => In::List(d),
            _ => In::SetLookup(vec![(d, n), (1 - d, n), (d, (n + 2) % NAMES.len())]),
        }
    }
}

/// Most calls a client makes for each update it is to make (refused calls do not
/// count as made, so a client facing no replica would otherwise never stop).
const MAX_CALLS_PER_UPDATE: usize = 20;

/// Client `client` makes random calls until `updates` updates were taken (answered,
/// or of unknown outcome); the record of every call taken, with times from `now`.
pub fn run<T: Transport>(
    transport: &mut T,
    dirs: &Directories,
    client: u32,
    updates: usize,
    seed: u64,
    mut now: impl FnMut() -> u64,
) -> Vec<Record> {
    let mut calls = Generator::new(client, seed);
    let mut records = Vec::new();
    let mut made = 0;
    for _ in 0..updates * MAX_CALLS_PER_UPDATE {
        if made >= updates {
            break;
        }
        let input = calls.next_call();
        let invoked = now();
        let returned = match Outcome::of(perform(transport, dirs, &input)) {
            Outcome::Refused => continue,
            Outcome::Unknown => None,
            Outcome::Answered(out) => Some((now(), out)),
        };
        made += usize::from(is_update(&input));
        records.push(Record { client, invoked, returned, input });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_hex() {
        let r = Record {
            client: 2,
            invoked: 123,
            returned: Some((456, Out::Set(vec![Some((7, 0xff)), None]))),
            input: In::SetLookup(vec![(0, 1), (1, 2)]),
        };
        assert_eq!(Record::from_hex(&r.to_hex()), Some(r));
        assert_eq!(Record::from_hex("zz"), None);
    }

    #[test]
    fn about_half_the_calls_are_updates_with_unique_values() {
        let mut g = Generator::new(1, 42);
        let calls: Vec<In> = (0..1000).map(|_| g.next_call()).collect();
        let updates = calls.iter().filter(|c| is_update(c)).count();
        assert!((400..=650).contains(&updates), "{updates}");
        let mut notes: Vec<u32> =
            calls.iter().filter_map(|c| if let In::Note(v) = c { Some(*v) } else { None }).collect();
        let before = notes.len();
        notes.dedup();
        assert_eq!(notes.len(), before);
        assert!(notes.iter().all(|v| *v > 200_000 && *v < 300_000));
    }
}
