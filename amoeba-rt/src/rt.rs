//! Process start, heap allocator and panic handling; the
//! [`entry!`](crate::entry) macro wires them into a program.

use super::sys;
use amoeba_abi::Capability;
use amoeba_ipc::interfaces::process::Startup;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};
use talc::lock_api::{GuardSend, RawMutex};
use talc::source::Manual;

/// Exit status of a process whose thread panicked.
pub const PANIC_EXIT_STATUS: i32 = 101;

/// The lock around the allocator: a spin lock that yields the processor
/// while another thread holds it (on a one-core board, spinning only burns
/// the holder's time).
///
/// Like any lock it is not reentrant: signal handlers must not allocate.
pub struct YieldLock(AtomicBool);

// SAFETY: `try_lock` acquires the flag with an atomic compare-exchange, so at
// most one owner holds it at a time; `unlock` releases it (Release pairs with
// the Acquire of the next owner).
unsafe impl RawMutex for YieldLock {
    #[allow(clippy::declare_interior_mutable_const)] // required by lock_api
    const INIT: YieldLock = YieldLock(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    fn lock(&self) {
        while !self.try_lock() {
            sys::yield_now();
        }
    }

    fn try_lock(&self) -> bool {
        self.0.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The global allocator of a user program: `talc` over the heap segment the
/// nucleus maps for the process (claimed by [`start`]).
pub struct Allocator(talc::TalcLock<YieldLock, Manual>);

impl Allocator {
    /// An allocator without memory until [`start`] gives it the heap.
    pub const fn new() -> Allocator {
        Allocator(talc::TalcLock::new(Manual))
    }
}

impl Default for Allocator {
    fn default() -> Allocator {
        Allocator::new()
    }
}

// SAFETY: every method forwards to talc's `TalcLock`, a sound GlobalAlloc.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's obligations are talc's.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's obligations are talc's.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's obligations are talc's.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's obligations are talc's.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// The capability the host handed this process when it started it (named `ARG`
/// in the capability environment), e.g. the group it is to join.
pub fn exec_capability() -> Option<Capability> {
    super::env::capability(EXEC_CAPABILITY_NAME)
}

/// The name in the capability environment of [`exec_capability`].
pub const EXEC_CAPABILITY_NAME: &str = "ARG";

/// Reads the startup block at `address`: a little-endian u32 length, then the
/// `postcard` form of a [`Startup`].
///
/// # Safety
///
/// `address` is 0 or points at such a block in mapped memory.
unsafe fn read_startup(address: u64) -> Option<Startup> {
    if address == 0 {
        return None;
    }
    // SAFETY: the caller guarantees a block there: its 4-byte length first...
    let len = unsafe { core::ptr::read_unaligned(address as usize as *const u32) } as usize;
    // SAFETY: ...then `len` bytes, all within the stack segment the block sits in.
    let bytes = unsafe { core::slice::from_raw_parts((address as usize + 4) as *const u8, len) };
    Startup::from_body(bytes)
}

/// The body of `_start`: hands the heap to `allocator`, keeps the startup
/// block, runs `main` and exits the process with its result.
///
/// # Safety
///
/// Call once, at process entry, with the heap segment the nucleus passed
/// (x0 = base, x1 = size): mapped, writable, used by nothing else; and
/// `startup` either 0 or the address of the startup block the process
/// server wrote (x3).
pub unsafe fn start(
    allocator: &'static Allocator,
    heap_base: u64,
    heap_size: u64,
    argument: u64,
    startup: u64,
    main: fn(u64) -> i32,
) -> ! {
    if heap_base != 0 && heap_size != 0 {
        // SAFETY: the caller guarantees the range is this process's unused
        // heap segment, mapped for the life of the process.
        unsafe {
            allocator.0.lock().claim(heap_base as usize as *mut u8, heap_size as usize);
        }
    }
    // SAFETY: the caller guarantees `startup` is 0 or a startup block.
    if let Some(block) = unsafe { read_startup(startup) } {
        super::env::set(block);
    }
    sys::exit(main(argument))
}

/// The panic handler: prints where and why, then ends the process (all of
/// its threads) with status [`PANIC_EXIT_STATUS`].
pub fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(location) => crate::println!("panicked at {location}: {}", info.message()),
        None => crate::println!("panicked: {}", info.message()),
    }
    sys::exit(PANIC_EXIT_STATUS)
}

/// What a user program's `main` does on the host (it only runs on the
/// nucleus): exit status 2.
pub fn host_stub() -> i32 {
    2
}
