// Thread switching. `switch_context(from, to)` saves the callee-saved state
// of the running thread (AAPCS64: x19-x29, lr, sp, d8-d15) into `*from` and
// resumes the thread whose state is in `*to`. Everything else a thread
// needs (its trap frame, if it came from or goes to EL0) is on its kernel
// stack already.

.section .text
.global switch_context
switch_context:
    mov     x9, sp
    stp     x19, x20, [x0, #0]
    stp     x21, x22, [x0, #16]
    stp     x23, x24, [x0, #32]
    stp     x25, x26, [x0, #48]
    stp     x27, x28, [x0, #64]
    stp     x29, x30, [x0, #80]
    str     x9,       [x0, #96]
    stp     d8, d9,   [x0, #104]
    stp     d10, d11, [x0, #120]
    stp     d12, d13, [x0, #136]
    stp     d14, d15, [x0, #152]

    ldp     x19, x20, [x1, #0]
    ldp     x21, x22, [x1, #16]
    ldp     x23, x24, [x1, #32]
    ldp     x25, x26, [x1, #48]
    ldp     x27, x28, [x1, #64]
    ldp     x29, x30, [x1, #80]
    ldr     x9,       [x1, #96]
    mov     sp, x9
    ldp     d8, d9,   [x1, #104]
    ldp     d10, d11, [x1, #120]
    ldp     d12, d13, [x1, #136]
    ldp     d14, d15, [x1, #152]
    ret

// First run of a kernel thread: x19 = function, x20 = argument.
.global kernel_thread_start
kernel_thread_start:
    mov     x0, x20
    blr     x19
    bl      kernel_thread_exit
1:  b       1b

// First run of a user thread: sp points at its prepared trap frame.
.global user_thread_start
user_thread_start:
    b       exception_return
