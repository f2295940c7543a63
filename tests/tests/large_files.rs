//! Files far larger than any server's memory, on the default 1 GiB disk: `put`
//! and `get` as people type them stream 64 MiB, 200 MiB and 512 MiB files to
//! and from the Bullet server byte for byte, a file that cannot fit is refused
//! in words with sizes, and no server dies or panics. And the superblock's
//! backup: with the first block of Bullet's range zeroed the server comes back
//! with every file from the backup (and writes the first block again); with
//! both copies zeroed it refuses to start, says why, and leaves the disk image
//! exactly as it was.
//!
//! Big files come from a pattern generator, a piece at a time, and are checked
//! the same way: nothing holds a whole file in memory.

use amoeba_abi::Capability;
use amoeba_client::files;
use amoeba_ipc::interfaces::bullet;
use host_station::rpc_client::RpcClient;
use pool_tests::up::{Up, text};
use pool_tests::{TestPool, boot_with, config};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const MIB: u64 = 1 << 20;
/// Pieces the pattern is made and checked in.
const PIECE: usize = 1 << 20;

/// Byte `offset` of the pattern file number `seed`: every 8-byte word holds its
/// own offset mixed with the seed, so a piece in the wrong place shows.
fn pattern_piece(seed: u64, offset: u64, piece: &mut [u8]) {
    for (i, word) in piece.chunks_mut(8).enumerate() {
        let at = offset + 8 * i as u64;
        let value = (at ^ seed.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        word.copy_from_slice(&value.to_le_bytes()[..word.len()]);
    }
}

/// Writes the pattern file `seed` of `size` bytes at `path`.
fn write_pattern(path: &Path, size: u64, seed: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut piece = vec![0u8; PIECE];
    let mut at = 0;
    while at < size {
        let len = (size - at).min(PIECE as u64) as usize;
        pattern_piece(seed, at, &mut piece[..len]);
        out.write_all(&piece[..len]).unwrap();
        at += len as u64;
    }
    out.flush().unwrap();
}

/// Whether the file at `path` is the pattern file `seed` of `size` bytes; the
/// offset of the first piece that differs if not.
fn check_pattern(path: &Path, size: u64, seed: u64) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let got = file.metadata().map_err(|e| e.to_string())?.len();
    if got != size {
        return Err(format!("{got} bytes, {size} expected"));
    }
    let mut input = std::io::BufReader::new(file);
    let (mut want, mut have) = (vec![0u8; PIECE], vec![0u8; PIECE]);
    let mut at = 0;
    while at < size {
        let len = (size - at).min(PIECE as u64) as usize;
        pattern_piece(seed, at, &mut want[..len]);
        input.read_exact(&mut have[..len]).map_err(|e| e.to_string())?;
        if want[..len] != have[..len] {
            return Err(format!("the piece at {at} differs"));
        }
        at += len as u64;
    }
    Ok(())
}

#[test]
fn files_of_64_200_and_512_mib_round_trip_through_put_and_get() {
    let up = Up::start(2);
    let small = up.path("small");
    std::fs::write(&small, b"an older file").unwrap();
    let put = up.command(&["put", small.to_str().unwrap(), "/small"]);
    assert!(put.status.success(), "{}", text(&put));

    for (seed, mib) in [(1, 64), (2, 200), (3, 512)] {
        let size = mib * MIB;
        let local = up.path("big");
        write_pattern(&local, size, seed);
        let name = format!("/big{mib}");
        let started = Instant::now();
        let put = up.command(&["put", local.to_str().unwrap(), &name]);
        assert!(put.status.success(), "put of {mib} MiB: {}", text(&put));
        assert!(text(&put).contains(&format!("{size} bytes stored as {name}")), "{}", text(&put));
        let put_took = started.elapsed();
        std::fs::remove_file(&local).unwrap();
        let back = up.path("back");
        let started = Instant::now();
        let get = up.command(&["get", &name, back.to_str().unwrap()]);
        assert!(get.status.success(), "get of {mib} MiB: {}", text(&get));
        let get_took = started.elapsed();
        check_pattern(&back, size, seed).unwrap_or_else(|e| panic!("{mib} MiB came back changed: {e}"));
        std::fs::remove_file(&back).unwrap();
        println!("{mib} MiB: put {put_took:.1?}, get {get_took:.1?}");
    }

    // What no longer fits is refused in words, with sizes, before any of it is sent
    // (the local file is sparse: reading it would take no time either way).
    let too_large = up.path("too-large");
    std::fs::File::create(&too_large).unwrap().set_len(512 * MIB).unwrap();
    let refused = up.command(&["put", too_large.to_str().unwrap(), "/too-large"]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(said.contains("/too-large: file too large: 512 MiB, the largest free run is "), "{said}");
    assert!(!said.contains("(-"), "a raw status code: {said}");

    // Every server is alive and well: the older file, a listing, a program.
    let get = up.command(&["get", "/small"]);
    assert_eq!(get.stdout, b"an older file", "{}", text(&get));
    let ls = text(&up.command(&["ls", "/"]));
    assert!(ls.contains("big512") && !ls.contains("too-large"), "{ls}");
    let hello = up.command(&["ax", "hello"]);
    assert_eq!(hello.status.code(), Some(7), "{}", text(&hello));
    let ps = text(&up.command(&["ps"]));
    assert!(ps.contains("bullet-server"), "{ps}");
    let consoles = up.consoles();
    assert!(!consoles.contains("panicked"), "a panic on a board:\n{consoles}");
}

/// A pool of one board with the default 1 GiB disk, fresh, and the Bullet
/// server on it; the image's path.
fn pool_with_a_gib_disk() -> (TestPool, Capability, PathBuf) {
    let (config, dir) = config(1);
    let image = dir.path().join("disk.img");
    let config = config.with_disk(&image, pool_system::DISK_BYTES, true).unwrap();
    let pool = boot_with(config, dir);
    let bullet = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    (pool, bullet, image)
}

fn client(pool: &TestPool) -> RpcClient {
    RpcClient::new(pool.new_host_port().unwrap())
}

/// Stores a few files (one of them written in chunks), syncs; the files and their
/// contents.
fn store_some_files(pool: &TestPool, bullet: &Capability) -> Vec<(Capability, Vec<u8>)> {
    let mut rpc = client(pool);
    let kept: Vec<_> = [0usize, 10, 5000, (3 << 20) + 17]
        .into_iter()
        .enumerate()
        .map(|(seed, size)| {
            let mut data = vec![0u8; size];
            pattern_piece(seed as u64, 0, &mut data);
            (files::put(&mut rpc, bullet, &data, |_| {}).unwrap(), data)
        })
        .collect();
    bullet::Client::new(&mut rpc).sync(bullet).unwrap();
    kept
}

/// Overwrites 512 bytes at block `block` of the image with zeros.
fn zero_block(image: &Path, block: u64) {
    let mut file = std::fs::OpenOptions::new().write(true).open(image).unwrap();
    file.seek(SeekFrom::Start(block * 512)).unwrap();
    file.write_all(&[0; 512]).unwrap();
    file.sync_all().unwrap();
}

/// 512 bytes at block `block` of the image.
fn read_block(image: &Path, block: u64) -> Vec<u8> {
    let mut file = std::fs::File::open(image).unwrap();
    file.seek(SeekFrom::Start(block * 512)).unwrap();
    let mut buf = vec![0; 512];
    file.read_exact(&mut buf).unwrap();
    buf
}

/// The first block of Bullet's range on the disk, and the last (its backup).
fn bullet_superblocks(image: &Path) -> (u64, u64) {
    let blocks = std::fs::metadata(image).unwrap().len() / 512;
    (pool_system::ANCHOR_BLOCKS, blocks - 1)
}

#[test]
fn a_zeroed_first_block_of_bullets_range_is_recovered_from_the_backup() {
    let (mut pool, bullet, image) = pool_with_a_gib_disk();
    let kept = store_some_files(&pool, &bullet);
    let (first, backup) = bullet_superblocks(&image);
    assert!(read_block(&image, first).starts_with(b"BULLETFS"), "Bullet's superblock is not where expected");
    assert_eq!(read_block(&image, first), read_block(&image, backup), "the backup differs");

    pool.kill_board(0).unwrap();
    zero_block(&image, first);
    pool.restart_board(0).unwrap();
    let again = pool_system::start_bullet(&pool, 0).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(again, bullet, "the same server: every capability still works");
    let mut rpc = client(&pool);
    for (file, data) in &kept {
        assert!(&files::get(&mut rpc, file, |_| {}).unwrap() == data, "a file changed");
    }
    // The first block was written again, and stays written.
    pool.kill_board(0).unwrap();
    assert_eq!(read_block(&image, first), read_block(&image, backup), "the superblock was not repaired");
    let console = pool.boards()[0].console_text();
    assert!(!console.contains("panicked"), "{console}");
}

#[test]
fn with_both_superblocks_zeroed_bullet_refuses_and_the_disk_is_unchanged() {
    let (mut pool, bullet, image) = pool_with_a_gib_disk();
    store_some_files(&pool, &bullet);
    let (first, backup) = bullet_superblocks(&image);
    pool.kill_board(0).unwrap();
    zero_block(&image, first);
    zero_block(&image, backup);
    let before = Snapshot::of(&image);
    pool.restart_board(0).unwrap();
    let refused = pool_system::start_bullet(&pool, 0).expect_err("Bullet started without a superblock");
    let said = format!("{refused:#}");
    assert!(said.contains("refusing to start") && said.contains("superblock"), "{said}");
    assert!(said.contains("left as it is"), "{said}");
    pool.kill_board(0).unwrap();
    before.assert_same(&image);
}

/// The non-zero 1 MiB pieces of a (sparse) disk image, to compare it byte for
/// byte with itself later without a second gigabyte on the host.
struct Snapshot {
    len: u64,
    pieces: Vec<(u64, Vec<u8>)>,
}

impl Snapshot {
    fn of(image: &Path) -> Snapshot {
        let mut file = std::fs::File::open(image).unwrap();
        let len = file.metadata().unwrap().len();
        let mut pieces = Vec::new();
        let (mut piece, zeros) = (vec![0u8; PIECE], vec![0u8; PIECE]);
        let mut at = 0;
        while at < len {
            let n = (len - at).min(PIECE as u64) as usize;
            file.read_exact(&mut piece[..n]).unwrap();
            if piece[..n] != zeros[..n] {
                pieces.push((at, piece[..n].to_vec()));
            }
            at += n as u64;
        }
        Snapshot { len, pieces }
    }

    fn assert_same(&self, image: &Path) {
        let now = Snapshot::of(image);
        assert_eq!(now.len, self.len, "the image changed size");
        let offsets = |s: &Snapshot| s.pieces.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(offsets(&now), offsets(self), "other pieces of the image hold data now");
        for ((at, was), (_, is)) in self.pieces.iter().zip(&now.pieces) {
            assert!(was == is, "the image changed in the MiB at {at}");
        }
    }
}
