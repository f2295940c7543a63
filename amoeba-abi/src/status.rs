//! Reply status codes.

use core::fmt;

macro_rules! statuses {
    ($( $(#[$m:meta])* $name:ident = $val:expr, $text:expr; )*) => {
        /// Status of a reply or of an RPC. `Ok` is 0, every error is negative.
        ///
        /// The standard errors (-1 ..= -14) follow the order of Amoeba's `stderr.h`;
        /// the RPC errors (-101 ..) are produced by the transport, not by servers.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(i32)]
        pub enum Status {
            $( $(#[$m])* $name = $val, )*
        }

        impl Status {
            /// Every status, for iteration.
            pub const ALL: &'static [Status] = &[$(Status::$name),*];

            /// A short human-readable description.
            pub fn text(self) -> &'static str {
                match self { $(Status::$name => $text,)* }
            }
        }

        impl TryFrom<i32> for Status {
            type Error = i32;
            /// Known codes map to their variant; unknown ones are returned as `Err`.
            fn try_from(v: i32) -> Result<Status, i32> {
                match v {
                    $(x if x == $val => Ok(Status::$name),)*
                    other => Err(other),
                }
            }
        }
    };
}

statuses! {
    /// Success.
    Ok = 0, "ok";
    /// Capability bad: unknown object, wrong check field, wrong port.
    CapBad = -1, "capability bad";
    /// Bad command: the server does not know this command.
    ComBad = -2, "bad command";
    /// Bad argument.
    ArgBad = -3, "bad argument";
    /// Not now: try later.
    NotNow = -4, "not now";
    /// No space.
    NoSpace = -5, "no space";
    /// No permission: the capability lacks a needed right.
    Denied = -6, "no permission";
    /// Out of memory.
    NoMem = -7, "out of memory";
    /// Already exists.
    Exists = -8, "already exists";
    /// Not found.
    NotFound = -9, "not found";
    /// Internal server error.
    SysErr = -10, "system error";
    /// Interrupted.
    Interrupted = -11, "interrupted";
    /// Overflow.
    Overflow = -12, "overflow";
    /// Write-protected.
    WriteProt = -13, "write protected";
    /// No medium.
    NoMedium = -14, "no medium";
    /// RPC: no server found for the port (locate failed); the request did not run.
    RpcNotFound = -101, "rpc: server not found";
    /// RPC: the server crashed, timed out or became unreachable; the request may
    /// have run once or not at all.
    RpcFailure = -102, "rpc: failure (server crashed or unreachable)";
    /// RPC: aborted by the caller or the server.
    RpcAborted = -103, "rpc: aborted";
    /// RPC: bad (e.g. null) port.
    RpcBadPort = -104, "rpc: bad port";
    /// RPC: temporarily unable; try again.
    RpcTryAgain = -105, "rpc: try again";
    /// RPC: bad buffer address or size.
    RpcBadAddress = -106, "rpc: bad address";
    /// RPC: the server's board rebooted while the request was outstanding; the request
    /// may have run once (before the reboot) or not at all, but never twice.
    ServerRestarted = -107, "rpc: server restarted";
}

impl Status {
    /// Convert a raw code; unknown codes become [`Status::SysErr`].
    pub fn from_i32_lossy(v: i32) -> Status {
        Status::try_from(v).unwrap_or(Status::SysErr)
    }

    /// Is this `Ok`?
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }

    /// `Ok(())` for `Ok`, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Status> {
        if self.is_ok() { Ok(()) } else { Err(self) }
    }

    /// Is this one of the transport's errors (`Rpc*`, `ServerRestarted`)?
    pub fn is_rpc_error(self) -> bool {
        (self as i32) <= -100
    }

    /// Did the request possibly run (failure in the middle of a transaction)?
    pub fn maybe_executed(self) -> bool {
        matches!(self, Status::RpcFailure | Status::ServerRestarted)
    }
}

impl From<Status> for i32 {
    fn from(s: Status) -> i32 {
        s as i32
    }
}

/// In typed message buffers a status travels as its code; an unknown code reads
/// as [`Status::SysErr`].
#[cfg(feature = "serde")]
impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (*self as i32).serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        i32::deserialize(deserializer).map(Status::from_i32_lossy)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), *self as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        for &s in Status::ALL {
            let v: i32 = s.into();
            assert_eq!(Status::try_from(v), Ok(s));
            assert!(v <= 0);
            assert_eq!(v == 0, s.is_ok());
        }
        assert_eq!(Status::try_from(-9999), Err(-9999));
        assert_eq!(Status::from_i32_lossy(5), Status::SysErr);
        assert_eq!(Status::Denied.to_string(), "no permission (-6)");
        assert!(Status::RpcFailure.is_rpc_error());
        assert!(!Status::CapBad.is_rpc_error());
        assert_eq!(Status::Ok.into_result(), Ok(()));
        assert_eq!(Status::NoSpace.into_result(), Err(Status::NoSpace));
    }
}
