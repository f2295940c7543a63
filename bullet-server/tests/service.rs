//! The Bullet interface end to end on the host: a client stub talks through a
//! loopback transport to `BulletService`, whose store runs over a `DiskObject` that
//! itself talks through a loopback transport to a disk server over `SimDisk`. The
//! wiring the board program uses, minus the network.

use amoeba_abi::{Capability, Check, Header, Port, Rights, Rng, Status};
use amoeba_client::files;
use amoeba_ipc::interface::{Call, Objects, Transport};
use amoeba_ipc::interfaces::process::DiskGeometry;
use amoeba_ipc::interfaces::{BS_COMMIT, BS_IO_MAX, BS_SAFETY, bullet, disk, standard};
use bullet_server::sim::SimDisk;
use bullet_server::{BlockDevice, BulletService, Config, DiskObject, ReplyInto, Store};

/// A disk server over a simulated disk, with one disk object.
struct DiskServer {
    disk: SimDisk,
    port: Port,
    random: Check,
}

impl Objects for DiskServer {
    fn port(&self) -> Port {
        self.port
    }
    fn check(&self, object: u32) -> Option<Check> {
        (object == 1).then_some(self.random)
    }
}

impl disk::Server for DiskServer {
    fn geometry(&mut self, _: &Call<'_>) -> Result<DiskGeometry, Status> {
        Ok(DiskGeometry { block_size: self.disk.block_size() as u32, block_count: self.disk.block_count() })
    }
    fn read(&mut self, _: &Call<'_>, first: u64, count: u32) -> Result<Vec<u8>, Status> {
        let mut buf = vec![0; count as usize * self.disk.block_size()];
        self.disk.read(first, &mut buf).map_err(|_| Status::ArgBad)?;
        Ok(buf)
    }
    fn write(&mut self, _: &Call<'_>, first: u64, data: &[u8]) -> Result<(), Status> {
        self.disk.write(first, data).map_err(|_| Status::ArgBad)
    }
    fn flush(&mut self, _: &Call<'_>) -> Result<(), Status> {
        self.disk.flush().map_err(|_| Status::SysErr)
    }
}

/// A generated `dispatch` function.
type Dispatch<S> = fn(&mut S, &Header, &[u8]) -> (Header, Vec<u8>);

/// Calls a dispatcher directly, counting the calls.
struct Loopback<S> {
    server: S,
    calls: usize,
    dispatch: Dispatch<S>,
}

impl<S> Transport for Loopback<S> {
    fn trans(&mut self, request: &Header, buf: &[u8], _: usize) -> Result<(Header, Vec<u8>), Status> {
        self.calls += 1;
        Ok((self.dispatch)(&mut self.server, request, buf))
    }
}

/// Replies are copied into the caller's buffer (the board's transport receives them
/// there directly).
impl<S> ReplyInto for Loopback<S> {}

type Served = Loopback<BulletService<DiskObject<Loopback<DiskServer>>>>;

fn disk_loopback() -> (Loopback<DiskServer>, Capability) {
    let (port, random) = (Port([4; 6]), Check([5; 6]));
    let server = DiskServer { disk: SimDisk::new(512, 16384), port, random };
    let capability = Capability::owner(port, 1, random);
    (Loopback { server, calls: 0, dispatch: disk::dispatch }, capability)
}

fn bullet_over_rpc_disk() -> Served {
    let (disk, capability) = disk_loopback();
    let device = DiskObject::open(disk, capability).expect("the disk answers its geometry");
    let config = Config { inode_count: 64, ..Config::default() };
    let store =
        Store::format(device, config, Rng::from_seed([9; 32])).unwrap_or_else(|f| panic!("{:?}", f.error));
    Loopback { server: BulletService::new(store), calls: 0, dispatch: BulletService::dispatch }
}

#[test]
fn files_round_trip_through_the_interface_over_a_disk_object() {
    let mut served = bullet_over_rpc_disk();
    let sup = served.server.store.super_capability();
    let mut files = bullet::Client::new(&mut served);
    let big: Vec<u8> = (0..(1 << 20) + 1).map(|i| (i * 7 % 251) as u8).collect();
    for data in [&b""[..], b"x", &big] {
        let file = files.create(&sup, BS_COMMIT | BS_SAFETY, data).unwrap();
        assert_eq!(files.size(&file).unwrap(), data.len() as u64);
        let mut back = files.read(&file, 0, data.len() as u32).unwrap();
        assert_eq!(back.len(), data.len().min(BS_IO_MAX), "one reply carries at most BS_IO_MAX bytes");
        back.extend(files.read(&file, back.len() as u64, data.len() as u32).unwrap());
        assert!(back == data, "{} bytes came back changed", data.len());
    }
    // The store really went through the disk object: many block transfers.
    let disk = served.server.store.device().transport();
    assert!(disk.calls > 4, "only {} disk calls", disk.calls);
}

#[test]
fn edits_make_new_files_and_rights_are_enforced() {
    let mut served = bullet_over_rpc_disk();
    let sup = served.server.store.super_capability();
    let mut files = bullet::Client::new(&mut served);
    let file = files.create(&sup, BS_COMMIT, b"hello world").unwrap();
    let edited = files.modify(&file, 0, BS_COMMIT, b"HELLO").unwrap();
    assert_ne!(edited, file);
    assert_eq!(files.read(&file, 0, 100).unwrap(), b"hello world");
    assert_eq!(files.read(&edited, 0, 100).unwrap(), b"HELLO world");

    let read_only = file.restrict(Rights::READ).unwrap();
    assert_eq!(files.read(&read_only, 6, 5).unwrap(), b"world");
    assert_eq!(files.modify(&read_only, 0, BS_COMMIT, b"x"), Err(Status::Denied));
    let mut forged = file;
    forged.check.0[0] ^= 1;
    assert_eq!(files.read(&forged, 0, 1), Err(Status::CapBad));
    let mut std = standard::Client::new(&mut served);
    assert_eq!(std.destroy(&read_only), Err(Status::Denied));
    assert!(std.info(&file).unwrap().contains("11 bytes"), "{}", std.info(&file).unwrap());
    std.destroy(&file).unwrap();
    assert_eq!(bullet::Client::new(&mut served).read(&file, 0, 1), Err(Status::CapBad));
    assert_eq!(bullet::Client::new(&mut served).read(&edited, 0, 5).unwrap(), b"HELLO");
}

#[test]
fn files_larger_than_one_request_stream_through_the_interface() {
    let mut served = bullet_over_rpc_disk();
    let sup = served.server.store.super_capability();
    let size = (2 << 20) + 777;
    let data: Vec<u8> = (0..size).map(|i| (i * 13 % 253) as u8).collect();
    let mut pieces = 0;
    let file = files::put(&mut served, &sup, &data, |_| pieces += 1).unwrap();
    assert_eq!(pieces, 3, "sent in 1 MiB pieces");
    // Straight to disk: the server held none of it in memory as an uncommitted file.
    let stats = served.server.store.stats();
    assert_eq!((stats.uncommitted_bytes, stats.uncommitted), (0, 0));
    // A read asking for more than one request's worth gets one request's worth.
    let first = bullet::Client::new(&mut served).read(&file, 0, 3 << 20).unwrap();
    assert_eq!(first.len(), BS_IO_MAX);
    // Streamed back piece by piece into a sink, and whole.
    let mut back = Vec::new();
    let sink = |p: &[u8]| {
        back.extend_from_slice(p);
        Ok::<_, ()>(())
    };
    let got = files::get_into(&mut served, &file, sink, |_| {});
    assert_eq!(got, Ok(size as u64));
    assert!(back == data);
    assert!(files::get(&mut served, &file, |_| {}).unwrap() == data);
    // From a source that fails halfway: the error is the source's, and the
    // reserved blocks are given back at once.
    let free = bullet::Client::new(&mut served).stats(&sup).unwrap().free_blocks;
    let mut calls = 0;
    let failed = files::put_from(
        &mut served,
        &sup,
        size as u64,
        |piece| {
            calls += 1;
            if calls == 2 {
                return Err("the local file went away");
            }
            piece.fill(7);
            Ok(())
        },
        |_| {},
    );
    assert_eq!(failed, Err(files::StreamError::Local("the local file went away")));
    let stats = bullet::Client::new(&mut served).stats(&sup).unwrap();
    assert_eq!((stats.free_blocks, stats.uncommitted), (free, 0));
}

#[test]
fn a_file_without_room_is_explained_in_sizes() {
    let mut served = bullet_over_rpc_disk();
    let sup = served.server.store.super_capability();
    let stats = bullet::Client::new(&mut served).stats(&sup).unwrap();
    assert_eq!(stats.largest_file, stats.free_blocks * 512);
    assert_eq!(stats.max_files, 64);
    let too_big = stats.largest_file + 1;
    let ones = |p: &mut [u8]| {
        p.fill(1);
        Ok::<_, ()>(())
    };
    let refused = files::put_from(&mut served, &sup, too_big, ones, |_| {});
    assert_eq!(refused, Err(files::StreamError::Server(Status::NoSpace)));
    let why = files::why_no_room(&mut served, &sup, too_big).unwrap();
    assert_eq!(why, files::NoRoom::TooLarge { size: too_big, largest: stats.largest_file });
    assert!(why.to_string().starts_with("file too large: "), "{why}");
    // The largest file the stats promise is taken.
    let fits = files::put_from(&mut served, &sup, stats.largest_file, ones, |_| {});
    assert!(fits.is_ok(), "{fits:?}");
    let why = files::why_no_room(&mut served, &sup, 1).unwrap();
    assert_eq!(why, files::NoRoom::DiskFull);
    assert_eq!(why.to_string(), "disk full");
}

/// The board's server loop: each request answered through `dispatch_then_write`,
/// recording how many disk calls had been made when the answer went out.
struct WriteBehind {
    service: BulletService<DiskObject<Loopback<DiskServer>>>,
    disk_calls_at_answer: usize,
}

impl Transport for WriteBehind {
    fn trans(&mut self, request: &Header, buf: &[u8], _: usize) -> Result<(Header, Vec<u8>), Status> {
        let mut answer = None;
        let calls = &mut self.disk_calls_at_answer;
        let disk = self.service.store.device().transport().calls;
        self.service.dispatch_then_write(request, buf, |h, d| {
            *calls = disk;
            answer = Some((*h, d.to_vec()));
        });
        answer.ok_or(Status::SysErr)
    }
}

#[test]
fn a_chunk_is_answered_first_and_written_before_the_next_request() {
    let served = bullet_over_rpc_disk();
    let mut server = WriteBehind {
        service: BulletService::with_write_behind(served.server.store),
        disk_calls_at_answer: 0,
    };
    let sup = server.service.store.super_capability();
    let data: Vec<u8> = (0..(3 << 20) + 5).map(|i| (i % 249) as u8).collect();
    let file = bullet::Client::new(&mut server).reserve(&sup, data.len() as u64).unwrap();
    for (i, piece) in data.chunks(BS_IO_MAX).enumerate() {
        let before = server.service.store.device().transport().calls;
        bullet::Client::new(&mut server).write(&file, (i * BS_IO_MAX) as u64, piece).unwrap();
        assert_eq!(server.disk_calls_at_answer, before, "the disk was written before the answer");
        assert!(server.service.store.device().transport().calls > before, "the chunk was never written");
    }
    bullet::Client::new(&mut server).commit(&file, BS_SAFETY).unwrap();
    assert!(files::get(&mut server, &file, |_| {}).unwrap() == data);
    // A chunk whose disk write fails: the client hears of it at its next write or
    // at the commit, and the file is never committed.
    let file = bullet::Client::new(&mut server).reserve(&sup, data.len() as u64).unwrap();
    server.service.store.device_mut().transport_mut().server.disk.crash_after(0);
    bullet::Client::new(&mut server).write(&file, 0, &data[..BS_IO_MAX]).unwrap();
    server
        .service
        .store
        .device_mut()
        .transport_mut()
        .server
        .disk
        .restart(&mut bullet_server::sim::SplitMix64::new(1));
    let next =
        bullet::Client::new(&mut server).write(&file, BS_IO_MAX as u64, &data[BS_IO_MAX..2 * BS_IO_MAX]);
    assert_eq!(next, Err(Status::SysErr));
    assert_eq!(bullet::Client::new(&mut server).commit(&file, BS_SAFETY), Err(Status::SysErr));
    assert_eq!(bullet::Client::new(&mut server).read(&file, 0, 1), Err(Status::NotNow));
}
