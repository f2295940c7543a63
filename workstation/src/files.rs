//! `ls`, `mkdir`, `rm`, `chmod`, `put`, `get`, `info`: files and directories
//! by path from the user's root directory (the ROOT capability `up` saved),
//! with the directory service for names and the Bullet server for files.
//! Errors say what went wrong in the user's words.

use super::Workstation;
use amoeba_abi::{Capability, Rights, Status};
use amoeba_client::files;
use amoeba_client::files::StreamError;
use amoeba_ipc::interfaces::directory::{Listing, MaskChange, soap};
use amoeba_ipc::interfaces::{bullet, standard};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pool_system::names;
use std::io::{Read, Write};
use std::path::Path;

/// Files larger than this show a progress bar.
const PROGRESS_FROM: u64 = 1 << 20;

/// Which server a failed call went to: an error names the one that could not be
/// reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    /// The directory service (walking paths, changing rows).
    Directory,
    /// The Bullet file server (storing and reading files).
    Files,
    /// Whatever server the object at the path belongs to.
    Object,
}

/// What a failed lookup of `path` in the directory service means to the user.
pub(crate) fn explain_lookup(path: &str, status: Status) -> anyhow::Error {
    explain(path, Server::Directory, status)
}

/// What a failed call to `server` means, in words.
fn explain(path: &str, server: Server, status: Status) -> anyhow::Error {
    match (server, status) {
        (_, Status::RpcNotFound | Status::RpcFailure | Status::RpcTryAgain) => match server {
            Server::Directory => anyhow::anyhow!("{path}: the directory service is not reachable ({status})"),
            Server::Files => anyhow::anyhow!("{path}: the file server is not reachable ({status})"),
            Server::Object => anyhow::anyhow!("{path}: the server of the object is not reachable ({status})"),
        },
        (Server::Directory, Status::NotFound | Status::CapBad) => anyhow::anyhow!("no such path: {path}"),
        (Server::Files, Status::NotFound | Status::CapBad) => {
            anyhow::anyhow!("{path}: the file it names is gone from the file server")
        }
        (Server::Object, Status::NotFound | Status::CapBad) => {
            anyhow::anyhow!("{path}: the object it names is gone from its server")
        }
        (_, Status::Denied) => anyhow::anyhow!("{path}: not allowed by this capability"),
        (_, Status::Exists) => anyhow::anyhow!("{path}: already exists"),
        (_, Status::NoSpace) => anyhow::anyhow!("{path}: no space left"),
        (_, Status::NotNow) => anyhow::anyhow!("{path}: changed by someone else meanwhile; try again"),
        (Server::Files, Status::NoMem) => {
            anyhow::anyhow!("{path}: the file server is short of memory; try again later")
        }
        // In words only: a status code means nothing to the user.
        (_, other) => anyhow::anyhow!("{path}: {}", other.text()),
    }
}

/// What a failed read by path means, in words.
fn explain_read(path: &str, error: names::PathError<Status>) -> anyhow::Error {
    match error {
        names::PathError::Name(status) => explain(path, Server::Directory, status),
        names::PathError::Read(status) => explain(path, Server::Files, status),
        names::PathError::Gone => explain(path, Server::Files, Status::NotFound),
        names::PathError::KeptChanging => {
            anyhow::anyhow!("{path}: replaced again and again while read; try again")
        }
    }
}

fn split(path: &str) -> Result<(&str, &str)> {
    names::split(path).with_context(|| format!("{path:?} names no entry"))
}

fn progress(len: u64, verb: &str) -> Option<ProgressBar> {
    (len >= PROGRESS_FROM).then(|| {
        let bar = ProgressBar::new(len).with_message(String::from(verb));
        if let Ok(style) =
            ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
        {
            bar.set_style(style);
        }
        bar
    })
}

fn masks_text(masks: &[Rights]) -> String {
    masks.iter().map(|m| format!("{:02x}", m.0)).collect::<Vec<_>>().join(":")
}

/// A row's masks, one per column, written `ff:06:04` (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masks(pub Vec<Rights>);

impl std::str::FromStr for Masks {
    type Err = String;
    fn from_str(text: &str) -> Result<Masks, String> {
        text.split(':')
            .map(|part| {
                u8::from_str_radix(part, 16).map(Rights).map_err(|_| format!("bad mask {part:?} in {text:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Masks)
    }
}

impl Workstation {
    pub(crate) fn root(&self) -> Result<Capability> {
        self.capability("root").context("the pool has no directory service (start the system with `just up`)")
    }

    /// The capability `path` names (from ROOT; `/` is ROOT itself).
    pub fn resolve(&mut self, path: &str) -> Result<Capability> {
        let root = self.root()?;
        names::resolve(self.rpc(), &root, path).map_err(|status| explain(path, Server::Directory, status))
    }

    /// `ls`: the rows of a directory with their masks.
    pub fn ls(&mut self, path: &str) -> Result<String> {
        let dir = self.resolve(path)?;
        let listing: Listing = names::again(|| soap::Client::new(self.rpc()).list(&dir))
            .map_err(|s| explain(path, Server::Directory, s))?;
        let mut out = format!("{:<24} {}\n", "NAME", listing.columns.join(":"));
        for row in listing.rows {
            out.push_str(&format!("{:<24} {}\n", row.name, masks_text(&row.masks)));
        }
        Ok(out)
    }

    /// `mkdir`: a new directory at `path`.
    pub fn mkdir(&mut self, path: &str) -> Result<Capability> {
        let (parent, name) = split(path)?;
        let parent = self.resolve(parent)?;
        names::make_directory(self.rpc(), &parent, name).map_err(|s| explain(path, Server::Directory, s))
    }

    /// `rm`: removes the entry at `path`; a file goes from the Bullet server
    /// too, a directory only when it is empty.
    pub fn rm(&mut self, path: &str) -> Result<()> {
        let (parent_path, name) = split(path)?;
        let parent = self.resolve(parent_path)?;
        let target = self.resolve(path)?;
        let is_directory = target.port == parent.port;
        if is_directory {
            let listing = soap::Client::new(self.rpc())
                .list(&target)
                .map_err(|s| explain(path, Server::Directory, s))?;
            if !listing.rows.is_empty() {
                bail!("{path}: directory not empty");
            }
        }
        soap::Client::new(self.rpc())
            .delete(&parent, name)
            .map_err(|s| explain(path, Server::Directory, s))?;
        // The object goes too; one the capability may not destroy stays.
        let _ = if is_directory {
            soap::Client::new(self.rpc()).discard(&target)
        } else {
            standard::Client::new(self.rpc()).destroy(&target)
        };
        Ok(())
    }

    /// `chmod`: sets the masks of the entry at `path`.
    pub fn chmod(&mut self, path: &str, masks: Vec<Rights>) -> Result<()> {
        let (parent, name) = split(path)?;
        let parent = self.resolve(parent)?;
        let change = MaskChange { name: String::from(name), masks };
        soap::Client::new(self.rpc()).chmod(&parent, &change).map_err(|s| explain(path, Server::Directory, s))
    }

    /// `put`: stores `data` as the file at `path`, replacing what was there.
    pub fn put(&mut self, data: &[u8], path: &str) -> Result<Capability> {
        let mut unread = data;
        self.put_from(data.len() as u64, path, |piece| {
            let (now, rest) = unread.split_at(piece.len());
            piece.copy_from_slice(now);
            unread = rest;
            Ok(())
        })
    }

    /// `put`: stores the local file `local` as the file at `path`, replacing
    /// what was there, read a piece at a time; its size.
    pub fn put_file(&mut self, local: &Path, path: &str) -> Result<u64> {
        let mut file = std::fs::File::open(local).with_context(|| format!("reading {}", local.display()))?;
        let size = file.metadata().with_context(|| format!("reading {}", local.display()))?.len();
        self.put_from(size, path, |piece| {
            file.read_exact(piece).with_context(|| format!("reading {}", local.display()))
        })?;
        Ok(size)
    }

    /// Stores a file of `size` bytes that `fill` provides, in order, as the
    /// file at `path`.
    fn put_from(
        &mut self,
        size: u64,
        path: &str,
        fill: impl FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<Capability> {
        let (parent, name) = split(path)?;
        let parent = self.resolve(parent)?;
        let bullet =
            self.capability("bullet").context("the pool has no file server (start it with `just up`)")?;
        let bar = progress(size, "put");
        let stored = files::put_from(self.rpc(), &bullet, size, fill, |sent| {
            bar.iter().for_each(|b| b.set_position(sent))
        });
        bar.iter().for_each(ProgressBar::finish_and_clear);
        let file = match stored {
            Ok(file) => file,
            Err(StreamError::Local(error)) => return Err(error),
            Err(StreamError::Server(status @ (Status::NoSpace | Status::Overflow))) => {
                return Err(match files::why_no_room(self.rpc(), &bullet, size) {
                    Ok(why) => anyhow::anyhow!("{path}: {why}"),
                    Err(_) => explain(path, Server::Files, status),
                });
            }
            Err(StreamError::Server(status)) => return Err(explain(path, Server::Files, status)),
        };
        names::replace_and_destroy(self.rpc(), &parent, name, file)
            .map_err(|s| explain(path, Server::Directory, s))?;
        Ok(file)
    }

    /// `get`: the bytes of the file at `path` (a whole file, looked up again if a
    /// `put` or `rm` of the path destroys the one found first: see
    /// [`names::read_path`]).
    pub fn get(&mut self, path: &str) -> Result<Vec<u8>> {
        let mut bytes = Bytes(Vec::new());
        self.get_into(path, &mut bytes)?;
        Ok(bytes.0)
    }

    /// `get`: writes the file at `path` to `local`, or to standard output when
    /// it is `None`, a piece at a time; its size.
    pub fn get_to(&mut self, path: &str, local: Option<&Path>) -> Result<u64> {
        match local {
            Some(local) => {
                let file =
                    std::fs::File::create(local).with_context(|| format!("writing {}", local.display()))?;
                let mut sink = LocalFile { out: std::io::BufWriter::new(file), path: local };
                let size = self.get_into(path, &mut sink)?;
                sink.out.flush().with_context(|| format!("writing {}", local.display()))?;
                Ok(size)
            }
            None => self.get_into(path, &mut Stdout { out: std::io::stdout().lock(), written: false }),
        }
    }

    /// Reads the file at `path` piece by piece into `sink`; its size. If the
    /// file the path named is destroyed while it is read (a `put` or `rm` of
    /// the same path), the sink starts over with what the path names now.
    fn get_into(&mut self, path: &str, sink: &mut dyn Sink) -> Result<u64> {
        let root = self.root()?;
        let mut reads = 0;
        let read = |rpc: &mut host_station::rpc_client::RpcClient,
                    file: &Capability|
         -> Result<u64, StreamError<anyhow::Error>> {
            if reads > 0 && !sink.restart().map_err(StreamError::Local)? {
                let why = anyhow::anyhow!("{path}: replaced while it was being written out; get it again");
                return Err(StreamError::Local(why));
            }
            if file.port == root.port {
                // The directory service's object: a directory, not a file.
                let why = anyhow::anyhow!("{path} is a directory, not a file (see `just ls {path}`)");
                return Err(StreamError::Local(why));
            }
            reads += 1;
            let size = bullet::Client::new(&mut *rpc).size(file)?;
            let bar = progress(size, "get");
            let read = files::get_into(
                rpc,
                file,
                |piece| sink.write(piece),
                |done| bar.iter().for_each(|b| b.set_position(done)),
            );
            bar.iter().for_each(ProgressBar::finish_and_clear);
            read
        };
        let gone = |error: &StreamError<anyhow::Error>| matches!(error, StreamError::Server(s) if names::file_gone(s));
        match names::read_path(self.rpc(), &root, path, read, gone) {
            Ok(size) => Ok(size),
            Err(names::PathError::Read(StreamError::Local(error))) => Err(error),
            Err(names::PathError::Read(StreamError::Server(status))) => {
                Err(explain(path, Server::Files, status))
            }
            Err(names::PathError::Name(status)) => Err(explain_read(path, names::PathError::Name(status))),
            Err(names::PathError::Gone) => Err(explain_read(path, names::PathError::Gone)),
            Err(names::PathError::KeptChanging) => Err(explain_read(path, names::PathError::KeptChanging)),
        }
    }

    /// `info`: what the object at `path` says of itself (STD_INFO).
    pub fn info(&mut self, path: &str) -> Result<String> {
        let object = self.resolve(path)?;
        standard::Client::new(self.rpc()).info(&object).map_err(|s| explain(path, Server::Object, s))
    }
}

/// Where `get` puts a file's bytes, a piece at a time.
trait Sink {
    fn write(&mut self, piece: &[u8]) -> Result<()>;
    /// Drops what was written so far (the file found first was destroyed
    /// while it was read, and `get` starts over with what the path names
    /// now); `false` when it cannot.
    fn restart(&mut self) -> Result<bool>;
}

/// The bytes, in memory.
struct Bytes(Vec<u8>);

impl Sink for Bytes {
    fn write(&mut self, piece: &[u8]) -> Result<()> {
        self.0.extend_from_slice(piece);
        Ok(())
    }

    fn restart(&mut self) -> Result<bool> {
        self.0.clear();
        Ok(true)
    }
}

/// A local file, written from its start.
struct LocalFile<'a> {
    out: std::io::BufWriter<std::fs::File>,
    path: &'a Path,
}

impl Sink for LocalFile<'_> {
    fn write(&mut self, piece: &[u8]) -> Result<()> {
        self.out.write_all(piece).with_context(|| format!("writing {}", self.path.display()))
    }

    fn restart(&mut self) -> Result<bool> {
        let context = || format!("writing {}", self.path.display());
        self.out.flush().with_context(context)?;
        let file = self.out.get_mut();
        file.set_len(0).with_context(context)?;
        std::io::Seek::rewind(file).with_context(context)?;
        Ok(true)
    }
}

/// Standard output, which cannot take back what it printed.
struct Stdout<'a> {
    out: std::io::StdoutLock<'a>,
    written: bool,
}

impl Sink for Stdout<'_> {
    fn write(&mut self, piece: &[u8]) -> Result<()> {
        self.written |= !piece.is_empty();
        self.out.write_all(piece).context("writing to standard output")
    }

    fn restart(&mut self) -> Result<bool> {
        Ok(!self.written)
    }
}

/// Writes `data` to `local`, or to standard output when it is `None`.
pub fn write_out(data: &[u8], local: Option<&std::path::Path>) -> Result<()> {
    match local {
        Some(path) => std::fs::write(path, data).with_context(|| format!("writing {}", path.display())),
        None => std::io::stdout().write_all(data).context("writing to standard output"),
    }
}
