//! A linearizability checker for recorded histories: the Wing–Gong search with
//! Lowe's memoisation of (linearized set, model state) pairs. Calls whose outcome
//! is unknown (no response) may take effect at any point after their invocation,
//! or never.

use std::collections::HashSet;
use std::hash::Hash;
use std::string::String;
use std::vec::Vec;
use std::{format, vec};

/// A sequential specification.
pub trait Spec: Clone + Eq + Hash {
    /// A call.
    type Input: Clone + std::fmt::Debug;
    /// What it returns.
    type Output: Clone + PartialEq + std::fmt::Debug;
    /// Apply `input`; the output it gives.
    fn step(&mut self, input: &Self::Input) -> Self::Output;
}

/// One call of a history.
#[derive(Clone, Debug)]
pub struct Call<I, O> {
    /// Who made it (for explanations).
    pub client: usize,
    /// When it started.
    pub invoked: u64,
    /// When it returned and what; `None`: no response (outcome unknown).
    pub returned: Option<(u64, O)>,
    /// The call.
    pub input: I,
}

#[derive(Clone, Copy)]
struct Event {
    call: usize,
    is_return: bool,
    prev: usize,
    next: usize,
}

/// Is there an order of the calls, consistent with real time, in which the spec
/// gives every recorded output? Returns `Err` with a short explanation if not.
pub fn check<S: Spec>(init: &S, calls: &[Call<S::Input, S::Output>]) -> Result<(), String> {
    // Events sorted by time; a return before a call at the same instant (the call
    // did not start before the other ended). Unknown returns are at infinity.
    let mut evs: Vec<(u64, u8, usize)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        evs.push((c.invoked, 1, i));
        evs.push((c.returned.as_ref().map_or(u64::MAX, |r| r.0), 0, i));
    }
    evs.sort();
    // Doubly linked list with a head sentinel at index 0.
    let n = evs.len();
    let mut list: Vec<Event> = Vec::with_capacity(n + 1);
    list.push(Event { call: usize::MAX, is_return: false, prev: 0, next: 1 });
    let mut call_ev = vec![0usize; calls.len()];
    let mut ret_ev = vec![0usize; calls.len()];
    for (k, (_, kind, i)) in evs.iter().enumerate() {
        let idx = k + 1;
        list.push(Event {
            call: *i,
            is_return: *kind == 0,
            prev: k,
            next: if k + 1 == n { usize::MAX } else { idx + 1 },
        });
        if *kind == 0 { ret_ev[*i] = idx } else { call_ev[*i] = idx }
    }
    if n == 0 {
        return Ok(());
    }
    let unlink = |list: &mut Vec<Event>, e: usize| {
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = nx;
        if nx != usize::MAX {
            list[nx].prev = p;
        }
    };
    let relink = |list: &mut Vec<Event>, e: usize| {
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = e;
        if nx != usize::MAX {
            list[nx].prev = e;
        }
    };
    let mut completed_left = calls.iter().filter(|c| c.returned.is_some()).count();
    let mut linearized = vec![0u64; calls.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, S)> = HashSet::new();
    let mut stack: Vec<(usize, S)> = Vec::new();
    let mut state = init.clone();
    let mut e = list[0].next;
    let mut steps: u64 = 0;
    loop {
        if completed_left == 0 {
            return Ok(());
        }
        steps += 1;
        if steps > 50_000_000 {
            return Err("linearizability search too long".into());
        }
        if e == usize::MAX || list[e].is_return {
            // A call returned with nothing linearizable before it (or the end): undo.
            let Some((ce, prev_state)) = stack.pop() else {
                return Err(explain(calls, e, &list));
            };
            let i = list[ce].call;
            state = prev_state;
            linearized[i / 64] &= !(1 << (i % 64));
            if calls[i].returned.is_some() {
                completed_left += 1;
            }
            relink(&mut list, ret_ev[i]);
            relink(&mut list, ce);
            e = list[ce].next;
            continue;
        }
        let i = list[e].call;
        let mut next = state.clone();
        let out = next.step(&calls[i].input);
        let matches = calls[i].returned.as_ref().is_none_or(|(_, o)| *o == out);
        if matches {
            linearized[i / 64] |= 1 << (i % 64);
            if seen.insert((linearized.clone(), next.clone())) {
                stack.push((e, std::mem::replace(&mut state, next)));
                if calls[i].returned.is_some() {
                    completed_left -= 1;
                }
                unlink(&mut list, e);
                unlink(&mut list, ret_ev[i]);
                e = list[0].next;
                continue;
            }
            linearized[i / 64] &= !(1 << (i % 64));
        }
        e = list[e].next;
    }
}

fn explain<I: std::fmt::Debug, O: std::fmt::Debug>(calls: &[Call<I, O>], e: usize, list: &[Event]) -> String {
    if e == usize::MAX {
        return "not linearizable".into();
    }
    let c = &calls[list[e].call];
    format!(
        "not linearizable: no order fits the first calls; stuck before client {} {:?} -> {:?} (invoked {})",
        c.client, c.input, c.returned, c.invoked
    )
}
