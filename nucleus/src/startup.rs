//! The boot sequence of the nucleus (`kernel_main`): devices, memory, the
//! process core and the services, then the network thread; and the panic
//! handler.

use crate::arch::cpu;
use crate::devicetree::BootInfo;
use crate::disk::DiskService;
use crate::group::Groups;
use crate::memory::segments::SegmentTable;
use crate::net::pool_control::{Identity, PoolControl};
use crate::power::ExitStatus;
use crate::process::server::ProcessServer;
use crate::rpc::Rpc;
use crate::services::{self, Services};
use crate::sync::IrqMutex;
use crate::{board, drivers, heap, net, power, println, process};
use core::panic::PanicInfo;
use nucleus::contiguous::ContiguousAllocator;
use pool_control::secret::BoardSecret;

/// Most of the RAM the kernel heap takes (the rest is for segments): enough
/// for every process's quotas of threads and transactions to be used at
/// once by a few processes, with FLIP's and the groups' budgets beside them.
const KERNEL_HEAP_MAX: usize = 48 << 20;
/// The heap never takes more than this share of RAM (1/4).
const KERNEL_HEAP_SHARE: usize = 4;

/// Entered from `boot.s` with the MMU on, running in the high half.
// SAFETY: the only symbol of that name; `boot.s` passes the DTB address.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(dtb_phys: usize) -> ! {
    crate::console::init();
    let info = match BootInfo::parse(dtb_phys) {
        Ok(info) => info,
        Err(error) => {
            println!("nucleus: cannot read the device tree at {dtb_phys:#x}: {error:?}");
            power::stop(ExitStatus::Failure);
        }
    };
    if info.bootarg("semihosting").is_some() {
        power::enable_semihosting_exit();
    }
    let board_id = info.bootarg("board").and_then(|v| v.parse().ok()).unwrap_or(0u16);
    println!("nucleus: board {board_id} booting; bootargs \"{}\"", info.bootargs());

    let heap = heap_range(&info);
    let heap_size = heap::init(heap.clone());
    println!(
        "nucleus: RAM {:#x}..{:#x}, kernel {:#x}..{:#x}, heap {} KiB",
        info.memory.start,
        info.memory.end,
        board::kernel_image().start,
        board::kernel_image().end,
        heap_size / 1024
    );

    drivers::gic::init();
    drivers::timer::init();
    crate::arch::pmu::init();

    let mac = match drivers::net::init(&info) {
        Ok(mac) => mac,
        Err(error) => {
            println!("nucleus: no network: {error}");
            power::stop(ExitStatus::Failure);
        }
    };

    let disk = disk_geometry(&info);

    let role = role_name(info.bootarg("role").unwrap_or("pool"));
    let incarnation =
        info.bootarg("incarnation").and_then(|v| v.parse().ok()).unwrap_or(cpu::counter() as u32);
    let mut seed = entropy_seed(board_id, incarnation, mac);
    match drivers::entropy::from_device(&info) {
        Some(random) => seed.iter_mut().zip(random).for_each(|(byte, random)| *byte ^= random),
        None => println!("nucleus: no virtio-rng device; capabilities are seeded from timing only"),
    }
    let mut rng = amoeba_abi::Rng::from_seed(seed);
    let segment_memory = segment_memory(&info, heap.end);
    let free = segment_memory.fragmentation().free_bytes;
    let segments = SegmentTable::new(rng.port(), segment_memory);
    // The initrd starts with the board's secret (for the process server), then the bundle.
    let (secret, bundle) = pool_control::secret::BoardSecret::split(bundle_bytes(&info));
    let endpoint = flip::Endpoint::new(
        flip::Mac(mac.0),
        incarnation,
        // Survive a lossy switch: retry for about 10 s before declaring a server dead.
        flip::Config::for_lossy_network(),
    );
    // A test build can shrink the address-space id space (`asids=N`) to
    // show that ids are reused without creating 65,535 processes.
    let asid_limit = info.bootarg("asids").and_then(|v| v.parse().ok()).unwrap_or(u16::MAX);
    process::init(segments, rng, asid_limit);
    start_services(endpoint, bundle, secret, disk);
    println!(
        "nucleus: {} MiB for segments; bundle of {} programs",
        free >> 20,
        pool_control::bundle::Bundle::parse(bundle).map(|b| b.len()).unwrap_or(0)
    );

    if let Some(mode) = info.bootarg("test") {
        run_test_mode(mode);
    }

    *NETWORK_START.lock() = Some(PoolControl::new(Identity { mac, board_id, incarnation, role }));
    if let Err(status) = process::with(|core| core.spawn_kernel_thread("network", network_thread, 0)) {
        println!("nucleus: cannot start the network thread: {status}");
        power::stop(ExitStatus::Failure);
    }
    process::sched::idle_loop()
}

/// What the network thread starts with, handed over from `kernel_main`.
static NETWORK_START: IrqMutex<Option<PoolControl>> = IrqMutex::new(None);

/// RPC, groups, the process server (on the get-port and host capability of
/// the board's `secret`) and the disk server, whose ports the nucleus serves.
fn start_services(
    endpoint: flip::Endpoint,
    bundle: &'static [u8],
    secret: Option<BoardSecret>,
    disk: Option<drivers::block::Geometry>,
) {
    let mut rpc = Rpc::new(endpoint);
    let groups = Groups::new(rpc.mac());
    let (processes, process_port) = process::with(|core| ProcessServer::new(core, bundle, secret));
    rpc.serve_in_kernel(&process_port);
    let disk = disk.map(|geometry| {
        let (disk, disk_port) = process::with(|core| DiskService::new(core, geometry));
        rpc.serve_in_kernel(&disk_port);
        disk
    });
    services::init(Services { rpc, groups, processes, disk });
}

/// Sets up the board's disk, if it has one.
fn disk_geometry(info: &BootInfo) -> Option<drivers::block::Geometry> {
    match drivers::block::init(info) {
        Ok(geometry) => {
            let mib = (geometry.sectors * drivers::block::SECTOR_SIZE as u64) >> 20;
            let access = if geometry.read_only { "read-only" } else { "read-write" };
            let cache =
                if geometry.write_cache { "write cache flushed on request" } else { "no write cache" };
            println!("nucleus: disk of {mib} MiB ({access}, {cache})");
            Some(geometry)
        }
        Err(drivers::block::BlockError::NoDevice) => None,
        Err(error) => {
            println!("nucleus: the disk is not usable: {error}");
            None
        }
    }
}

/// The network thread's entry: see `net::run`.
extern "C" fn network_thread(_arg: usize) {
    let pool_control = NETWORK_START.lock().take().expect("kernel_main hands the network thread its state");
    net::run(pool_control)
}

/// The non-secret part of the capability generator's seed: board identity
/// and boot incarnation make it differ between boards and boots, the counter
/// adds timing jitter. The virtio-rng device supplies the secret part.
fn entropy_seed(board_id: u16, incarnation: u32, mac: pool_control::Mac) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&cpu::counter().to_le_bytes());
    seed[8..12].copy_from_slice(&incarnation.to_le_bytes());
    seed[12..14].copy_from_slice(&board_id.to_le_bytes());
    seed[14..20].copy_from_slice(&mac.0);
    seed[20..28].copy_from_slice(&cpu::counter().wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    seed
}

/// RAM above the kernel heap, less the initrd and the device tree.
fn segment_memory(info: &BootInfo, heap_end: usize) -> ContiguousAllocator {
    let mut free = alloc::vec![heap_end..info.memory.end];
    for used in [Some(info.dtb.clone()), info.initrd.clone()].into_iter().flatten() {
        free = free
            .into_iter()
            .flat_map(|range| {
                let before = range.start..range.end.min(used.start);
                let after = range.start.max(used.end)..range.end;
                [before, after]
            })
            .filter(|range| range.start < range.end)
            .collect();
    }
    let mut allocator = ContiguousAllocator::new();
    for range in free {
        allocator.add_range(range);
    }
    allocator
}

/// The program bundle QEMU loaded as the initrd (empty if none).
fn bundle_bytes(info: &BootInfo) -> &'static [u8] {
    match &info.initrd {
        Some(range) if board::RAM_MAPPED.contains(&range.start) && range.end <= board::RAM_MAPPED.end => {
            // SAFETY: QEMU loaded the initrd into RAM at this range; it lies
            // in the boot mapping, is excluded from heap and segments, and
            // nothing writes it.
            unsafe {
                core::slice::from_raw_parts(
                    board::phys_to_virt(range.start) as *const u8,
                    range.end - range.start,
                )
            }
        }
        _ => &[],
    }
}

/// Free RAM right above the kernel image, below whatever QEMU placed
/// higher up (initrd, device tree).
fn heap_range(info: &BootInfo) -> core::ops::Range<usize> {
    const PAGE: usize = 4096;
    let start = board::kernel_image().end.next_multiple_of(PAGE);
    let ram = info.memory.end.saturating_sub(info.memory.start);
    let mut end = (start + KERNEL_HEAP_MAX.min(ram / KERNEL_HEAP_SHARE)).min(info.memory.end);
    for used in [Some(info.dtb.clone()), info.initrd.clone()].into_iter().flatten() {
        if used.start >= start {
            end = end.min(used.start & !(PAGE - 1));
        }
    }
    start..end.max(start)
}

/// Roles are a closed set, so the name can live for the board's lifetime.
fn role_name(requested: &str) -> &'static str {
    const ROLES: [&str; 5] = ["pool", "bullet", "directory", "run", "test"];
    ROLES.into_iter().find(|role| *role == requested).unwrap_or("pool")
}

/// Test-only boot modes the pool tests use to check failure handling.
fn run_test_mode(mode: &str) {
    match mode {
        "exception" => {
            println!("nucleus: test mode: reading an unmapped kernel address");
            // SAFETY: deliberately unsound read of an unmapped address, to
            // check the exception report; the board stops in the handler.
            let value = unsafe { core::ptr::read_volatile(0xFFFF_0001_0000_0000 as *const u64) };
            println!("nucleus: read {value:#x}, which should have faulted");
            power::stop(ExitStatus::Failure);
        }
        "poweroff" => {
            println!("nucleus: test mode: powering off");
            power::stop(ExitStatus::Success);
        }
        // Until the process server hands out disk capabilities.
        "disk" => {
            let started = process::with(|core| {
                core.spawn_kernel_thread("disk-self-test", crate::disk_self_test::run, 0)
            });
            if let Err(status) = started {
                println!("nucleus: cannot start the disk self-test: {status}");
            }
        }
        other => println!("nucleus: unknown test mode \"{other}\" ignored"),
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    use core::fmt::Write;
    let mut out = crate::console::emergency_writer();
    let _ = writeln!(out, "\n*** nucleus panic: {info}");
    power::stop(ExitStatus::Failure)
}
