//! The standard commands every server answers, once for all servers: the generated
//! dispatcher of any interface passes commands it does not declare to
//! [`standard::dispatch`](dispatch), which answers them from the server's
//! [`Objects`](crate::interface::Objects).

use crate::interface::{Call, Objects, restrict_for};
use alloc::string::String;
use amoeba_abi::{Capability, Rights, Status};

crate::__interface_body! {
    fallback = crate::interface::unknown_command;
    /// Standard commands (Amoeba's numbering from 1000).
    mod declared {
        /// Age every object; collect those not touched for a while. Needs the
        /// server's owner capability.
        fn age as STD_AGE = 1000, server(Rights::ALL) () -> (collected: extra<u32>);
        /// Destroy the object.
        fn destroy as STD_DESTROY = 1002, object(Rights::DELETE) () -> ();
        /// A short description of the object.
        fn info as STD_INFO = 1003, any() () -> (text: text);
        /// A capability for the same object with fewer rights.
        fn restrict as STD_RESTRICT = 1004, any() (mask: extra<Rights>) -> (restricted: cap);
        /// The server's status.
        fn status as STD_STATUS = 1005, any() () -> (text: text);
        /// Reset the object's lifetime (any verified request does too).
        fn touch as STD_TOUCH = 1006, any() () -> ();
    }
}

pub use declared::{
    Client, STD_AGE, STD_DESTROY, STD_INFO, STD_RESTRICT, STD_STATUS, STD_TOUCH, Server, dispatch,
};

/// Copy an object (not served by this system's servers).
pub const STD_COPY: u32 = 1001;
/// First and last standard command numbers.
pub const STD_RANGE: core::ops::RangeInclusive<u32> = 1000..=1008;

impl<T: Objects + ?Sized> Server for T {
    fn age(&mut self, _: &Call<'_>) -> Result<u32, Status> {
        self.age_objects()
    }
    fn destroy(&mut self, call: &Call<'_>) -> Result<(), Status> {
        self.destroy_object(call.object)
    }
    fn info(&mut self, call: &Call<'_>) -> Result<String, Status> {
        Ok(self.describe(call.object))
    }
    fn restrict(&mut self, call: &Call<'_>, mask: Rights) -> Result<Capability, Status> {
        restrict_for(self, &call.capability, mask)
    }
    fn status(&mut self, _: &Call<'_>) -> Result<String, Status> {
        Ok(self.status_text())
    }
    fn touch(&mut self, _: &Call<'_>) -> Result<(), Status> {
        Ok(())
    }
}
