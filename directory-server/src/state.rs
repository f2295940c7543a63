//! The directory state machine: a pure function of the ordered updates applied to
//! it. Queries read it without changing it. Capabilities are verified here, against
//! the state at the point in the order where the operation takes effect.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, OBJECT_MAX, Port, Rights, Status, restrict, verify};

use crate::ops::{InstallEntry, Lookup, Query, Reply, Update};
use crate::types::{MAX_BATCH, MAX_PATH_LEN};
use crate::types::{
    RIGHT_DELETE, RIGHT_MODIFY, Row, may_read, path_components, valid_capset, valid_columns, valid_name,
    visible_mask,
};

/// How many `STD_AGE` calls an untouched directory survives (Amoeba's default).
pub const MAX_LIFE: u8 = 24;

/// One directory: its random check, lifetime, column names and rows by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    /// Random check value of its owner capability.
    pub random: Check,
    /// `STD_AGE` calls left before it is discarded.
    pub life: u8,
    /// Column names (1..=4).
    pub columns: Vec<String>,
    /// Rows by name.
    pub rows: BTreeMap<String, Row>,
}

/// The whole replicated state of the directory service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// The service's put-port: every directory capability names it.
    pub port: Port,
    /// Random check of the service's super capability (object 0).
    pub super_random: Check,
    /// How many whole-service recoveries led to this state; anchors compare
    /// (epoch, position) so a recovered lineage beats anything left from before it.
    pub epoch: u32,
    /// Number of updates applied (successful or not): the position in the order.
    pub applied: u64,
    /// Where the search for a free object number starts.
    pub next_object: u32,
    /// The directories by object number (never 0).
    pub dirs: BTreeMap<u32, Directory>,
}

/// What a verified capability names.
struct Verified {
    object: u32,
    rights: Rights,
}

impl State {
    /// An empty service on `port` whose super capability has check `super_random`.
    pub fn new(port: Port, super_random: Check) -> State {
        State { port, super_random, epoch: 0, applied: 0, next_object: 1, dirs: BTreeMap::new() }
    }

    /// The owner capability of object 0 (create directories, age).
    pub fn super_capability(&self) -> Capability {
        Capability::owner(self.port, 0, self.super_random)
    }

    fn random_of(&self, object: u32) -> Option<Check> {
        if object == 0 { Some(self.super_random) } else { self.dirs.get(&object).map(|d| d.random) }
    }

    /// Verify `cap` against this service: right port, existing object, valid check.
    fn verify(&self, cap: &Capability) -> Result<Verified, Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let random = self.random_of(cap.object).ok_or(Status::CapBad)?;
        let rights = verify(&random, cap).map_err(|_| Status::CapBad)?;
        Ok(Verified { object: cap.object, rights })
    }

    /// Verify a directory capability (not object 0) and require `needed` rights.
    fn verify_dir(&self, cap: &Capability, needed: Rights) -> Result<u32, Status> {
        let v = self.verify(cap)?;
        if v.object == 0 {
            return Err(Status::ArgBad);
        }
        if !v.rights.contains(needed) {
            return Err(Status::Denied);
        }
        Ok(v.object)
    }

    /// A directory capability that may read rows: returns (object, rights).
    fn verify_reader(&self, cap: &Capability) -> Result<(u32, Rights), Status> {
        let v = self.verify(cap)?;
        if v.object == 0 {
            return Err(Status::ArgBad);
        }
        if !may_read(v.rights) {
            return Err(Status::Denied);
        }
        Ok((v.object, v.rights))
    }

    /// `cap` as seen through `mask`. Capabilities whose rights already fit pass
    /// unchanged; this service's own objects and owner capabilities of any server
    /// are restricted here (F(random XOR rights)); a restricted capability of
    /// another server cannot be narrowed without asking that server, so it is
    /// withheld (`None`) rather than handed out with too many rights.
    pub fn restrict_for(&self, cap: &Capability, mask: Rights) -> Option<Capability> {
        let rights = cap.rights & mask;
        if rights == cap.rights {
            return Some(*cap);
        }
        if cap.port == self.port {
            let random = self.random_of(cap.object)?;
            verify(&random, cap).ok()?;
            return Some(Capability { rights, check: restrict(&random, rights), ..*cap });
        }
        cap.restrict(mask).ok()
    }

    /// The row's capability set as a holder of `rights` sees it; `Denied` if
    /// nothing is left to see.
    fn visible(&self, row: &Row, rights: Rights) -> Result<Vec<Capability>, Status> {
        let mask = visible_mask(rights, &row.masks);
        let caps: Vec<Capability> = row.caps.iter().filter_map(|c| self.restrict_for(c, mask)).collect();
        if caps.is_empty() { Err(Status::Denied) } else { Ok(caps) }
    }

    // ------------------------------------------------------------------ updates

    /// Apply one update in the order. The position advances whether it succeeds or
    /// not (a failed update is still a step every replica takes).
    pub fn apply(&mut self, update: &Update) -> Result<Reply, Status> {
        self.applied += 1;
        match update {
            Update::Create { server, columns, check } => self.create(server, columns, *check),
            Update::Discard { dir } => self.discard(dir),
            Update::Append { dir, name, caps, masks } => self.append(dir, name, caps, masks),
            Update::Delete { dir, name } => self.delete(dir, name),
            Update::Replace { dir, name, expect, caps } => self.replace(dir, name, expect, caps),
            Update::Chmod { dir, name, masks } => self.chmod(dir, name, masks),
            Update::Install { entries } => self.install(entries),
            Update::Touch { cap } => self.touch(cap),
            Update::Age { server } => self.age(server),
        }
    }

    fn free_object(&self) -> Option<u32> {
        if self.dirs.len() >= OBJECT_MAX as usize {
            return None;
        }
        let mut obj = self.next_object.clamp(1, OBJECT_MAX);
        while self.dirs.contains_key(&obj) {
            obj = if obj >= OBJECT_MAX { 1 } else { obj + 1 };
        }
        Some(obj)
    }

    fn create(&mut self, server: &Capability, columns: &[String], check: Check) -> Result<Reply, Status> {
        self.verify(server)?;
        if !valid_columns(columns) {
            return Err(Status::ArgBad);
        }
        let object = self.free_object().ok_or(Status::NoSpace)?;
        self.next_object = if object >= OBJECT_MAX { 1 } else { object + 1 };
        let dir =
            Directory { random: check, life: MAX_LIFE, columns: columns.to_vec(), rows: BTreeMap::new() };
        self.dirs.insert(object, dir);
        Ok(Reply::Capability(Capability::owner(self.port, object, check)))
    }

    fn discard(&mut self, cap: &Capability) -> Result<Reply, Status> {
        let object = self.verify_dir(cap, RIGHT_DELETE)?;
        if !self.dirs[&object].rows.is_empty() {
            return Err(Status::Exists);
        }
        self.dirs.remove(&object);
        Ok(Reply::Done)
    }

    /// The directory for a modifying update, touched.
    fn modifiable(&mut self, cap: &Capability) -> Result<&mut Directory, Status> {
        let object = self.verify_dir(cap, RIGHT_MODIFY)?;
        let dir = self.dirs.get_mut(&object).ok_or(Status::CapBad)?;
        dir.life = MAX_LIFE;
        Ok(dir)
    }

    fn check_row(dir: &Directory, name: &str, caps: &[Capability], masks: &[Rights]) -> Result<(), Status> {
        if !valid_name(name) || !valid_capset(caps) || masks.len() != dir.columns.len() {
            return Err(Status::ArgBad);
        }
        Ok(())
    }

    fn append(
        &mut self,
        cap: &Capability,
        name: &str,
        caps: &[Capability],
        masks: &[Rights],
    ) -> Result<Reply, Status> {
        let dir = self.modifiable(cap)?;
        Self::check_row(dir, name, caps, masks)?;
        if dir.rows.contains_key(name) {
            return Err(Status::Exists);
        }
        dir.rows.insert(name.into(), Row { caps: caps.to_vec(), masks: masks.to_vec() });
        Ok(Reply::Done)
    }

    fn delete(&mut self, cap: &Capability, name: &str) -> Result<Reply, Status> {
        let dir = self.modifiable(cap)?;
        dir.rows.remove(name).map(|_| Reply::Done).ok_or(Status::NotFound)
    }

    /// Does the row, as `cap` sees it, hold exactly `expect`?
    fn holds(&self, cap: &Capability, row: &Row, expect: &[Capability]) -> bool {
        let rights = self.verify(cap).map(|v| v.rights).unwrap_or(Rights::NONE);
        self.visible(row, rights).is_ok_and(|seen| seen == expect)
    }

    fn replace(
        &mut self,
        cap: &Capability,
        name: &str,
        expect: &[Capability],
        caps: &[Capability],
    ) -> Result<Reply, Status> {
        if !valid_capset(caps) {
            return Err(Status::ArgBad);
        }
        let object = self.verify_dir(cap, RIGHT_MODIFY)?;
        let row = self.dirs[&object].rows.get(name).ok_or(Status::NotFound)?;
        if !self.holds(cap, row, expect) {
            return Err(Status::NotNow);
        }
        let dir = self.modifiable(cap)?;
        dir.rows.get_mut(name).ok_or(Status::NotFound)?.caps = caps.to_vec();
        Ok(Reply::Done)
    }

    fn chmod(&mut self, cap: &Capability, name: &str, masks: &[Rights]) -> Result<Reply, Status> {
        let dir = self.modifiable(cap)?;
        if masks.len() != dir.columns.len() {
            return Err(Status::ArgBad);
        }
        dir.rows.get_mut(name).ok_or(Status::NotFound)?.masks = masks.to_vec();
        Ok(Reply::Done)
    }

    /// Check one install entry against the current state.
    fn check_install(&self, e: &InstallEntry) -> Result<u32, Status> {
        let object = self.verify_dir(&e.dir, RIGHT_MODIFY)?;
        let dir = &self.dirs[&object];
        Self::check_row(dir, &e.name, &e.caps, &e.masks)?;
        if let Some(expect) = &e.expect {
            let row = dir.rows.get(&e.name).ok_or(Status::NotFound)?;
            if !self.holds(&e.dir, row, expect) {
                return Err(Status::NotNow);
            }
        }
        Ok(object)
    }

    fn install(&mut self, entries: &[InstallEntry]) -> Result<Reply, Status> {
        if entries.is_empty() || entries.len() > MAX_BATCH {
            return Err(Status::ArgBad);
        }
        let mut targets = Vec::with_capacity(entries.len());
        let mut seen = BTreeSet::new();
        for e in entries {
            let object = self.check_install(e)?;
            if !seen.insert((object, e.name.as_str())) {
                return Err(Status::ArgBad);
            }
            targets.push(object);
        }
        for (e, object) in entries.iter().zip(targets) {
            let dir = self.dirs.get_mut(&object).ok_or(Status::CapBad)?;
            dir.life = MAX_LIFE;
            dir.rows.insert(e.name.clone(), Row { caps: e.caps.clone(), masks: e.masks.clone() });
        }
        Ok(Reply::Done)
    }

    fn touch(&mut self, cap: &Capability) -> Result<Reply, Status> {
        let v = self.verify(cap)?;
        if let Some(dir) = self.dirs.get_mut(&v.object) {
            dir.life = MAX_LIFE;
        }
        Ok(Reply::Done)
    }

    fn age(&mut self, server: &Capability) -> Result<Reply, Status> {
        let v = self.verify(server)?;
        if v.object != 0 || !v.rights.is_owner() {
            return Err(Status::Denied);
        }
        let before = self.dirs.len();
        self.dirs.retain(|_, d| {
            d.life = d.life.saturating_sub(1);
            d.life > 0
        });
        Ok(Reply::Count((before - self.dirs.len()) as u32))
    }

    // ------------------------------------------------------------------ queries

    /// Answer a query from the current state.
    pub fn query(&self, query: &Query) -> Result<Reply, Status> {
        match query {
            Query::List { dir } => self.list(dir),
            Query::GetMasks { dir, name } => {
                let (object, _) = self.verify_reader(dir)?;
                let row = self.dirs[&object].rows.get(name.as_str()).ok_or(Status::NotFound)?;
                Ok(Reply::Masks(row.masks.clone()))
            }
            Query::Lookup { dir, path } => self.lookup_path(dir, path).map(Reply::Lookup),
            Query::SetLookup { items } => {
                if items.is_empty() || items.len() > MAX_BATCH {
                    return Err(Status::ArgBad);
                }
                Ok(Reply::SetLookup(items.iter().map(|(d, n)| self.lookup_name(d, n)).collect()))
            }
            Query::Info { cap } => self.info(cap),
            Query::Restrict { cap, mask } => {
                let v = self.verify(cap)?;
                let random = self.random_of(v.object).ok_or(Status::CapBad)?;
                let rights = v.rights & *mask;
                Ok(Reply::Capability(Capability { rights, check: restrict(&random, rights), ..*cap }))
            }
            Query::Random { object } => Ok(Reply::Random(self.random_of(*object))),
        }
    }

    fn list(&self, cap: &Capability) -> Result<Reply, Status> {
        let (object, _) = self.verify_reader(cap)?;
        let dir = &self.dirs[&object];
        let rows = dir.rows.iter().map(|(n, r)| (n.clone(), r.masks.clone())).collect();
        Ok(Reply::List { columns: dir.columns.clone(), rows })
    }

    /// One name in one directory, restricted by the holder's columns.
    pub fn lookup_name(&self, cap: &Capability, name: &str) -> Result<Vec<Capability>, Status> {
        if !valid_name(name) {
            return Err(Status::ArgBad);
        }
        let (object, rights) = self.verify_reader(cap)?;
        let row = self.dirs[&object].rows.get(name).ok_or(Status::NotFound)?;
        self.visible(row, rights)
    }

    /// Walk `path` from `start`. A component whose capability set has no
    /// capability of this service ends the walk with [`Lookup::Continue`].
    pub fn lookup_path(&self, start: &Capability, path: &str) -> Result<Lookup, Status> {
        if path.len() > MAX_PATH_LEN {
            return Err(Status::ArgBad);
        }
        let parts = path_components(path)?;
        self.verify(start)?;
        let mut caps = alloc::vec![*start];
        for (i, name) in parts.iter().enumerate() {
            let here = match caps.iter().find(|c| c.port == self.port) {
                Some(c) => *c,
                None => {
                    let rest = parts[i..].join("/");
                    return Ok(Lookup::Continue { caps, rest });
                }
            };
            caps = self.lookup_name(&here, name)?;
        }
        Ok(Lookup::Found(caps))
    }

    fn info(&self, cap: &Capability) -> Result<Reply, Status> {
        let v = self.verify(cap)?;
        let text = match self.dirs.get(&v.object) {
            None => format!("directory server: {} directories", self.dirs.len()),
            Some(d) => format!("directory: {} rows; columns {}", d.rows.len(), d.columns.join(" ")),
        };
        Ok(Reply::Info(text))
    }
}
