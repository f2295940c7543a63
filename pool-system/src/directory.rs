//! The directory service on a pool: three replicas on boards 0–2 (fewer in a
//! smaller pool), started through the process servers, each with the Bullet
//! server's capability and its anchor slot on board 0's disk.
//!
//! The service's identity (the random check of its super capability, from which
//! its ports follow, and the root directory's capability) is kept in the disk
//! area reserved for it ([`ANCHOR_BLOCKS`]), in block 0 and in the last block of
//! every replica's slot (`directory_server::layout`), so a second `up` on the
//! same disk finds the same service, recovers its state and hands back the same
//! root, even when one of those blocks went bad: a damaged copy is written again
//! from a good one. `up` writes a new identity only where none was ever stored
//! and no anchor holds state; if every copy is lost but the anchors hold state,
//! it refuses, since a new identity would make the name space unreachable for
//! good. Replica 0 recovers the state and creates the group; the others join it
//! and catch up; a replica that is started again joins the running group.
use super::{ANCHOR_BLOCKS, disk_capability, start_expecting, wait_announced};
use amoeba_abi::{Capability, Check, Status};
use amoeba_client::exec::Exec;
use amoeba_ipc::interface::Transport;
use amoeba_ipc::interfaces::starter::Announcement;
use amoeba_ipc::interfaces::{DISK_READ, disk, soap, standard};
use anyhow::{Context, Result, bail};
use directory_server::ReplicaReport;
use directory_server::layout::{
    self, AREA_BLOCKS, IDENTITY_COPIES, Identity, IdentityChoice, IdentityCopy, MAX_REPLICAS, Ports,
    identity_block, slot_first_block,
};
use directory_server::rpc_store::RpcStore;
use directory_server::service::replica_port;
use directory_server::store::{self, Anchor};
use host_station::bootstrap_server::Expected;
use host_station::rpc_client::RpcClient;
use qemu_pool::exec::Started;
use qemu_pool::pool::Pool;
use std::time::{Duration, Instant};

const _: () = assert!(AREA_BLOCKS <= ANCHOR_BLOCKS, "the directory's disk area does not fit");

/// The program every replica runs.
pub const PROGRAM: &str = "directory-server";
/// A replica's heap: its state, twice while a checkpoint is encoded, and snapshots.
pub const REPLICA_HEAP: u64 = 24 << 20;
/// The root directory's columns.
pub const ROOT_COLUMNS: [&str; 3] = ["owner", "group", "other"];
/// How long replicas have to come up and catch up.
const REPLICA_START: Duration = Duration::from_secs(90);
/// How long the host keeps asking while no replica serves yet.
const SERVICE_WAIT: Duration = Duration::from_secs(60);
/// Pause between such questions.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Attempts at reading one copy of the identity.
const IDENTITY_READS: usize = 3;

/// The boards of a pool of `boards` boards that get a replica.
pub fn replica_boards(boards: usize) -> Vec<usize> {
    (0..boards.min(MAX_REPLICAS as usize)).collect()
}

/// Starts the directory service on `boards` (replica `i` on `boards[i]`; board 0
/// must have the disk and run the Bullet server `bullet`): the root directory's
/// owner capability, the same after every start on the same disk.
pub fn start_directory(pool: &Pool, bullet: Capability, boards: &[usize]) -> Result<Capability> {
    Ok(DirectoryService::start(pool, bullet, boards)?.root)
}

/// A replica the host started.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaProcess {
    /// Its board.
    pub board: usize,
    /// Its process.
    pub process: Started,
}

/// The running service, as the host started it.
pub struct DirectoryService {
    /// Who the service is (its super capability and ports).
    pub identity: Identity,
    /// The root directory's owner capability.
    pub root: Capability,
    /// The replicas' group (a replica started again joins it).
    pub group: Capability,
    bullet: Capability,
    /// Every replica's anchor slot (read and write).
    slots: Vec<Capability>,
    /// The same, read only.
    slots_read_only: Vec<Capability>,
    /// Replica `i` (index in the vector), where it runs.
    pub replicas: Vec<ReplicaProcess>,
}

fn random_check() -> Result<Check> {
    let mut bytes = [0u8; 6];
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes)?;
    Ok(Check(bytes))
}

fn seed_hex() -> Result<String> {
    let mut bytes = [0u8; 23];
    let mut urandom = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Calls `f` until it gets an answer other than "no replica serves now".
pub fn retrying<T>(mut f: impl FnMut() -> Result<T, Status>) -> Result<T, Status> {
    let deadline = Instant::now() + SERVICE_WAIT;
    loop {
        match f() {
            Err(Status::RpcTryAgain | Status::RpcNotFound) if Instant::now() < deadline => {
                std::thread::sleep(RETRY_PAUSE)
            }
            other => return other,
        }
    }
}

/// The directory's disk area on board 0's disk: its identity copies and the
/// replicas' anchors.
struct IdentityArea {
    disk: Capability,
    block_size: usize,
}

impl IdentityArea {
    fn open(pool: &Pool) -> Result<IdentityArea> {
        let disk = disk_capability(pool, 0, 0, AREA_BLOCKS as u32)?;
        let geometry = disk::Client::new(&mut *pool.rpc())
            .geometry(&disk)
            .map_err(|s| anyhow::anyhow!("the directory's disk area: {s}"))?;
        Ok(IdentityArea { disk, block_size: geometry.block_size as usize })
    }

    /// Every copy of the identity as it reads (a read that keeps failing:
    /// unreadable, which is not the same as blank).
    fn read_copies(&self, pool: &Pool) -> Vec<IdentityCopy> {
        (0..IDENTITY_COPIES)
            .map(|copy| {
                for _ in 0..IDENTITY_READS {
                    match disk::Client::new(&mut *pool.rpc()).read(&self.disk, identity_block(copy), 1) {
                        Ok(block) => return IdentityCopy::of_block(&block),
                        Err(_) => std::thread::sleep(RETRY_PAUSE),
                    }
                }
                IdentityCopy::Unreadable
            })
            .collect()
    }

    /// The replicas whose anchor halves hold anything (or cannot be read, and so
    /// may): where directory state is stored.
    fn anchors_with_state(&self, pool: &Pool) -> Vec<u8> {
        (0..MAX_REPLICAS)
            .filter(|&replica| {
                let first = slot_first_block(replica);
                let read =
                    disk::Client::new(&mut *pool.rpc()).read(&self.disk, first, layout::ANCHOR_BLOCKS as u32);
                read.map_or(true, |blocks| blocks.iter().any(|b| *b != 0))
            })
            .collect()
    }

    /// Writes `identity` into the copies `which`, each flushed before the next
    /// (so a crash tears at most one of them).
    fn write(&self, pool: &Pool, identity: &Identity, which: &[usize]) -> Result<()> {
        let mut block = identity.encode();
        block.resize(self.block_size, 0);
        let mut rpc = pool.rpc();
        let mut client = disk::Client::new(&mut *rpc);
        for &copy in which {
            client
                .write(&self.disk, identity_block(copy), &block)
                .and_then(|()| client.flush(&self.disk))
                .map_err(|s| anyhow::anyhow!("writing copy {copy} of the directory's identity: {s}"))?;
        }
        Ok(())
    }

    /// The service's identity: from a valid copy (rewriting the others), or a new
    /// one on a disk that never held directory state; an error where the state is
    /// there but every copy of its identity is lost.
    fn identity(&self, pool: &Pool) -> Result<Identity> {
        let copies = self.read_copies(pool);
        match layout::choose_identity(&copies, || self.anchors_with_state(pool)) {
            Ok(IdentityChoice::Found { identity, rewrite }) => {
                self.write(pool, &identity, &rewrite)?;
                Ok(identity)
            }
            Ok(IdentityChoice::New) => {
                let ports = Ports::random(|| random_check().map(|c| c.0))?;
                let identity = Identity::new(random_check()?, ports);
                self.write(pool, &identity, &(0..IDENTITY_COPIES).collect::<Vec<_>>())?;
                Ok(identity)
            }
            Err(error) => bail!(
                "{error}. Refusing to make a new identity over it: that would make every name unreachable \
                 for good. Restore the disk image from a backup, or start afresh with `--fresh-disk` \
                 (which erases every file and name)"
            ),
        }
    }
}

impl DirectoryService {
    /// Starts the service; see [`start_directory`].
    pub fn start(pool: &Pool, bullet: Capability, boards: &[usize]) -> Result<DirectoryService> {
        if boards.is_empty() || boards.len() > MAX_REPLICAS as usize {
            bail!("the directory service runs on 1 to {MAX_REPLICAS} boards, not {}", boards.len());
        }
        let area = IdentityArea::open(pool)?;
        let identity = area.identity(pool)?;
        let mut slots = Vec::new();
        let mut slots_read_only = Vec::new();
        for r in 0..MAX_REPLICAS {
            // The anchor's two halves only: the identity copy after them is the host's.
            let slot = disk_capability(pool, 0, slot_first_block(r), layout::ANCHOR_BLOCKS as u32)?;
            let read_only = standard::Client::new(&mut *pool.rpc())
                .restrict(&slot, DISK_READ)
                .map_err(|s| anyhow::anyhow!("restricting an anchor slot: {s}"))?;
            slots.push(slot);
            slots_read_only.push(read_only);
        }
        let placeholder = ReplicaProcess {
            board: boards[0],
            process: Started { board: boards[0], pid: 0, capability: Capability::default() },
        };
        let mut service = DirectoryService {
            identity,
            root: Capability::default(),
            group: Capability::default(),
            bullet,
            slots,
            slots_read_only,
            replicas: boards.iter().map(|&board| ReplicaProcess { board, ..placeholder }).collect(),
        };
        let mut expected = vec![service.start_replica(pool, 0, true)?];
        let creator = service.replicas[0].process;
        let announced = wait_announced(pool, &creator, &expected[0], PROGRAM, REPLICA_START, |a| match a {
            Announcement::Group(group) => Some(*group),
            _ => None,
        })
        .context("directory replica 0 made no group")?;
        // Replicas join with the right to receive and to send, nothing more.
        service.group = if announced.rights.is_owner() {
            announced
                .restrict(directory_server::REPLICA_GROUP_RIGHTS)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
        } else {
            announced
        };
        if service.group.rights != directory_server::REPLICA_GROUP_RIGHTS {
            bail!(
                "the directory's group capability has rights {:?}, not those replicas join with",
                service.group.rights
            );
        }
        for index in 1..boards.len() as u8 {
            expected.push(service.start_replica(pool, index, false)?);
        }
        for (index, expected) in expected.iter().enumerate() {
            service.wait_serving(pool, index as u8, expected)?;
        }
        service.root = service.find_root(pool, &area)?;
        Ok(service)
    }

    /// The service's super capability.
    pub fn super_capability(&self) -> Capability {
        self.identity.super_capability()
    }

    /// Starts replica `index` on its board (creating the group, or joining it);
    /// its object of the host's bootstrap server, which hears it announce.
    fn start_replica(&mut self, pool: &Pool, index: u8, create: bool) -> Result<Expected> {
        let board = self.replicas[index as usize].board;
        let mut exec = Exec::new(PROGRAM, &[PROGRAM])
            .with_capability("SERVICE", self.identity.super_capability())
            .with_capability("BULLET", self.bullet);
        for r in 0..MAX_REPLICAS as usize {
            let slot = if r == index as usize { self.slots[r] } else { self.slots_read_only[r] };
            exec = exec.with_capability(&format!("ANCHOR{r}"), slot);
        }
        if !create {
            exec = exec.with_capability("GROUP", self.group);
        }
        exec.heap_size = REPLICA_HEAP;
        let environment = [
            format!("INDEX={index}"),
            format!("REPLICAS={}", self.replicas.len()),
            format!("MODE={}", if create { "create" } else { "join" }),
            format!("SEED={}", seed_hex()?),
            format!("PORTS={}", self.identity.ports.to_hex()),
        ];
        exec.startup.environment.extend(environment);
        let (process, expected) = start_expecting(pool, board, &exec)?;
        self.replicas[index as usize].process = process;
        Ok(expected)
    }

    /// Waits until replica `index` announces that it serves, through its own
    /// port's capability.
    fn wait_serving(&self, pool: &Pool, index: u8, expected: &Expected) -> Result<()> {
        let replica = self.replicas[index as usize];
        let own = self.identity.replica_capability(index);
        wait_announced(pool, &replica.process, expected, PROGRAM, REPLICA_START, |a| {
            (*a == Announcement::Serving(own)).then_some(())
        })
        .with_context(|| format!("directory replica {index} on board {} did not come up", replica.board))
    }

    /// Starts replica `index` again (after its board or process died): it joins
    /// the running group and catches up; returns once it serves.
    pub fn restart_replica(&mut self, pool: &Pool, index: u8) -> Result<()> {
        let expected = self.start_replica(pool, index, false)?;
        self.wait_serving(pool, index, &expected)
    }

    /// The root directory: the one the identity names, or a new one.
    fn find_root(&self, pool: &Pool, area: &IdentityArea) -> Result<Capability> {
        let mut identity = self.identity;
        if let Some(root) = identity.root {
            retrying(|| soap::Client::new(&mut *pool.rpc()).list(&root))
                .map_err(|s| anyhow::anyhow!("the root directory does not answer: {s}"))?;
            return Ok(root);
        }
        let columns: Vec<String> = ROOT_COLUMNS.iter().map(|c| c.to_string()).collect();
        let root =
            retrying(|| soap::Client::new(&mut *pool.rpc()).create(&identity.super_capability(), &columns))
                .map_err(|s| anyhow::anyhow!("creating the root directory: {s}"))?;
        identity.root = Some(root);
        area.write(pool, &identity, &(0..IDENTITY_COPIES).collect::<Vec<_>>())?;
        Ok(root)
    }

    /// Every replica's anchor as the disk holds it now (`None`: never written),
    /// read through `rpc` with the read-only slots: what a whole-pool restart
    /// would recover from.
    pub fn stored_anchors(&self, rpc: &mut RpcClient) -> Result<Vec<Option<Anchor>>> {
        let slots = self.slots_read_only.iter().map(|slot| Some(*slot)).collect();
        let mut store = RpcStore::open(&mut *rpc, self.bullet, slots)
            .map_err(|s| anyhow::anyhow!("the directory's anchor slots: {s}"))?;
        (0..MAX_REPLICAS)
            .map(|replica| {
                store::read_anchor(&mut store, replica)
                    .map_err(|e| anyhow::anyhow!("reading replica {replica}'s anchor: {e:?}"))
            })
            .collect()
    }

    /// Asks replica `index` how it is, through `transport`.
    pub fn status<T: Transport>(&self, transport: &mut T, index: u8) -> Result<ReplicaReport, Status> {
        replica_port::Client::new(transport).report(&self.identity.replica_capability(index))
    }

    /// A client for replica `index`'s own port (reads answered by it alone), with
    /// the capability to call it with.
    pub fn replica_client<T: Transport>(
        &self,
        transport: T,
        index: u8,
    ) -> (replica_port::Client<T>, Capability) {
        (replica_port::Client::new(transport), self.identity.replica_capability(index))
    }

    /// Waits until every replica serves at one position with one state; their statuses.
    pub fn wait_converged(&self, rpc: &mut RpcClient, timeout: Duration) -> Result<Vec<ReplicaReport>> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses: Vec<Result<ReplicaReport, Status>> =
                (0..self.replicas.len() as u8).map(|i| self.status(rpc, i)).collect();
            if let Ok(first) = &statuses[0]
                && statuses.iter().all(|s| {
                    s.as_ref()
                        .is_ok_and(|s| s.serving && s.applied == first.applied && s.state == first.state)
                })
            {
                return Ok(statuses.into_iter().flatten().collect());
            }
            if Instant::now() > deadline {
                bail!("the replicas did not converge: {statuses:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pools_get_fewer_replicas() {
        assert_eq!(replica_boards(1), vec![0]);
        assert_eq!(replica_boards(5), vec![0, 1, 2]);
    }
}
