//! The sequential specification of the [`crate::workload`]'s calls: two
//! directories (the root, and `sub` under it), three row names, rows holding one
//! capability of another server whose object number is the value. Notes go to a
//! directory of their own and are checked apart (each is a separate object).

use super::lin::Spec;
use crate::workload::{In, Out, ROW_MASKS};

/// A row: (value, column-0 mask).
pub type Cell = Option<(u32, u8)>;

/// The model: the cells of d0 and d1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dirs(pub [[Cell; 3]; 2]);

/// What the owner (all column bits) sees of a row with column-0 mask `m`.
pub fn seen_rights(m: u8) -> u8 {
    m | ROW_MASKS[1] | ROW_MASKS[2]
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
            // A new, unique row elsewhere: it always succeeds and changes no cell.
            In::Note(_) => Out::Ok,
        }
    }
}

fn found(c: &Cell) -> Out {
    match c {
        Some((v, m)) => Out::Found(*v, seen_rights(*m)),
        None => Out::NotFound,
    }
}
