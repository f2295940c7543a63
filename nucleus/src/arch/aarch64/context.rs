//! Saved thread state for `switch_context` (see `context.s`).

/// Callee-saved registers of a thread that is not running; layout fixed by `context.s`.
#[repr(C)]
#[derive(Default, Clone)]
pub struct Context {
    x19_to_x28: [u64; 10],
    fp: u64,
    lr: u64,
    sp: u64,
    d8_to_d15: [u64; 8],
}

const _: () = assert!(core::mem::size_of::<Context>() == 168);

// SAFETY: `context.s` defines these with the C ABI and these signatures.
unsafe extern "C" {
    fn switch_context(from: *mut Context, to: *const Context);
    fn kernel_thread_start();
    fn user_thread_start();
}

impl Context {
    /// A kernel thread that will call `entry(arg)` on the stack ending at `stack_top`.
    pub fn for_kernel_thread(stack_top: usize, entry: extern "C" fn(usize), arg: usize) -> Self {
        let mut context = Self::default();
        context.x19_to_x28[0] = entry as *const () as u64;
        context.x19_to_x28[1] = arg as u64;
        context.lr = kernel_thread_start as *const () as u64;
        context.sp = stack_top as u64;
        context
    }

    /// A user thread whose trap frame has been written at `frame` (its kernel
    /// stack pointer): the first switch to it returns to EL0 through that frame.
    pub fn for_user_thread(frame: usize) -> Self {
        Self { lr: user_thread_start as *const () as u64, sp: frame as u64, ..Self::default() }
    }
}

/// Saves the running thread's state into `from` and resumes `to`.
///
/// # Safety
/// Both pointers must stay valid until the switch back; `to` must hold a
/// state made by `for_*_thread` or saved by an earlier switch, with its
/// stack alive. Call with IRQs masked.
pub unsafe fn switch(from: *mut Context, to: *const Context) {
    // SAFETY: the caller guarantees both contexts and the target stack are valid.
    unsafe { switch_context(from, to) }
}
