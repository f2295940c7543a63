//! The sequential specification of files by path, as the workstation's `put`,
//! `get` and `rm` use them: a path names one file or nothing; `put` makes it
//! name new contents (replacing what was there), `get` returns what it names,
//! `rm` removes it. Contents are told apart by a value each `put` writes once.
//!
//! Linearizability is local (Herlihy and Wing): a history of several paths is
//! linearizable if and only if each path's own history is, so [`check_paths`]
//! checks each path on its own, which keeps the search small.

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use super::lin::{Call, Spec, check};

/// A call on one path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileCall {
    /// Store contents with this value at the path.
    Put(u32),
    /// Read the path.
    Get,
    /// Remove the path.
    Rm,
}

/// What a call answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileAnswer {
    /// Done.
    Ok,
    /// The contents of the put that wrote this value, whole.
    Value(u32),
    /// No such path.
    NotFound,
    /// Anything the model never answers (contents of no put, a torn file, an
    /// unexpected error): never linearizable.
    Other(String),
}

/// The model of one path: the value of the file it names, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathCell(pub Option<u32>);

impl Spec for PathCell {
    type Input = FileCall;
    type Output = FileAnswer;
    fn step(&mut self, input: &FileCall) -> FileAnswer {
        match input {
            FileCall::Put(v) => {
                self.0 = Some(*v);
                FileAnswer::Ok
            }
            FileCall::Get => self.0.map_or(FileAnswer::NotFound, FileAnswer::Value),
            FileCall::Rm => match self.0.take() {
                Some(_) => FileAnswer::Ok,
                None => FileAnswer::NotFound,
            },
        }
    }
}

/// Checks a history of calls on several paths (each call with its path), every
/// path starting with no file: `Err` names the first path whose history is not
/// linearizable, and why.
pub fn check_paths<P: Ord + Clone + std::fmt::Debug>(
    calls: &[(P, Call<FileCall, FileAnswer>)],
) -> Result<(), String> {
    let mut by_path: BTreeMap<P, Vec<Call<FileCall, FileAnswer>>> = BTreeMap::new();
    for (path, call) in calls {
        by_path.entry(path.clone()).or_default().push(call.clone());
    }
    for (path, history) in &by_path {
        check(&PathCell::default(), history).map_err(|why| std::format!("path {path:?}: {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn done(
        client: usize,
        at: (u64, u64),
        input: FileCall,
        answer: FileAnswer,
    ) -> Call<FileCall, FileAnswer> {
        Call { client, invoked: at.0, returned: Some((at.1, answer)), input }
    }

    #[test]
    fn a_read_during_a_replace_sees_the_old_or_the_new_file() {
        let put = |v, at| done(0, at, FileCall::Put(v), FileAnswer::Ok);
        for seen in [1, 2] {
            let h = vec![
                put(1, (0, 10)),
                put(2, (20, 40)),
                done(1, (25, 30), FileCall::Get, FileAnswer::Value(seen)),
            ];
            assert_eq!(check(&PathCell::default(), &h), Ok(()));
        }
        // "No such path" for a path that existed throughout is not linearizable.
        let h =
            vec![put(1, (0, 10)), put(2, (20, 40)), done(1, (25, 30), FileCall::Get, FileAnswer::NotFound)];
        assert!(check(&PathCell::default(), &h).is_err());
        // Nor is a value nobody wrote, or a torn file.
        for answer in [FileAnswer::Value(3), FileAnswer::Other("torn".into())] {
            let h = vec![put(1, (0, 10)), done(1, (25, 30), FileCall::Get, answer)];
            assert!(check(&PathCell::default(), &h).is_err());
        }
    }

    #[test]
    fn a_read_during_a_remove_may_find_nothing() {
        let h = vec![
            done(0, (0, 10), FileCall::Put(1), FileAnswer::Ok),
            done(0, (20, 40), FileCall::Rm, FileAnswer::Ok),
            done(1, (25, 30), FileCall::Get, FileAnswer::NotFound),
            done(1, (45, 50), FileCall::Get, FileAnswer::NotFound),
        ];
        assert_eq!(check(&PathCell::default(), &h), Ok(()));
        let h = vec![
            done(0, (0, 10), FileCall::Put(1), FileAnswer::Ok),
            done(0, (20, 40), FileCall::Rm, FileAnswer::Ok),
            done(1, (45, 50), FileCall::Get, FileAnswer::Value(1)),
        ];
        assert!(check(&PathCell::default(), &h).is_err());
    }

    #[test]
    fn paths_are_checked_apart() {
        let calls = vec![
            ("a", done(0, (0, 10), FileCall::Put(1), FileAnswer::Ok)),
            ("b", done(1, (20, 30), FileCall::Get, FileAnswer::NotFound)),
            ("a", done(1, (20, 30), FileCall::Get, FileAnswer::Value(1))),
        ];
        assert_eq!(check_paths(&calls), Ok(()));
        let calls = vec![
            ("a", done(0, (0, 10), FileCall::Put(1), FileAnswer::Ok)),
            ("b", done(1, (20, 30), FileCall::Get, FileAnswer::Value(1))),
        ];
        assert!(check_paths(&calls).unwrap_err().contains("\"b\""));
    }
}
