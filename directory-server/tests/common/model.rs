//! A deliberately simple model of the directory service (linear lists, no
//! sharing with the crate's code beyond the capability primitives), against which
//! the real state machine is checked.

#![allow(dead_code)]

use amoeba_abi::{Capability, Check, Port, Rights, Status, restrict};
use directory_server::{InstallEntry, Lookup, Query, Reply, Update};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MRow {
    pub name: String,
    pub caps: Vec<Capability>,
    pub masks: Vec<Rights>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MDir {
    pub object: u32,
    pub random: Check,
    pub life: u8,
    pub columns: Vec<String>,
    pub rows: Vec<MRow>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub port: Port,
    pub super_random: Check,
    pub next: u32,
    pub dirs: Vec<MDir>,
}

fn name_ok(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && n != "." && n != ".." && !n.contains('/') && !n.contains('\0')
}

impl Model {
    pub fn new(port: Port, super_random: Check) -> Model {
        Model { port, super_random, next: 1, dirs: Vec::new() }
    }

    fn random(&self, object: u32) -> Option<Check> {
        if object == 0 {
            return Some(self.super_random);
        }
        self.dirs.iter().find(|d| d.object == object).map(|d| d.random)
    }

    /// Rights of a valid capability of ours.
    fn rights(&self, cap: &Capability) -> Result<Rights, Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let random = self.random(cap.object).ok_or(Status::CapBad)?;
        if restrict(&random, cap.rights) == cap.check { Ok(cap.rights) } else { Err(Status::CapBad) }
    }

    fn dir_index(&self, cap: &Capability, need: u8) -> Result<usize, Status> {
        let rights = self.rights(cap)?;
        if cap.object == 0 {
            return Err(Status::ArgBad);
        }
        if rights.0 & need != need {
            return Err(Status::Denied);
        }
        Ok(self.dirs.iter().position(|d| d.object == cap.object).unwrap())
    }

    fn reader(&self, cap: &Capability) -> Result<(usize, Rights), Status> {
        let rights = self.rights(cap)?;
        if cap.object == 0 {
            return Err(Status::ArgBad);
        }
        if rights.0 & 0x0f == 0 {
            return Err(Status::Denied);
        }
        Ok((self.dirs.iter().position(|d| d.object == cap.object).unwrap(), rights))
    }

    fn see(&self, cap: &Capability, mask: Rights) -> Option<Capability> {
        let want = Rights(cap.rights.0 & mask.0);
        if want == cap.rights {
            Some(*cap)
        } else if cap.port == self.port {
            let random = self.random(cap.object)?;
            (restrict(&random, cap.rights) == cap.check).then(|| Capability {
                rights: want,
                check: restrict(&random, want),
                ..*cap
            })
        } else if cap.rights == Rights::ALL {
            Some(Capability { rights: want, check: restrict(&cap.check, want), ..*cap })
        } else {
            None
        }
    }

    fn seen(&self, row: &MRow, rights: Rights) -> Result<Vec<Capability>, Status> {
        let mut mask = 0u8;
        for (c, m) in row.masks.iter().enumerate() {
            if rights.0 & (1 << c) != 0 {
                mask |= m.0;
            }
        }
        let caps: Vec<_> = row.caps.iter().filter_map(|c| self.see(c, Rights(mask))).collect();
        if caps.is_empty() { Err(Status::Denied) } else { Ok(caps) }
    }

    fn row_ok(d: &MDir, name: &str, caps: &[Capability], masks: &[Rights]) -> bool {
        name_ok(name) && !caps.is_empty() && caps.len() <= 8 && masks.len() == d.columns.len()
    }

    pub fn apply(&mut self, u: &Update) -> Result<Reply, Status> {
        match u {
            Update::Create { server, columns, check } => {
                self.rights(server)?;
                let distinct = columns.iter().enumerate().all(|(i, c)| !columns[..i].contains(c));
                if columns.is_empty()
                    || columns.len() > 4
                    || !distinct
                    || columns.iter().any(|c| c.is_empty() || c.len() > 32 || c.contains('\0'))
                {
                    return Err(Status::ArgBad);
                }
                let mut obj = self.next.max(1);
                while self.dirs.iter().any(|d| d.object == obj) {
                    obj += 1;
                }
                self.next = obj + 1;
                self.dirs.push(MDir {
                    object: obj,
                    random: *check,
                    life: 24,
                    columns: columns.clone(),
                    rows: vec![],
                });
                Ok(Reply::Capability(Capability::owner(self.port, obj, *check)))
            }
            Update::Discard { dir } => {
                let i = self.dir_index(dir, 0x80)?;
                if !self.dirs[i].rows.is_empty() {
                    return Err(Status::Exists);
                }
                self.dirs.remove(i);
                Ok(Reply::Done)
            }
            Update::Append { dir, name, caps, masks } => {
                let i = self.dir_index(dir, 0x40)?;
                self.dirs[i].life = 24;
                if !Self::row_ok(&self.dirs[i], name, caps, masks) {
                    return Err(Status::ArgBad);
                }
                if self.dirs[i].rows.iter().any(|r| &r.name == name) {
                    return Err(Status::Exists);
                }
                self.dirs[i].rows.push(MRow { name: name.clone(), caps: caps.clone(), masks: masks.clone() });
                Ok(Reply::Done)
            }
            Update::Delete { dir, name } => {
                let i = self.dir_index(dir, 0x40)?;
                self.dirs[i].life = 24;
                let j = self.dirs[i].rows.iter().position(|r| &r.name == name).ok_or(Status::NotFound)?;
                self.dirs[i].rows.remove(j);
                Ok(Reply::Done)
            }
            Update::Replace { dir, name, expect, caps } => {
                if caps.is_empty() || caps.len() > 8 {
                    return Err(Status::ArgBad);
                }
                let i = self.dir_index(dir, 0x40)?;
                let rights = self.rights(dir)?;
                let j = self.dirs[i].rows.iter().position(|r| &r.name == name).ok_or(Status::NotFound)?;
                if self.seen(&self.dirs[i].rows[j], rights).as_ref() != Ok(expect) {
                    return Err(Status::NotNow);
                }
                self.dirs[i].life = 24;
                self.dirs[i].rows[j].caps = caps.clone();
                Ok(Reply::Done)
            }
            Update::Chmod { dir, name, masks } => {
                let i = self.dir_index(dir, 0x40)?;
                self.dirs[i].life = 24;
                if masks.len() != self.dirs[i].columns.len() {
                    return Err(Status::ArgBad);
                }
                let j = self.dirs[i].rows.iter().position(|r| &r.name == name).ok_or(Status::NotFound)?;
                self.dirs[i].rows[j].masks = masks.clone();
                Ok(Reply::Done)
            }
            Update::Install { entries } => self.install(entries),
            Update::Touch { cap } => {
                self.rights(cap)?;
                if let Some(d) = self.dirs.iter_mut().find(|d| d.object == cap.object) {
                    d.life = 24;
                }
                Ok(Reply::Done)
            }
            Update::Age { server } => {
                let r = self.rights(server)?;
                if server.object != 0 || r != Rights::ALL {
                    return Err(Status::Denied);
                }
                let before = self.dirs.len();
                for d in &mut self.dirs {
                    d.life = d.life.saturating_sub(1);
                }
                self.dirs.retain(|d| d.life > 0);
                Ok(Reply::Count((before - self.dirs.len()) as u32))
            }
        }
    }

    fn install(&mut self, entries: &[InstallEntry]) -> Result<Reply, Status> {
        if entries.is_empty() || entries.len() > 32 {
            return Err(Status::ArgBad);
        }
        let mut targets: Vec<(usize, &str)> = Vec::new();
        for e in entries {
            let i = self.dir_index(&e.dir, 0x40)?;
            if !Self::row_ok(&self.dirs[i], &e.name, &e.caps, &e.masks) {
                return Err(Status::ArgBad);
            }
            if let Some(expect) = &e.expect {
                let row = self.dirs[i].rows.iter().find(|r| r.name == e.name).ok_or(Status::NotFound)?;
                let rights = self.rights(&e.dir)?;
                if self.seen(row, rights).as_ref() != Ok(expect) {
                    return Err(Status::NotNow);
                }
            }
            if targets.contains(&(i, e.name.as_str())) {
                return Err(Status::ArgBad);
            }
            targets.push((i, &e.name));
        }
        for e in entries {
            let i = self.dirs.iter().position(|d| d.object == e.dir.object).unwrap();
            let d = &mut self.dirs[i];
            d.life = 24;
            let row = MRow { name: e.name.clone(), caps: e.caps.clone(), masks: e.masks.clone() };
            match d.rows.iter().position(|r| r.name == e.name) {
                Some(j) => d.rows[j] = row,
                None => d.rows.push(row),
            }
        }
        Ok(Reply::Done)
    }

    pub fn query(&self, q: &Query) -> Result<Reply, Status> {
        match q {
            Query::List { dir } => {
                let (i, _) = self.reader(dir)?;
                let mut rows: Vec<_> =
                    self.dirs[i].rows.iter().map(|r| (r.name.clone(), r.masks.clone())).collect();
                rows.sort();
                Ok(Reply::List { columns: self.dirs[i].columns.clone(), rows })
            }
            Query::GetMasks { dir, name } => {
                let (i, _) = self.reader(dir)?;
                let row = self.dirs[i].rows.iter().find(|r| &r.name == name).ok_or(Status::NotFound)?;
                Ok(Reply::Masks(row.masks.clone()))
            }
            Query::Lookup { dir, path } => self.walk(dir, path).map(Reply::Lookup),
            Query::SetLookup { items } => {
                if items.is_empty() || items.len() > 32 {
                    return Err(Status::ArgBad);
                }
                Ok(Reply::SetLookup(items.iter().map(|(d, n)| self.lookup(d, n)).collect()))
            }
            Query::Info { cap } => {
                self.rights(cap)?;
                Ok(Reply::Info(match self.dirs.iter().find(|d| d.object == cap.object) {
                    None => format!("directory server: {} directories", self.dirs.len()),
                    Some(d) => format!("directory: {} rows; columns {}", d.rows.len(), d.columns.join(" ")),
                }))
            }
            Query::Restrict { cap, mask } => {
                let r = self.rights(cap)?;
                let random = self.random(cap.object).unwrap();
                let want = Rights(r.0 & mask.0);
                Ok(Reply::Capability(Capability { rights: want, check: restrict(&random, want), ..*cap }))
            }
            Query::Random { object } => Ok(Reply::Random(self.random(*object))),
        }
    }

    pub fn lookup(&self, dir: &Capability, name: &str) -> Result<Vec<Capability>, Status> {
        if !name_ok(name) {
            return Err(Status::ArgBad);
        }
        let (i, rights) = self.reader(dir)?;
        let row = self.dirs[i].rows.iter().find(|r| r.name == name).ok_or(Status::NotFound)?;
        self.seen(row, rights)
    }

    fn walk(&self, start: &Capability, path: &str) -> Result<Lookup, Status> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if path.len() > 4096 || parts.iter().any(|p| !name_ok(p)) {
            return Err(Status::ArgBad);
        }
        self.rights(start)?;
        let mut caps = vec![*start];
        for (k, p) in parts.iter().enumerate() {
            let Some(here) = caps.iter().find(|c| c.port == self.port).copied() else {
                return Ok(Lookup::Continue { caps, rest: parts[k..].join("/") });
            };
            caps = self.lookup(&here, p)?;
        }
        Ok(Lookup::Found(caps))
    }
}
