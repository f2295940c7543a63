//! The runtime for user programs of the nucleus.
//!
//! A user program is a small `no_std` binary for `aarch64-unknown-none`:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use amoeba_rt::println;
//!
//! amoeba_rt::entry!(main);
//!
//! fn main(argument: u64) -> i32 {
//!     println!("hello, argument {argument}");
//!     0
//! }
//! ```
//!
//! [`entry!`](crate::entry) defines `_start`, the global allocator (`talc`
//! over the heap segment the nucleus maps) and the panic handler; `main`'s
//! return value becomes the process's exit status.
//!
//! * [`sys`]: every system call, raw ([`sys::syscall`]) and typed, including
//!   RPC (`trans`, `get_request`, `put_reply`).
//! * [`console`] with [`print!`](crate::print) / [`println!`](crate::println).
//! * [`stdin`]: byte and line reads of standard input (the user's terminal).
//! * [`thread`]: `spawn` / `join` on heap-allocated stacks, `yield_now`.
//! * [`sync`]: futex-based [`sync::Mutex`] and [`sync::Semaphore`].
//! * [`signal`]: catch, ignore, default, raise.
//! * [`time`]: microseconds and sleep through the nucleus, counter ticks
//!   (`cntvct_el0`) for benchmarks.
//! * [`starter`]: telling whoever started the program that it serves, or
//!   what it found (typed figures, by RPC).
//! * [`segment`] and [`process`]: memory segments, shared memory, and new
//!   processes from the board's bundle.
//!
//! On other targets (the host) the crate compiles so that workspace-wide
//! builds and unit tests work, but every system call panics.
#![cfg_attr(not(test), no_std)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

extern crate alloc;

pub mod console;
pub mod env;
pub mod group;
pub mod process;
pub mod rpc;
pub mod rt;
pub mod segment;
pub mod signal;
pub mod starter;
pub mod stdin;
pub mod sync;
pub mod sys;
pub mod thread;
pub mod time;

pub use amoeba_abi::syscall::{MemoryInfo, ProcessInfo};
pub use rt::exec_capability;

/// Defines the program's entry point, allocator and panic handler around
/// `fn main(argument: u64) -> i32`, or with `entry!(args main)` around
/// `fn main(argv: &[String]) -> i32`.
///
/// The nucleus starts the first thread at `_start` with `x0` = heap base,
/// `x1` = heap size, `x2` = the numeric argument of the process descriptor,
/// `x3` = the address of the startup block (argv, environment, capabilities;
/// see [`env`]) or 0, and `sp` just below it. The runtime gives the heap to
/// the allocator, keeps the startup block for [`env`], calls `main` and
/// exits the process with its result.
///
/// Use it at the top level of a binary crate with `#![no_main]` (and
/// `#![no_std]` for the nucleus). On the host it defines a C `main` that
/// exits with status 2 (the program needs the nucleus), or 0 when built as
/// a test target, so that workspace-wide builds and `cargo test` succeed.
#[macro_export]
macro_rules! entry {
    (args $main:path) => {
        fn __amoeba_main_with_args(_: u64) -> i32 {
            let main: fn(&[$crate::env::String]) -> i32 = $main;
            main($crate::env::args())
        }
        $crate::entry!(__amoeba_main_with_args);
    };
    ($main:path) => {
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        extern "C" fn _start(heap_base: u64, heap_size: u64, argument: u64, startup: u64) -> ! {
            let main: fn(u64) -> i32 = $main;
            // SAFETY: `_start` is the process entry: the nucleus calls it once,
            // on the first thread, with the heap segment it mapped in x0/x1
            // and the address of the startup block (or 0) in x3.
            unsafe { $crate::rt::start(&__AMOEBA_ALLOCATOR, heap_base, heap_size, argument, startup, main) }
        }

        #[cfg(target_os = "none")]
        #[global_allocator]
        static __AMOEBA_ALLOCATOR: $crate::rt::Allocator = $crate::rt::Allocator::new();

        #[cfg(target_os = "none")]
        #[panic_handler]
        fn __amoeba_panic(info: &::core::panic::PanicInfo) -> ! {
            $crate::rt::panic(info)
        }

        #[cfg(not(target_os = "none"))]
        #[unsafe(export_name = "main")]
        extern "C" fn __amoeba_host_main(_argc: i32, _argv: *const *const u8) -> i32 {
            let _main: fn(u64) -> i32 = $main;
            // As a `cargo test` target (no harness under `no_main`): no tests.
            if cfg!(test) { 0 } else { $crate::rt::host_stub() }
        }
    };
}

/// Prints to the console through the `console_write` system call.
///
/// Output is collected in a buffer on the stack and written in as few calls
/// as possible (one for anything up to [`console::LINE_MAX`] bytes), so lines
/// from different threads or processes do not interleave mid-line. It does
/// not allocate, so signal handlers may print.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::print(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the console (see [`print!`](crate::print)); the line and
/// its newline go out in one `console_write`.
#[macro_export]
macro_rules! println {
    () => {
        $crate::console::print(::core::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print_line(::core::format_args!($($arg)*))
    };
}
