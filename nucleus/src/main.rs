//! The nucleus: the small kernel every board of the pool runs.

// The kernel only exists for the bare-metal target; on the host this binary
// is a stub so that workspace-wide `cargo test` and `cargo clippy` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the nucleus runs on QEMU virt boards: build it with --target aarch64-unknown-none");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
#[path = "arch/aarch64/mod.rs"]
mod arch;
#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod devicetree;
#[cfg(target_os = "none")]
mod drivers;
#[cfg(target_os = "none")]
mod heap;
#[cfg(target_os = "none")]
mod interrupts;
#[cfg(target_os = "none")]
mod net;
#[cfg(target_os = "none")]
mod power;
#[cfg(target_os = "none")]
mod sync;

#[cfg(target_os = "none")]
mod kernel {

    use crate::arch::cpu;
    use crate::devicetree::BootInfo;
    use crate::net::pool_control::{Identity, PoolControl};
    use crate::power::ExitStatus;
    use crate::{board, drivers, heap, net, power, println};
    use core::panic::PanicInfo;

    /// Most of the RAM the kernel heap takes (the rest is for segments).
    const KERNEL_HEAP_MAX: usize = 32 << 20;

    /// Entered from `boot.s` with the MMU on, running in the high half.
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
        let board_id = info
            .bootarg("board")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u16);
        println!(
            "nucleus: board {board_id} booting; bootargs \"{}\"",
            info.bootargs()
        );

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

        let mac = match net::init(&info) {
            Ok(mac) => mac,
            Err(error) => {
                println!("nucleus: no network: {error}");
                power::stop(ExitStatus::Failure);
            }
        };
        cpu::enable_irqs();

        if let Some(mode) = info.bootarg("test") {
            run_test_mode(mode);
        }

        let role = role_name(info.bootarg("role").unwrap_or("pool"));
        let incarnation = info
            .bootarg("incarnation")
            .and_then(|v| v.parse().ok())
            .unwrap_or(cpu::counter() as u32);
        let mut pool_control = PoolControl::new(Identity {
            mac,
            board_id,
            incarnation,
            role,
        });
        pool_control.announce();
        println!(
            "nucleus: board {board_id} ready: mac {mac} role {role} incarnation {incarnation}"
        );

        loop {
            net::poll(|frame| pool_control.handle_frame(frame));
            // Check for work with IRQs masked, then sleep: a pending interrupt
            // still wakes `wfi`, so none is lost between the check and the sleep.
            cpu::disable_irqs();
            if !net::work_pending() {
                cpu::wait_for_interrupt();
            }
            cpu::enable_irqs();
        }
    }

    /// Free RAM right above the kernel image, below whatever QEMU placed
    /// higher up (initrd, device tree).
    fn heap_range(info: &BootInfo) -> core::ops::Range<usize> {
        const PAGE: usize = 4096;
        let start = board::kernel_image().end.next_multiple_of(PAGE);
        let mut end = (start + KERNEL_HEAP_MAX).min(info.memory.end);
        for used in [Some(info.dtb.clone()), info.initrd.clone()]
            .into_iter()
            .flatten()
        {
            if used.start >= start {
                end = end.min(used.start & !(PAGE - 1));
            }
        }
        start..end.max(start)
    }

    /// Roles are a closed set, so the name can live for the board's lifetime.
    fn role_name(requested: &str) -> &'static str {
        const ROLES: [&str; 5] = ["pool", "bullet", "directory", "run", "test"];
        ROLES
            .into_iter()
            .find(|role| *role == requested)
            .unwrap_or("pool")
    }

    /// Test-only boot modes the pool tests use to check failure handling.
    fn run_test_mode(mode: &str) {
        match mode {
            "exception" => {
                println!("nucleus: test mode: reading an unmapped kernel address");
                // SAFETY: deliberately unsound read of an unmapped address, to
                // check the exception report; the board stops in the handler.
                let value =
                    unsafe { core::ptr::read_volatile(0xFFFF_0001_0000_0000 as *const u64) };
                println!("nucleus: read {value:#x}, which should have faulted");
                power::stop(ExitStatus::Failure);
            }
            "poweroff" => {
                println!("nucleus: test mode: powering off");
                power::stop(ExitStatus::Success);
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
}
