//! Compact binary encodings of updates, queries, replies and whole states.
//!
//! Every top-level encoding starts with [`FORMAT_VERSION`] and a kind tag; integers
//! are big endian; strings and lists carry a length prefix. Decoding checks every
//! length against the bytes left and every value against the model's limits, and
//! returns [`DecodeError`] on anything malformed — it never panics and never
//! allocates more than the input could describe.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use amoeba_abi::{Capability, Check, Port, Rights, Status};

use crate::ops::{InstallEntry, Lookup, Query, Reply, Request, Update};
use crate::state::{Directory, State};
use crate::types::{MAX_BATCH, MAX_CAPSET, Row, valid_capset, valid_columns, valid_name};

/// Version byte at the start of every encoding.
pub const FORMAT_VERSION: u8 = 1;

/// Why bytes could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Ran out of bytes.
    Truncated,
    /// Bytes left over after the value.
    Trailing,
    /// Unknown version byte.
    Version,
    /// Unknown tag.
    Tag,
    /// A value outside the model's limits (bad name, empty set, ...).
    Invalid,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DecodeError::Truncated => "truncated",
            DecodeError::Trailing => "trailing bytes",
            DecodeError::Version => "unknown format version",
            DecodeError::Tag => "unknown tag",
            DecodeError::Invalid => "invalid value",
        };
        f.write_str(s)
    }
}

impl core::error::Error for DecodeError {}

/// Appends encoded values to a buffer: the shared writer, with this
/// format's strings, capabilities and masks on top.
#[derive(Default)]
pub struct Writer(amoeba_abi::wire::Writer);

impl core::ops::Deref for Writer {
    type Target = amoeba_abi::wire::Writer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Writer {
    /// A writer that appends to `buf`.
    pub fn from_vec(buf: Vec<u8>) -> Writer {
        Writer(amoeba_abi::wire::Writer::from_vec(buf))
    }
    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0.buf
    }
    /// A writer that starts with the version byte and `tag`.
    pub fn tagged(tag: u8) -> Writer {
        Writer::from_vec(alloc::vec![FORMAT_VERSION, tag])
    }
    /// Bytes with a u32 length.
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.raw(b);
    }
    /// A string with a u16 length (every string of the model is shorter).
    pub fn str(&mut self, s: &str) {
        self.u16(s.len() as u16);
        self.raw(s.as_bytes());
    }
    /// A capability (16 bytes).
    pub fn cap(&mut self, c: &Capability) {
        self.raw(&c.encode());
    }
    /// A capability set (u8 count).
    pub fn caps(&mut self, caps: &[Capability]) {
        self.u8(caps.len() as u8);
        caps.iter().for_each(|c| self.cap(c));
    }
    /// Masks (u8 count, one byte each).
    pub fn masks(&mut self, masks: &[Rights]) {
        self.u8(masks.len() as u8);
        masks.iter().for_each(|m| self.u8(m.0));
    }
    /// A status code.
    pub fn status(&mut self, s: Status) {
        self.u32(i32::from(s) as u32);
    }
}

/// Reads encoded values from a slice: the shared reader, with this format's
/// strings, capabilities and masks on top.
pub struct Reader<'a>(amoeba_abi::wire::Reader<'a>);

impl<'a> core::ops::Deref for Reader<'a> {
    type Target = amoeba_abi::wire::Reader<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<amoeba_abi::wire::Truncated> for DecodeError {
    fn from(_: amoeba_abi::wire::Truncated) -> DecodeError {
        DecodeError::Truncated
    }
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader(amoeba_abi::wire::Reader::new(buf))
    }
    /// A reader that first checks the version byte and returns the tag.
    pub fn tagged(buf: &'a [u8]) -> Result<(Reader<'a>, u8), DecodeError> {
        let mut r = Reader::new(buf);
        if r.u8()? != FORMAT_VERSION {
            return Err(DecodeError::Version);
        }
        let tag = r.u8()?;
        Ok((r, tag))
    }
    /// Bytes with a u32 length.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?)
    }
    /// A UTF-8 string with a u16 length.
    pub fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        core::str::from_utf8(b).map(String::from).map_err(|_| DecodeError::Invalid)
    }
    /// A row name.
    pub fn name(&mut self) -> Result<String, DecodeError> {
        let s = self.str()?;
        if valid_name(&s) { Ok(s) } else { Err(DecodeError::Invalid) }
    }
    /// A capability.
    pub fn cap(&mut self) -> Result<Capability, DecodeError> {
        Ok(Capability::decode(&self.array()?))
    }
    /// A check value.
    pub fn check(&mut self) -> Result<Check, DecodeError> {
        Ok(Check(self.array()?))
    }
    /// A capability set of 1..=MAX_CAPSET.
    pub fn caps(&mut self) -> Result<Vec<Capability>, DecodeError> {
        let n = self.u8()? as usize;
        if n == 0 || n > MAX_CAPSET {
            return Err(DecodeError::Invalid);
        }
        (0..n).map(|_| self.cap()).collect()
    }
    /// Column masks (1..=4).
    pub fn masks(&mut self) -> Result<Vec<Rights>, DecodeError> {
        let n = self.u8()? as usize;
        if n == 0 || n > crate::types::SP_MAXCOLUMNS {
            return Err(DecodeError::Invalid);
        }
        (0..n).map(|_| Ok(Rights(self.u8()?))).collect()
    }
    /// A status code (a known one).
    pub fn status(&mut self) -> Result<Status, DecodeError> {
        Status::try_from(self.u32()? as i32).map_err(|_| DecodeError::Invalid)
    }
    /// A count of items each at least `min_size` bytes long: refuses counts the
    /// remaining bytes could not hold, so garbage cannot make us allocate.
    pub fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }
    /// Succeeds only if every byte was used.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.is_empty() { Ok(()) } else { Err(DecodeError::Trailing) }
    }
}

// ------------------------------------------------------------------ updates

const UPDATE_CREATE: u8 = 1;
const UPDATE_DISCARD: u8 = 2;
const UPDATE_APPEND: u8 = 3;
const UPDATE_DELETE: u8 = 4;
const UPDATE_REPLACE: u8 = 5;
const UPDATE_CHMOD: u8 = 6;
const UPDATE_INSTALL: u8 = 7;
const UPDATE_TOUCH: u8 = 8;
const UPDATE_AGE: u8 = 9;

/// Shortest encoding of one install entry, for bounding counts.
const MIN_INSTALL_ENTRY: usize = 16 + 2 + 1 + 1 + 16 + 1 + 1 + 1;

fn put_columns(w: &mut Writer, columns: &[String]) {
    w.u8(columns.len() as u8);
    columns.iter().for_each(|c| w.str(c));
}

fn get_columns(r: &mut Reader<'_>) -> Result<Vec<String>, DecodeError> {
    let n = r.u8()? as usize;
    let cols = (0..n).map(|_| r.str()).collect::<Result<Vec<_>, _>>()?;
    if valid_columns(&cols) { Ok(cols) } else { Err(DecodeError::Invalid) }
}

impl Update {
    /// Append the encoding (without version byte) to `w`.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Update::Create { server, columns, check } => {
                w.u8(UPDATE_CREATE);
                w.cap(server);
                put_columns(w, columns);
                w.raw(&check.0);
            }
            Update::Discard { dir } => {
                w.u8(UPDATE_DISCARD);
                w.cap(dir);
            }
            Update::Append { dir, name, caps, masks } => {
                w.u8(UPDATE_APPEND);
                w.cap(dir);
                w.str(name);
                w.caps(caps);
                w.masks(masks);
            }
            Update::Delete { dir, name } => {
                w.u8(UPDATE_DELETE);
                w.cap(dir);
                w.str(name);
            }
            Update::Replace { dir, name, expect, caps } => {
                w.u8(UPDATE_REPLACE);
                w.cap(dir);
                w.str(name);
                w.caps(expect);
                w.caps(caps);
            }
            Update::Chmod { dir, name, masks } => {
                w.u8(UPDATE_CHMOD);
                w.cap(dir);
                w.str(name);
                w.masks(masks);
            }
            Update::Install { entries } => {
                w.u8(UPDATE_INSTALL);
                w.u32(entries.len() as u32);
                entries.iter().for_each(|e| write_install_entry(w, e));
            }
            Update::Touch { cap } => {
                w.u8(UPDATE_TOUCH);
                w.cap(cap);
            }
            Update::Age { server } => {
                w.u8(UPDATE_AGE);
                w.cap(server);
            }
        }
    }

    /// Read an update written by [`Update::write`].
    pub fn read(r: &mut Reader<'_>) -> Result<Update, DecodeError> {
        Ok(match r.u8()? {
            UPDATE_CREATE => Update::Create { server: r.cap()?, columns: get_columns(r)?, check: r.check()? },
            UPDATE_DISCARD => Update::Discard { dir: r.cap()? },
            UPDATE_APPEND => {
                Update::Append { dir: r.cap()?, name: r.name()?, caps: r.caps()?, masks: r.masks()? }
            }
            UPDATE_DELETE => Update::Delete { dir: r.cap()?, name: r.name()? },
            UPDATE_REPLACE => {
                Update::Replace { dir: r.cap()?, name: r.name()?, expect: r.caps()?, caps: r.caps()? }
            }
            UPDATE_CHMOD => Update::Chmod { dir: r.cap()?, name: r.name()?, masks: r.masks()? },
            UPDATE_INSTALL => {
                let n = r.count(MIN_INSTALL_ENTRY)?;
                if n == 0 || n > MAX_BATCH {
                    return Err(DecodeError::Invalid);
                }
                let entries = (0..n).map(|_| read_install_entry(r)).collect::<Result<_, _>>()?;
                Update::Install { entries }
            }
            UPDATE_TOUCH => Update::Touch { cap: r.cap()? },
            UPDATE_AGE => Update::Age { server: r.cap()? },
            _ => return Err(DecodeError::Tag),
        })
    }

    /// The versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::from_vec(alloc::vec![FORMAT_VERSION]);
        self.write(&mut w);
        w.into_bytes()
    }

    /// Decode [`Update::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Update, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT_VERSION {
            return Err(DecodeError::Version);
        }
        let u = Update::read(&mut r)?;
        r.finish()?;
        Ok(u)
    }
}

fn write_install_entry(w: &mut Writer, e: &InstallEntry) {
    w.cap(&e.dir);
    w.str(&e.name);
    w.caps(&e.caps);
    w.masks(&e.masks);
    match &e.expect {
        None => w.u8(0),
        Some(set) => {
            w.u8(1);
            w.caps(set);
        }
    }
}

fn read_install_entry(r: &mut Reader<'_>) -> Result<InstallEntry, DecodeError> {
    let (dir, name, caps, masks) = (r.cap()?, r.name()?, r.caps()?, r.masks()?);
    let expect = match r.u8()? {
        0 => None,
        1 => Some(r.caps()?),
        _ => return Err(DecodeError::Tag),
    };
    Ok(InstallEntry { dir, name, caps, masks, expect })
}

// ------------------------------------------------------------------ queries

const QUERY_LIST: u8 = 1;
const QUERY_GETMASKS: u8 = 2;
const QUERY_LOOKUP: u8 = 3;
const QUERY_SETLOOKUP: u8 = 4;
const QUERY_INFO: u8 = 5;
const QUERY_RESTRICT: u8 = 6;
const QUERY_RANDOM: u8 = 7;

impl Query {
    /// Append the encoding (without version byte) to `w`.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Query::List { dir } => {
                w.u8(QUERY_LIST);
                w.cap(dir);
            }
            Query::GetMasks { dir, name } => {
                w.u8(QUERY_GETMASKS);
                w.cap(dir);
                w.str(name);
            }
            Query::Lookup { dir, path } => {
                w.u8(QUERY_LOOKUP);
                w.cap(dir);
                w.str(path);
            }
            Query::SetLookup { items } => {
                w.u8(QUERY_SETLOOKUP);
                w.u32(items.len() as u32);
                for (dir, name) in items {
                    w.cap(dir);
                    w.str(name);
                }
            }
            Query::Info { cap } => {
                w.u8(QUERY_INFO);
                w.cap(cap);
            }
            Query::Restrict { cap, mask } => {
                w.u8(QUERY_RESTRICT);
                w.cap(cap);
                w.u8(mask.0);
            }
            Query::Random { object } => {
                w.u8(QUERY_RANDOM);
                w.u32(*object);
            }
        }
    }

    /// Read a query written by [`Query::write`].
    pub fn read(r: &mut Reader<'_>) -> Result<Query, DecodeError> {
        Ok(match r.u8()? {
            QUERY_LIST => Query::List { dir: r.cap()? },
            QUERY_GETMASKS => Query::GetMasks { dir: r.cap()?, name: r.name()? },
            QUERY_LOOKUP => Query::Lookup { dir: r.cap()?, path: r.str()? },
            QUERY_SETLOOKUP => {
                let n = r.count(16 + 3)?;
                if n == 0 || n > MAX_BATCH {
                    return Err(DecodeError::Invalid);
                }
                let items = (0..n).map(|_| Ok((r.cap()?, r.name()?))).collect::<Result<_, DecodeError>>()?;
                Query::SetLookup { items }
            }
            QUERY_INFO => Query::Info { cap: r.cap()? },
            QUERY_RESTRICT => Query::Restrict { cap: r.cap()?, mask: Rights(r.u8()?) },
            QUERY_RANDOM => Query::Random { object: r.u32()? },
            _ => return Err(DecodeError::Tag),
        })
    }
}

const REQUEST_QUERY: u8 = 1;
const REQUEST_UPDATE: u8 = 2;

impl Request {
    /// The versioned encoding a client puts in its request buffer.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Query(q) => {
                let mut w = Writer::tagged(REQUEST_QUERY);
                q.write(&mut w);
                w.into_bytes()
            }
            Request::Update(u) => {
                let mut w = Writer::tagged(REQUEST_UPDATE);
                u.write(&mut w);
                w.into_bytes()
            }
        }
    }

    /// Decode a request buffer.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let (mut r, tag) = Reader::tagged(bytes)?;
        let req = match tag {
            REQUEST_QUERY => Request::Query(Query::read(&mut r)?),
            REQUEST_UPDATE => Request::Update(Update::read(&mut r)?),
            _ => return Err(DecodeError::Tag),
        };
        r.finish()?;
        Ok(req)
    }
}

// ------------------------------------------------------------------ replies

const REPLY_ERROR: u8 = 0;
const REPLY_DONE: u8 = 1;
const REPLY_CAPABILITY: u8 = 2;
const REPLY_COUNT: u8 = 3;
const REPLY_LIST: u8 = 4;
const REPLY_MASKS: u8 = 5;
const REPLY_FOUND: u8 = 6;
const REPLY_CONTINUE: u8 = 7;
const REPLY_SETLOOKUP: u8 = 8;
const REPLY_INFO: u8 = 9;
const REPLY_RANDOM: u8 = 10;

/// Encode a reply (or an error status) for the reply buffer.
pub fn encode_reply(reply: &Result<Reply, Status>) -> Vec<u8> {
    let reply = match reply {
        Err(s) => {
            let mut w = Writer::tagged(REPLY_ERROR);
            w.status(*s);
            return w.into_bytes();
        }
        Ok(r) => r,
    };
    let mut w;
    match reply {
        Reply::Done => w = Writer::tagged(REPLY_DONE),
        Reply::Capability(c) => {
            w = Writer::tagged(REPLY_CAPABILITY);
            w.cap(c);
        }
        Reply::Count(n) => {
            w = Writer::tagged(REPLY_COUNT);
            w.u32(*n);
        }
        Reply::List { columns, rows } => {
            w = Writer::tagged(REPLY_LIST);
            put_columns(&mut w, columns);
            w.u32(rows.len() as u32);
            for (name, masks) in rows {
                w.str(name);
                w.masks(masks);
            }
        }
        Reply::Masks(m) => {
            w = Writer::tagged(REPLY_MASKS);
            w.masks(m);
        }
        Reply::Lookup(Lookup::Found(caps)) => {
            w = Writer::tagged(REPLY_FOUND);
            w.caps(caps);
        }
        Reply::Lookup(Lookup::Continue { caps, rest }) => {
            w = Writer::tagged(REPLY_CONTINUE);
            w.caps(caps);
            w.str(rest);
        }
        Reply::SetLookup(items) => {
            w = Writer::tagged(REPLY_SETLOOKUP);
            w.u32(items.len() as u32);
            for item in items {
                match item {
                    Ok(caps) => w.caps(caps),
                    Err(s) => {
                        w.u8(0);
                        w.status(*s);
                    }
                }
            }
        }
        Reply::Info(text) => {
            w = Writer::tagged(REPLY_INFO);
            w.str(text);
        }
        Reply::Random(random) => {
            w = Writer::tagged(REPLY_RANDOM);
            match random {
                None => w.u8(0),
                Some(check) => {
                    w.u8(1);
                    w.raw(&check.0);
                }
            }
        }
    }
    w.into_bytes()
}

/// Decode [`encode_reply`]'s output.
pub fn decode_reply(bytes: &[u8]) -> Result<Result<Reply, Status>, DecodeError> {
    let (mut r, tag) = Reader::tagged(bytes)?;
    let reply = match tag {
        REPLY_ERROR => {
            let s = r.status()?;
            if s.is_ok() {
                return Err(DecodeError::Invalid);
            }
            Err(s)
        }
        REPLY_DONE => Ok(Reply::Done),
        REPLY_CAPABILITY => Ok(Reply::Capability(r.cap()?)),
        REPLY_COUNT => Ok(Reply::Count(r.u32()?)),
        REPLY_LIST => {
            let columns = get_columns(&mut r)?;
            let n = r.count(4)?;
            let rows = (0..n).map(|_| Ok((r.name()?, r.masks()?))).collect::<Result<_, DecodeError>>()?;
            Ok(Reply::List { columns, rows })
        }
        REPLY_MASKS => Ok(Reply::Masks(r.masks()?)),
        REPLY_FOUND => Ok(Reply::Lookup(Lookup::Found(r.caps()?))),
        REPLY_CONTINUE => Ok(Reply::Lookup(Lookup::Continue { caps: r.caps()?, rest: r.str()? })),
        REPLY_SETLOOKUP => {
            let n = r.count(1)?;
            let items = (0..n).map(|_| read_set_item(&mut r)).collect::<Result<_, _>>()?;
            Ok(Reply::SetLookup(items))
        }
        REPLY_INFO => Ok(Reply::Info(r.str()?)),
        REPLY_RANDOM => Ok(Reply::Random(match r.u8()? {
            0 => None,
            1 => Some(r.check()?),
            _ => return Err(DecodeError::Tag),
        })),
        _ => return Err(DecodeError::Tag),
    };
    r.finish()?;
    Ok(reply)
}

fn read_set_item(r: &mut Reader<'_>) -> Result<Result<Vec<Capability>, Status>, DecodeError> {
    let n = r.u8()? as usize;
    if n == 0 {
        let s = r.status()?;
        return if s.is_ok() { Err(DecodeError::Invalid) } else { Ok(Err(s)) };
    }
    if n > MAX_CAPSET {
        return Err(DecodeError::Invalid);
    }
    Ok(Ok((0..n).map(|_| r.cap()).collect::<Result<_, _>>()?))
}

// ------------------------------------------------------------------ states

const STATE_TAG: u8 = 0x53;
/// Shortest encoding of a directory and of a row, for bounding counts.
const MIN_DIRECTORY: usize = 4 + 6 + 1 + 1 + 3 + 4;
const MIN_ROW: usize = 2 + 1 + 1 + 16 + 1 + 1;

impl State {
    /// The whole state as bytes (for checkpoints and state transfer).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::tagged(STATE_TAG);
        w.raw(&self.port.0);
        w.raw(&self.super_random.0);
        w.u32(self.epoch);
        w.u64(self.applied);
        w.u32(self.next_object);
        w.u32(self.dirs.len() as u32);
        for (object, d) in &self.dirs {
            w.u32(*object);
            w.raw(&d.random.0);
            w.u8(d.life);
            put_columns(&mut w, &d.columns);
            w.u32(d.rows.len() as u32);
            for (name, row) in &d.rows {
                w.str(name);
                w.caps(&row.caps);
                w.masks(&row.masks);
            }
        }
        w.into_bytes()
    }

    /// A fingerprint of the whole state (the first 8 bytes of the SHA-256 of its
    /// encoding), for comparing replicas.
    pub fn checksum(&self) -> u64 {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(self.encode());
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    /// Decode [`State::encode`]'s output, checking every row against the limits.
    pub fn decode(bytes: &[u8]) -> Result<State, DecodeError> {
        let (mut r, tag) = Reader::tagged(bytes)?;
        if tag != STATE_TAG {
            return Err(DecodeError::Tag);
        }
        let port = Port(r.array()?);
        let super_random = r.check()?;
        let (epoch, applied, next_object) = (r.u32()?, r.u64()?, r.u32()?);
        let n = r.count(MIN_DIRECTORY)?;
        let mut dirs = BTreeMap::new();
        for _ in 0..n {
            let object = r.u32()?;
            let dir = read_directory(&mut r)?;
            if object == 0 || object > amoeba_abi::OBJECT_MAX || dirs.insert(object, dir).is_some() {
                return Err(DecodeError::Invalid);
            }
        }
        r.finish()?;
        Ok(State { port, super_random, epoch, applied, next_object, dirs })
    }
}

fn read_directory(r: &mut Reader<'_>) -> Result<Directory, DecodeError> {
    let random = r.check()?;
    let life = r.u8()?;
    let columns = get_columns(r)?;
    let n = r.count(MIN_ROW)?;
    let mut rows = BTreeMap::new();
    for _ in 0..n {
        let name = r.name()?;
        let (caps, masks) = (r.caps()?, r.masks()?);
        if !valid_capset(&caps) || masks.len() != columns.len() {
            return Err(DecodeError::Invalid);
        }
        if rows.insert(name, Row { caps, masks }).is_some() {
            return Err(DecodeError::Invalid);
        }
    }
    Ok(Directory { random, life, columns, rows })
}
