// Entry of the nucleus. QEMU loads us as an arm64 Linux Image at physical
// 0x40200000 with the MMU off and x0 = physical address of the device tree.
// Everything here runs at the physical address although it is linked in the
// high half, so it may only use PC-relative addressing (adr/adrp) until the
// jump to `high_entry`.

.equ KERNEL_OFFSET, 0xFFFF000000000000

// Block descriptors for the boot translation table (4 KiB granule, 1 GiB blocks).
// Device: AttrIndx 0 (Device-nGnRnE), AF, PXN, UXN.
.equ BLOCK_DEVICE, (1 << 0) | (0 << 2) | (1 << 10) | (1 << 53) | (1 << 54)
// Normal: AttrIndx 1 (write-back cacheable), inner shareable, AF, UXN.
.equ BLOCK_NORMAL, (1 << 0) | (1 << 2) | (3 << 8) | (1 << 10) | (1 << 54)
.equ TABLE, 0x3

// MAIR: attr0 = Device-nGnRnE, attr1 = Normal WB RW-allocate, attr2 = Normal non-cacheable.
.equ MAIR_VALUE, 0x44FF00
// TCR: T0SZ = T1SZ = 16 (48-bit), 4 KiB granules, WBWA inner shareable walks, 16-bit ASID.
.equ TCR_VALUE, 16 | (1 << 8) | (1 << 10) | (3 << 12) | (0 << 14) | (16 << 16) | (1 << 24) | (1 << 26) | (3 << 28) | (2 << 30) | (1 << 36)
// SCTLR_EL1: RES1 bits, M (MMU), C (data cache), SA, SA0, I (instruction cache).
.equ SCTLR_VALUE, 0x30D00800 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 12)

.section .text.boot, "ax"
.global _start
_start:
    // arm64 Image header: QEMU checks the magic and passes the DTB in x0.
    b       real_start              // code0
    .long   0                       // code1
    .quad   0                       // text_offset (QEMU adds 2 MiB)
    .quad   __image_size            // image_size, including bss and boot stack
    .quad   0xA                     // flags: little endian, 4 KiB pages, anywhere
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .long   0                       // reserved

real_start:
    msr     daifset, #0xf
    mov     x19, x0                 // keep the DTB address

    // FP/SIMD must be enabled before any compiled Rust runs.
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    // Zero .bss (physical addresses through PC-relative adrp).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    // One level-0 table pointing at one level-1 table of 1 GiB blocks:
    // [0, 1 GiB) devices, [1 GiB, 2 GiB) RAM. The same table serves TTBR0
    // (identity, used only for the jump below) and TTBR1 (the high half).
    adrp    x1, boot_l0_table
    adrp    x2, boot_l1_table
    orr     x3, x2, #TABLE
    str     x3, [x1]
    ldr     x3, =BLOCK_DEVICE
    str     x3, [x2]
    ldr     x3, =BLOCK_NORMAL
    mov     x4, #0x40000000
    orr     x3, x3, x4
    str     x3, [x2, #8]
    dsb     sy

    ldr     x3, =MAIR_VALUE
    msr     mair_el1, x3
    ldr     x3, =TCR_VALUE
    mrs     x4, id_aa64mmfr0_el1    // IPS = the physical address size this CPU has
    and     x4, x4, #0x7
    orr     x3, x3, x4, lsl #32
    msr     tcr_el1, x3
    msr     ttbr0_el1, x1
    msr     ttbr1_el1, x1
    isb
    tlbi    vmalle1
    dsb     ish
    isb
    ldr     x3, =SCTLR_VALUE
    msr     sctlr_el1, x3
    isb

    // Continue at the linked (high) address.
    ldr     x1, =high_entry
    br      x1

high_entry:
    ldr     x1, =__boot_stack_top
    mov     sp, x1
    ldr     x1, =exception_vectors
    msr     vbar_el1, x1
    // Drop the identity map: from here on, low addresses belong to user processes.
    mrs     x1, tcr_el1
    orr     x1, x1, #(1 << 7)       // EPD0
    msr     tcr_el1, x1
    msr     ttbr0_el1, xzr
    isb
    tlbi    vmalle1
    dsb     ish
    isb
    mov     x0, x19
    bl      kernel_main
3:  wfe
    b       3b

.section .bss
.balign 4096
.global boot_l0_table
boot_l0_table:
    .space 4096
.global boot_l1_table
boot_l1_table:
    .space 4096
