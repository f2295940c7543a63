//! Threads of the process: [`spawn`] a closure on a stack from the heap,
//! [`JoinHandle::join`] for its result.
//!
//! All threads of a process run on its board's one processor, preemptively
//! or run-to-completion as the process was created. A panic in any thread
//! ends the whole process (status 101).

use super::sync::Mutex;
use super::sys;
use alloc::alloc::{alloc, dealloc, handle_alloc_error};
use alloc::boxed::Box;
use alloc::sync::Arc;
use amoeba_abi::Status;
use core::alloc::Layout;
use core::ptr::NonNull;

/// Stack size of threads from [`spawn`].
pub const DEFAULT_STACK_SIZE: usize = 16 * 1024;
/// Smallest stack [`spawn_with_stack`] accepts (a signal handler alone
/// starts 512 bytes below the interrupted stack pointer).
pub const MIN_STACK_SIZE: usize = 4 * 1024;

/// A thread stack allocated from the heap (16-byte aligned).
struct Stack {
    base: NonNull<u8>,
    layout: Layout,
}

impl Stack {
    fn new(size: usize) -> Stack {
        let size = size.max(MIN_STACK_SIZE).next_multiple_of(16);
        let layout = Layout::from_size_align(size, 16).expect("stack layout");
        // SAFETY: the layout has a nonzero size.
        let base = unsafe { alloc(layout) };
        let base = NonNull::new(base).unwrap_or_else(|| handle_alloc_error(layout));
        Stack { base, layout }
    }

    /// The initial stack pointer (one past the end, 16-byte aligned).
    fn top(&self) -> u64 {
        self.base.as_ptr() as usize as u64 + self.layout.size() as u64
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: allocated in `Stack::new` with this layout; dropped only
        // once the thread that ran on it has ended (see `JoinHandle`).
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}

type Start = Box<dyn FnOnce() + Send + 'static>;

/// Where a new thread starts: `arg` is a `Box<Start>` turned into a pointer.
extern "C" fn thread_start(arg: u64) -> ! {
    // SAFETY: `spawn_with_stack` passes the pointer from `Box::into_raw` of a
    // `Box<Start>` and gives it to this thread alone.
    let start = unsafe { Box::from_raw(arg as usize as *mut Start) };
    start();
    sys::thread_exit(0)
}

/// Owns a spawned thread: [`join`](JoinHandle::join) waits for it and
/// returns its result. Dropping the handle detaches the thread (its stack is
/// then never freed).
pub struct JoinHandle<T> {
    tid: u32,
    result: Arc<Mutex<Option<T>>>,
    stack: Option<Stack>,
}

impl<T> JoinHandle<T> {
    /// The nucleus's id of the thread (for [`super::signal::raise`]).
    pub fn thread_id(&self) -> u32 {
        self.tid
    }

    /// Waits for the thread to end and returns what its closure returned.
    pub fn join(mut self) -> T {
        loop {
            match sys::thread_join(self.tid) {
                Ok(_) => break,
                Err(Status::Interrupted) => continue,
                Err(status) => panic!("thread_join({}): {status}", self.tid),
            }
        }
        // The thread has ended: nothing runs on its stack any more.
        drop(self.stack.take());
        self.result.lock().take().expect("a joined thread left its result")
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // Not joined: the thread may still run on its stack.
        if let Some(stack) = self.stack.take() {
            core::mem::forget(stack);
        }
    }
}

/// Runs `f` in a new thread with a [`DEFAULT_STACK_SIZE`] stack.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_with_stack(DEFAULT_STACK_SIZE, f)
}

/// Runs `f` in a new thread with a stack of `stack_size` bytes from the
/// heap. Panics if the nucleus refuses the thread.
pub fn spawn_with_stack<F, T>(stack_size: usize, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    try_spawn_with_stack(stack_size, f).unwrap_or_else(|status| panic!("thread_create: {status}"))
}

/// Like [`spawn_with_stack`], returning the nucleus's refusal as an error.
pub fn try_spawn_with_stack<F, T>(stack_size: usize, f: F) -> Result<JoinHandle<T>, Status>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let slot = result.clone();
    let start: Start = Box::new(move || {
        let value = f();
        *slot.lock() = Some(value);
    });
    let arg = Box::into_raw(Box::new(start));
    let stack = Stack::new(stack_size);
    let entry = thread_start as extern "C" fn(u64) -> ! as usize as u64;
    // SAFETY: `thread_start` never returns and takes exactly this argument;
    // the stack is the new thread's alone until it is joined.
    match unsafe { sys::thread_create(entry, stack.top(), arg as usize as u64) } {
        Ok(tid) => Ok(JoinHandle { tid, result, stack: Some(stack) }),
        Err(status) => {
            // SAFETY: no thread was started, so the box is still ours.
            drop(unsafe { Box::from_raw(arg) });
            Err(status)
        }
    }
}

/// Lets another thread run.
pub fn yield_now() {
    sys::yield_now();
}
