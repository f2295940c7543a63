//! The sequential specification the simulated clients' histories are checked
//! against: two directories (the root, and `sub` under it), three row names, rows
//! holding one capability of another server whose object number is the value.

#![allow(dead_code)]

use super::lin::Spec;

pub const NAMES: [&str; 3] = ["a", "b", "c"];
/// Column-0 masks a chmod may set (the other columns stay 0x0f and 0x02).
pub const MASKS: [u8; 2] = [0xff, 0x0f];

/// A row: (value, column-0 mask).
pub type Cell = Option<(u32, u8)>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dirs(pub [[Cell; 3]; 2]);

#[derive(Clone, Debug)]
pub enum In {
    Append(usize, usize, u32),
    Delete(usize, usize),
    Replace(usize, usize, u32, u32),
    Chmod(usize, usize, u8),
    Install(Vec<(usize, usize, u32)>),
    Lookup(usize, usize),
    /// `sub/<name>` from the root.
    Walk(usize),
    List(usize),
    SetLookup(Vec<(usize, usize)>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Out {
    Ok,
    Exists,
    NotFound,
    Conflict,
    /// Value and the rights the owner sees.
    Found(u32, u8),
    List(Vec<(usize, u8)>),
    Set(Vec<Option<(u32, u8)>>),
    /// Anything the model never produces (a wrong status, a bad reply).
    Other(String),
}

/// What the owner (all column bits) sees of a row with column-0 mask `m`.
pub fn seen_rights(m: u8) -> u8 {
    m | 0x0f | 0x02
}

impl Spec for Dirs {
    type Input = In;
    type Output = Out;
    fn step(&mut self, input: &In) -> Out {
        let cells = &mut self.0;
        match input {
            In::Append(d, n, v) => {
                if cells[*d][*n].is_some() {
                    return Out::Exists;
                }
                cells[*d][*n] = Some((*v, 0xff));
                Out::Ok
            }
            In::Delete(d, n) => match cells[*d][*n].take() {
                Some(_) => Out::Ok,
                None => Out::NotFound,
            },
            In::Replace(d, n, expect, v) => match &mut cells[*d][*n] {
                None => Out::NotFound,
                Some((cur, m)) if *cur == *expect && seen_rights(*m) == 0xff => {
                    *cur = *v;
                    Out::Ok
                }
                Some(_) => Out::Conflict,
            },
            In::Chmod(d, n, m) => match &mut cells[*d][*n] {
                None => Out::NotFound,
                Some((_, old)) => {
                    *old = *m;
                    Out::Ok
                }
            },
            In::Install(entries) => {
                for (d, n, v) in entries {
                    cells[*d][*n] = Some((*v, 0xff));
                }
                Out::Ok
            }
            In::Lookup(d, n) => found(&cells[*d][*n]),
            In::Walk(n) => found(&cells[1][*n]),
            In::List(d) => {
                Out::List(cells[*d].iter().enumerate().filter_map(|(n, c)| c.map(|(_, m)| (n, m))).collect())
            }
            In::SetLookup(items) => {
                Out::Set(items.iter().map(|(d, n)| cells[*d][*n].map(|(v, m)| (v, seen_rights(m)))).collect())
            }
        }
    }
}

fn found(c: &Cell) -> Out {
    match c {
        Some((v, m)) => Out::Found(*v, seen_rights(*m)),
        None => Out::NotFound,
    }
}
