//! One bad block never loses the name space: the directory service's identity
//! (from which its ports follow, and which names the root directory) is kept in
//! four sealed copies on board 0's disk. With the disk's first sector zeroed and
//! another copy garbled while the pool was down, the next start finds the same
//! service, the same root, every name and every file, and writes the bad copies
//! again; with every copy lost over stored state, it refuses and writes nothing.

use amoeba_abi::Capability;
use amoeba_client::files;
use amoeba_ipc::interfaces::directory::Lookup;
use amoeba_ipc::interfaces::soap;
use directory_server::layout::{AREA_BLOCKS, IDENTITY_COPIES, Identity, IdentityCopy, identity_block};
use host_station::rpc_client::RpcClient;
use pool_system::names;
use pool_system::{self, directory::DirectoryService, directory::replica_boards};
use pool_tests::{TestPool, boot_with, config};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Size of board 0's disk.
const DISK_MIB: u64 = 64;
/// Bytes of a disk block (the virtio-blk sector).
const BLOCK: u64 = 512;
/// Boards of the pool (one directory replica on each).
const BOARDS: u16 = 3;

fn boot_pool(disk: &Path, fresh: bool) -> TestPool {
    let (config, dir) = config(BOARDS);
    boot_with(config.with_disk(disk, DISK_MIB << 20, fresh).unwrap(), dir)
}

/// The Bullet server and the directory service on a booted pool (an error in
/// words, with its causes).
fn start_services(pool: &TestPool) -> Result<(Capability, DirectoryService), String> {
    let bullet = pool_system::start_bullet(pool, 0).map_err(|e| format!("{e:#}"))?;
    let service = DirectoryService::start(pool, bullet, &replica_boards(BOARDS as usize))
        .map_err(|e| format!("{e:#}"))?;
    Ok((bullet, service))
}

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

/// Contents of the `k`th file: its number spread over a few kilobytes.
fn contents(k: usize) -> Vec<u8> {
    format!("file {k}\n").repeat(300 + 37 * k).into_bytes()
}

/// Directories and files, as `mkdir` and `put` make them.
fn fill(rpc: &mut RpcClient, bullet: &Capability, root: &Capability) {
    let home = names::make_directory(rpc, root, "home").unwrap();
    let docs = names::make_directory(rpc, &home, "docs").unwrap();
    for k in 0..12 {
        let dir = if k % 2 == 0 { &home } else { &docs };
        let file = files::put(rpc, bullet, &contents(k), |_| {}).unwrap();
        names::replace_and_destroy(rpc, dir, &format!("file-{k}"), file).unwrap();
    }
    // One file put twice: its name holds the second.
    let file = files::put(rpc, bullet, &contents(99), |_| {}).unwrap();
    names::replace_and_destroy(rpc, &home, "file-0", file).unwrap();
}

/// Every name reachable from `root`, with its masks and, for a file, its bytes.
fn snapshot(rpc: &mut RpcClient, service: &DirectoryService, root: &Capability) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![(String::new(), *root)];
    while let Some((path, dir)) = todo.pop() {
        let listing = pool_system::directory::retrying(|| soap::Client::new(&mut *rpc).list(&dir)).unwrap();
        for row in listing.rows {
            let here = format!("{path}/{}", row.name);
            let caps = match soap::Client::new(&mut *rpc).lookup(&dir, &row.name).unwrap() {
                Lookup::Found(caps) => caps,
                other => panic!("{here}: {other:?}"),
            };
            let object = caps[0];
            let what = if object.port == service.identity.port() {
                todo.push((here.clone(), object));
                String::from("directory")
            } else {
                let bytes = files::get(rpc, &object, |_| {}).unwrap_or_else(|s| panic!("{here}: {s}"));
                format!("file of {} bytes, {:?}", bytes.len(), String::from_utf8_lossy(&bytes[..12]))
            };
            out.insert(here, format!("{:?} {what}", row.masks));
        }
    }
    out
}

fn read_block(image: &Path, block: u64) -> Vec<u8> {
    let mut file = std::fs::File::open(image).unwrap();
    file.seek(SeekFrom::Start(block * BLOCK)).unwrap();
    let mut bytes = vec![0; BLOCK as usize];
    file.read_exact(&mut bytes).unwrap();
    bytes
}

fn write_block(image: &Path, block: u64, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).open(image).unwrap();
    file.seek(SeekFrom::Start(block * BLOCK)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// The directory's whole disk area.
fn area(image: &Path) -> Vec<u8> {
    (0..AREA_BLOCKS).flat_map(|b| read_block(image, b)).collect()
}

/// Every identity copy on the image.
fn copies(image: &Path) -> Vec<IdentityCopy> {
    (0..IDENTITY_COPIES).map(|c| IdentityCopy::of_block(&read_block(image, identity_block(c)))).collect()
}

#[test]
fn the_name_space_survives_its_first_sector_zeroed_and_another_copy_garbled() {
    let disk_dir = tempfile::tempdir().unwrap();
    let image = disk_dir.path().join("disk.img");
    let mut pool = boot_pool(&image, true);
    let (bullet, service) = start_services(&pool).unwrap_or_else(|e| panic!("{e}"));
    let root = service.root;
    let before = {
        let mut rpc = client(&pool);
        fill(&mut rpc, &bullet, &root);
        snapshot(&mut rpc, &service, &root)
    };
    assert_eq!(before.len(), 2 + 12);
    pool.shut_down();
    drop(pool);
    let identity = Identity { root: Some(root), ..service.identity };
    assert_eq!(copies(&image), vec![IdentityCopy::Valid(identity); IDENTITY_COPIES], "four copies written");

    // The disk's first sector zeroed, and the copy after replica 0's anchor garbled.
    write_block(&image, 0, &[0; BLOCK as usize]);
    write_block(&image, identity_block(1), &[0x5a; BLOCK as usize]);
    assert_eq!(copies(&image)[..2], [IdentityCopy::Empty, IdentityCopy::Damaged]);

    let pool = boot_pool(&image, false);
    let (bullet_again, service) = start_services(&pool).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bullet_again, bullet);
    assert_eq!(service.root, root, "the same root after the bad blocks");
    assert_eq!(service.identity.port(), identity.port(), "the same service");
    let mut rpc = client(&pool);
    assert_eq!(snapshot(&mut rpc, &service, &root), before, "every name and every file, as before");
    // The bad copies were written again from the good ones.
    assert_eq!(copies(&image), vec![IdentityCopy::Valid(identity); IDENTITY_COPIES]);
    // And the service goes on.
    let file = files::put(&mut rpc, &bullet, b"after", |_| {}).unwrap();
    names::replace_and_destroy(&mut rpc, &root, "after", file).unwrap();
    assert_eq!(names::resolve(&mut rpc, &root, "/after"), Ok(file));
}

#[test]
fn a_lost_identity_over_stored_state_is_refused_and_the_disk_left_alone() {
    let disk_dir = tempfile::tempdir().unwrap();
    let image = disk_dir.path().join("disk.img");
    let mut pool = boot_pool(&image, true);
    let (bullet, service) = start_services(&pool).unwrap_or_else(|e| panic!("{e}"));
    fill(&mut client(&pool), &bullet, &service.root);
    pool.shut_down();
    drop(pool);

    // Every copy of the identity gone; the replicas' anchors still hold the state.
    for copy in 0..IDENTITY_COPIES {
        write_block(&image, identity_block(copy), &[0; BLOCK as usize]);
    }
    let area_before = area(&image);
    let pool = boot_pool(&image, false);
    let error = match start_services(&pool) {
        Ok(_) => panic!("the directory service started with a new identity over the stored name space"),
        Err(error) => error,
    };
    println!("{error}");
    assert!(
        error.contains("every copy of the directory's identity is lost")
            && error.contains("hold directory state")
            && error.contains("Refusing to make a new identity")
            && error.contains("--fresh-disk"),
        "{error}"
    );
    assert!(area(&image) == area_before, "the refusal wrote to the directory's disk area");
    assert!(
        pool.boards().iter().all(|b| !b.console_text().contains("directory-server 0: a new service")),
        "a replica started a new service"
    );
}
