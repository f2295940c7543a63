//! GICv2 through the `arm-gic` crate.

use crate::board;
use crate::sync::IrqMutex;
use arm_gic::gicv2::GicV2;
use arm_gic::{IntId, InterruptGroup, Trigger};

static GIC: IrqMutex<Option<GicV2<'static>>> = IrqMutex::new(None);

pub fn init() {
    // SAFETY: the distributor and CPU interface of QEMU virt's GICv2 are at
    // these addresses, mapped as device memory; this is the only driver.
    let mut gic = unsafe {
        GicV2::new(
            board::phys_to_virt(board::GICD_BASE) as *mut _,
            board::phys_to_virt(board::GICC_BASE) as *mut _,
        )
    };
    gic.setup();
    *GIC.lock() = Some(gic);
}

fn group() -> InterruptGroup {
    InterruptGroup::Group0
}

/// Enables one interrupt line with the given trigger.
pub fn enable(intid: u32, trigger: Trigger) {
    let Ok(id) = IntId::try_from(intid) else {
        return;
    };
    if let Some(gic) = GIC.lock().as_mut() {
        if !id.is_private() {
            gic.set_trigger(id, trigger);
        }
        gic.set_group(id, group());
        if gic.enable_interrupt(id, true).is_err() {
            crate::println!("nucleus: GIC refused to enable interrupt {intid}");
        }
    }
}

/// Acknowledges the highest-priority pending interrupt, if any.
pub fn acknowledge() -> Option<u32> {
    GIC.lock().as_mut()?.get_and_acknowledge_interrupt(group()).map(u32::from)
}

pub fn end_of_interrupt(intid: u32) {
    if let (Some(gic), Ok(id)) = (GIC.lock().as_mut(), IntId::try_from(intid)) {
        gic.end_interrupt(id, group());
    }
}
