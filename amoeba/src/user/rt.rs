//! Process start, heap allocator and panic handling; the
//! [`entry!`](crate::entry) macro wires them into a program.

use super::sys;
use crate::Capability;
use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The capability given at exec, in wire form (two big-endian halves);
/// `EXEC_CAPABILITY_GIVEN` says whether there was one.
static EXEC_CAPABILITY: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
static EXEC_CAPABILITY_GIVEN: AtomicBool = AtomicBool::new(false);

/// The capability this process was started with (by the host's exec,
/// e.g. the group it is to join), if any.
pub fn exec_capability() -> Option<Capability> {
    if !EXEC_CAPABILITY_GIVEN.load(Ordering::Acquire) {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&EXEC_CAPABILITY[0].load(Ordering::Relaxed).to_be_bytes());
    bytes[8..].copy_from_slice(&EXEC_CAPABILITY[1].load(Ordering::Relaxed).to_be_bytes());
    Some(Capability::decode(&bytes))
}

/// The body of `_start`: hands the heap to `allocator`, keeps the exec
/// capability, runs `main` and exits the process with its result.
///
/// # Safety
///
/// Call once, at process entry, with the heap segment the nucleus passed
/// (x0 = base, x1 = size): mapped, writable, used by nothing else; and
/// `capability` either 0 or the address of 16 readable bytes (x3).
pub unsafe fn start(
    allocator: &'static Allocator,
    heap_base: u64,
    heap_size: u64,
    argument: u64,
    capability: u64,
    main: fn(u64) -> i32,
) -> ! {
    if capability != 0 {
        // SAFETY: the caller guarantees 16 readable bytes there (the top of
        // the stack segment, above the first frame).
        let bytes = unsafe { core::ptr::read_unaligned(capability as usize as *const [u8; 16]) };
        EXEC_CAPABILITY[0]
            .store(u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")), Ordering::Relaxed);
        EXEC_CAPABILITY[1]
            .store(u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")), Ordering::Relaxed);
        EXEC_CAPABILITY_GIVEN.store(true, Ordering::Release);
    }
    if heap_base != 0 && heap_size != 0 {
        // SAFETY: the caller guarantees the range is this process's unused
        // heap segment, mapped for the life of the process.
        unsafe {
            allocator.0.lock().claim(heap_base as usize as *mut u8, heap_size as usize);
        }
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
