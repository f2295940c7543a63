//! The network thread, one of the nucleus' entry points: it drains the
//! network device, hands each frame to the protocol that owns its
//! ethertype (FLIP to RPC, groups, the rest to pool control), runs the
//! services' timers, sends exit notices, and sleeps while there is nothing
//! to do.

#![forbid(unsafe_code)]

pub mod pool_control;

use crate::drivers::net as device;
use crate::process::sched::block_unless;
use crate::process::thread::Wait;
use crate::services;
use pool_control::PoolControl;

/// Where the ethertype sits in an Ethernet frame.
const ETHERTYPE: core::ops::Range<usize> = 12..14;

/// The protocol that owns a frame.
enum Protocol {
    Flip,
    Group,
    PoolControl,
}

fn protocol(frame: &[u8]) -> Protocol {
    let ethertype = frame.get(ETHERTYPE).and_then(|b| b.try_into().ok()).map(u16::from_be_bytes);
    match ethertype {
        Some(flip::ETHERTYPE_FLIP) => Protocol::Flip,
        Some(crate::group::ETHERTYPE_GROUP) => Protocol::Group,
        _ => Protocol::PoolControl,
    }
}

/// The network thread's loop (never returns).
pub fn run(mut pool_control: PoolControl) -> ! {
    pool_control.announce();
    crate::println!(
        "nucleus: board {} ready: mac {} role {} incarnation {}",
        pool_control.board_id(),
        pool_control.mac(),
        pool_control.role(),
        pool_control.incarnation()
    );
    loop {
        device::poll(|frame| match protocol(frame) {
            Protocol::Flip => services::with(|s, core| s.rpc.frame(core, services::now(), frame)),
            Protocol::Group => services::with(|s, core| s.groups.frame(core, services::now(), frame)),
            Protocol::PoolControl => pool_control.handle_frame(frame),
        });
        services::with(|s, core| {
            let now = services::now();
            s.rpc.timeout(core, now);
            s.groups.timeout(core, now);
        });
        block_unless(Wait::Network, || {
            device::work_pending() || services::with(|s, core| s.network_work_due(core, services::now()))
        });
    }
}
