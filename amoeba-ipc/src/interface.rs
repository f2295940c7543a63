//! Server interfaces declared once, as Amoeba's AIL and Hubris' Idol do.
//!
//! One [`interface!`](crate::interface) declaration per server names each operation,
//! its command number, who may call it (which object and which rights), how its
//! arguments map onto the header fields and the buffer, and the reply's layout.
//! From it come:
//!
//! * the command constants;
//! * `Client`: a stub over any [`Transport`] — the nucleus's `trans` system call in user
//!   programs (`amoeba_rt::rpc::Nucleus`), the host's FLIP endpoint in `boot` — that
//!   marshals, calls and unmarshals;
//! * `Server`: a trait with one method per operation, and `dispatch`, which verifies the
//!   capability (constant time), checks the rights, unmarshals, calls the method and
//!   marshals its reply. Commands the declaration does not name go to the standard
//!   commands ([`standard`](crate::interfaces::standard)), answered once for every
//!   server from its [`Objects`].
//!
//! Argument places: `offset<T>` (u64 header field), `size<T>` and `extra<T>` (u32
//! fields) for any [`HeaderValue`]; `bytes` (the buffer, raw), `text` (the buffer as
//! UTF-8), `data<T>` (the buffer, a `serde` type in `postcard` form); in replies also
//! `cap` (a capability in the header's port and private fields). At most one buffer
//! place per direction.
//!
//! Access: `public()` (no capability check: anyone who knows the put-port),
//! `server(R)` (the server's own capability, object 0, with rights R), `object(R)` (a
//! capability for an object other than 0, with rights R), `any(R)` (either); R is a
//! [`Rights`] expression, or nothing for no particular right.
//!
//! ```
//! use amoeba_ipc::interface::{Call, Objects, Transport};
//! use amoeba_abi::{Capability, Check, Header, Port, Rights, Status};
//!
//! amoeba_ipc::interface! {
//!     /// A toy: one register per server.
//!     pub mod register {
//!         /// Store a value.
//!         fn set as REG_SET = 9000, server(Rights::MODIFY) (value: extra<u32>) -> ();
//!         /// Read it back, with a greeting.
//!         fn get as REG_GET = 9001, server(Rights::READ) () -> (value: extra<u32>, greeting: text);
//!     }
//! }
//!
//! struct Register { port: Port, random: Check, value: u32 }
//! impl Objects for Register {
//!     fn port(&self) -> Port { self.port }
//!     fn check(&self, object: u32) -> Option<Check> { (object == 0).then_some(self.random) }
//! }
//! impl register::Server for Register {
//!     fn set(&mut self, _: &Call, value: u32) -> Result<(), Status> { self.value = value; Ok(()) }
//!     fn get(&mut self, _: &Call) -> Result<(u32, String), Status> { Ok((self.value, "hi".into())) }
//! }
//!
//! // A transport that calls the dispatcher directly (in real use: RPC).
//! struct Direct(Register);
//! impl Transport for Direct {
//!     fn trans(&mut self, h: &Header, b: &[u8], _: usize) -> Result<(Header, Vec<u8>), Status> {
//!         Ok(register::dispatch(&mut self.0, h, b))
//!     }
//! }
//!
//! let (port, random) = (Port([1; 6]), Check([2; 6]));
//! let owner = Capability::owner(port, 0, random);
//! let mut t = Direct(Register { port, random, value: 0 });
//! let mut client = register::Client::new(&mut t);
//! client.set(&owner, 42).unwrap();
//! assert_eq!(client.get(&owner).unwrap(), (42, "hi".to_string()));
//! let read_only = owner.restrict(Rights::READ).unwrap();
//! assert_eq!(client.set(&read_only, 1), Err(Status::Denied));
//! let forged = Capability { check: Check([9; 6]), ..owner };
//! assert_eq!(client.get(&forged), Err(Status::CapBad));
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use amoeba_abi::{Capability, Check, Header, Port, Rights, Status, restrict, verify};

/// How a client stub reaches a server: one transaction, request header and buffer in,
/// reply header and buffer out (at most `reply_limit` bytes of it are wanted).
/// `Err` is a transport failure (`RpcNotFound`, `RpcFailure`, ...); a server's error
/// status arrives in the reply header.
pub trait Transport {
    /// One transaction.
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn trans(
        &mut self,
        request: &Header,
        buf: &[u8],
        reply_limit: usize,
    ) -> Result<(Header, Vec<u8>), Status> {
        (**self).trans(request, buf, reply_limit)
    }
}

/// Reply buffer size a stub asks for unless the declaration says `limit`.
pub const DEFAULT_REPLY_LIMIT: usize = 32 * 1024;

/// What the generated dispatcher needs from a server's objects to verify capabilities
/// and to answer the standard commands. Object 0 is the server itself.
pub trait Objects {
    /// The server's put-port.
    fn port(&self) -> Port;
    /// The random check value of `object`, if it exists.
    fn check(&self, object: u32) -> Option<Check>;
    /// A request on `object` passed verification (Amoeba touches objects on each use).
    fn touch_object(&mut self, object: u32) {
        let _ = object;
    }
    /// STD_INFO's text.
    fn describe(&mut self, object: u32) -> String {
        if object == 0 { String::from("server") } else { format!("object {object}") }
    }
    /// STD_DESTROY (the dispatcher has checked the delete right).
    fn destroy_object(&mut self, object: u32) -> Result<(), Status> {
        let _ = object;
        Err(Status::ComBad)
    }
    /// STD_AGE (the dispatcher has checked the server's owner capability): the number
    /// of objects collected.
    fn age_objects(&mut self) -> Result<u32, Status> {
        Err(Status::ComBad)
    }
    /// STD_STATUS's text.
    fn status_text(&self) -> String {
        String::from("ok")
    }
}

/// A verified request, handed to every generated server method.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The request header.
    pub header: &'a Header,
    /// The capability the request named (verified unless the operation is public).
    pub capability: Capability,
    /// Its object number (0 = the server itself).
    pub object: u32,
    /// Its rights (all for public operations, which name no capability).
    pub rights: Rights,
}

/// Which objects an operation may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// No capability is checked.
    Public,
    /// Only the server's own capability (object 0).
    Server,
    /// Only an object's capability (not 0).
    Object,
    /// Either.
    Any,
}

/// Verifies `header`'s capability against `objects` for an operation on `target`
/// needing `rights`: `CapBad` if forged, unknown or for another port, `Denied` if a
/// right is missing or the object is of the wrong kind.
pub fn verify_call<'a, O: Objects + ?Sized>(
    objects: &mut O,
    header: &'a Header,
    target: Target,
    rights: Rights,
) -> Result<Call<'a>, Status> {
    let capability = header.capability();
    if target == Target::Public {
        return Ok(Call { header, capability, object: capability.object, rights: Rights::ALL });
    }
    if capability.port != objects.port() {
        return Err(Status::CapBad);
    }
    let random = objects.check(capability.object).ok_or(Status::CapBad)?;
    let held = verify(&random, &capability).map_err(|_| Status::CapBad)?;
    objects.touch_object(capability.object);
    let kind_ok = match target {
        Target::Server => capability.object == 0,
        Target::Object => capability.object != 0,
        Target::Public | Target::Any => true,
    };
    if !kind_ok || !held.contains(rights) {
        return Err(Status::Denied);
    }
    Ok(Call { header, capability, object: capability.object, rights: held })
}

/// A reply carrying only `status`.
pub fn status_reply(status: Status) -> (Header, Vec<u8>) {
    (Header::reply(status), Vec::new())
}

/// A value that travels in a header field (`offset` holds 64 bits, `size` and
/// `extra` 32).
pub trait HeaderValue: Sized {
    /// The field's bits.
    fn to_field(&self) -> u64;
    /// Back from the field's bits; `None` if they are not a valid value.
    fn from_field(bits: u64) -> Option<Self>;
}

macro_rules! header_value_unsigned {
    ($($t:ty),*) => {$(
        impl HeaderValue for $t {
            fn to_field(&self) -> u64 {
                *self as u64
            }
            fn from_field(bits: u64) -> Option<Self> {
                <$t>::try_from(bits).ok()
            }
        }
    )*};
}
header_value_unsigned!(u8, u16, u32, u64, usize);

impl HeaderValue for i32 {
    fn to_field(&self) -> u64 {
        *self as u32 as u64
    }
    fn from_field(bits: u64) -> Option<Self> {
        u32::try_from(bits).ok().map(|b| b as i32)
    }
}

impl HeaderValue for bool {
    fn to_field(&self) -> u64 {
        *self as u64
    }
    fn from_field(bits: u64) -> Option<Self> {
        match bits {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}

impl HeaderValue for Rights {
    fn to_field(&self) -> u64 {
        self.0 as u64
    }
    fn from_field(bits: u64) -> Option<Self> {
        u8::try_from(bits).ok().map(Rights)
    }
}

/// Marshalling used by the generated code (not meant to be called by hand).
#[doc(hidden)]
pub mod wire {
    use super::*;
    pub use alloc::string::String;
    pub use alloc::vec::Vec;

    pub fn put_offset<T: HeaderValue>(h: &mut Header, v: &T) -> Result<(), Status> {
        h.offset = v.to_field();
        Ok(())
    }
    pub fn put_size<T: HeaderValue>(h: &mut Header, v: &T) -> Result<(), Status> {
        h.size = u32::try_from(v.to_field()).map_err(|_| Status::ArgBad)?;
        Ok(())
    }
    pub fn put_extra<T: HeaderValue>(h: &mut Header, v: &T) -> Result<(), Status> {
        h.extra = u32::try_from(v.to_field()).map_err(|_| Status::ArgBad)?;
        Ok(())
    }
    pub fn get_offset<T: HeaderValue>(h: &Header) -> Result<T, Status> {
        T::from_field(h.offset).ok_or(Status::ArgBad)
    }
    pub fn get_size<T: HeaderValue>(h: &Header) -> Result<T, Status> {
        T::from_field(h.size as u64).ok_or(Status::ArgBad)
    }
    pub fn get_extra<T: HeaderValue>(h: &Header) -> Result<T, Status> {
        T::from_field(h.extra as u64).ok_or(Status::ArgBad)
    }
    pub fn encode_data<T: serde::Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Status> {
        postcard::to_allocvec(v).map_err(|_| Status::ArgBad)
    }
    pub fn decode_data<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Status> {
        postcard::from_bytes(b).map_err(|_| Status::ArgBad)
    }
    pub fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }
    /// A reply's status as `Err`, else the header and buffer.
    pub fn check_reply(r: Result<(Header, Vec<u8>), Status>) -> Result<(Header, Vec<u8>), Status> {
        let (h, b) = r?;
        match h.status() {
            Status::Ok => Ok((h, b)),
            error => Err(error),
        }
    }
    /// A reply that did not unmarshal: the server speaks another version.
    pub fn bad_reply<T>(_: Status) -> Result<T, Status> {
        Err(Status::SysErr)
    }
}

/// Declares a server interface; see the [module documentation](self).
#[macro_export]
macro_rules! interface {
    (
        $(#[$meta:meta])*
        $vis:vis mod $name:ident {
            $(
                $(#[$op_meta:meta])*
                fn $op:ident as $konst:ident = $cmd:expr, $target:ident($($rights:expr)?)
                    ( $($arg:ident : $aplace:ident $(<$aty:ty>)?),* $(,)? )
                    -> ( $($ret:ident : $rplace:ident $(<$rty:ty>)?),* $(,)? )
                    $(limit $limit:expr)? ;
            )*
        }
    ) => {
        $crate::__interface_body! {
            fallback = $crate::interfaces::standard::dispatch;
            $(#[$meta])*
            $vis mod $name {
                $(
                    $(#[$op_meta])*
                    fn $op as $konst = $cmd, $target($($rights)?)
                        ( $($arg : $aplace $(<$aty>)?),* ) -> ( $($ret : $rplace $(<$rty>)?),* )
                        $(limit $limit)? ;
                )*
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __interface_body {
    (
        fallback = $fallback:path;
        $(#[$meta:meta])*
        $vis:vis mod $name:ident {
            $(
                $(#[$op_meta:meta])*
                fn $op:ident as $konst:ident = $cmd:expr, $target:ident($($rights:expr)?)
                    ( $($arg:ident : $aplace:ident $(<$aty:ty>)?),* )
                    -> ( $($ret:ident : $rplace:ident $(<$rty:ty>)?),* )
                    $(limit $limit:expr)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[allow(dead_code, unused_imports, unused_mut, unused_variables, unused_assignments, clippy::unused_unit, clippy::let_unit_value)]
        $vis mod $name {
            use super::*;
            use $crate::interface::{wire, Call, Objects, Transport};
            use $crate::__abi::{Capability, Header, Rights, Status};
            use $crate::interface::wire::{String, Vec};

            $(
                $(#[$op_meta])*
                pub const $konst: u32 = $cmd;
            )*

            /// The client stub: one method per operation, over any transport (pass
            /// `&mut transport` to keep using it afterwards).
            pub struct Client<T: Transport> {
                transport: T,
            }

            impl<T: Transport> Client<T> {
                /// A stub that calls through `transport`.
                pub fn new(transport: T) -> Self {
                    Client { transport }
                }

                $(
                    $(#[$op_meta])*
                    pub fn $op(
                        &mut self,
                        capability: &Capability
                        $(, $arg: $crate::__arg_type!(in $aplace $(<$aty>)?))*
                    ) -> Result<$crate::__reply_type!($($rplace $(<$rty>)?),*), Status> {
                        let mut header = Header::request(capability, $konst);
                        // The request's buffer is borrowed from the caller, not copied;
                        // only typed data is encoded into `owned`.
                        let mut owned: Vec<u8> = Vec::new();
                        let mut buf: &[u8] = &[];
                        $( $crate::__put_request!(header, buf, owned, $aplace, $arg); )*
                        let limit = $crate::__limit!($($limit)? ; $($rplace)*);
                        let (header, buf) = wire::check_reply(self.transport.trans(&header, buf, limit))?;
                        $op::value(header, buf).or_else(wire::bad_reply)
                    }
                )*
            }

            $(
                /// Marshalling of this operation, for callers that send or answer it
                /// themselves (a kernel service that replies later, say).
                pub mod $op {
                    use super::*;

                    /// The request: header and buffer.
                    pub fn request(
                        capability: &Capability
                        $(, $arg: $crate::__arg_type!(in $aplace $(<$aty>)?))*
                    ) -> Result<(Header, Vec<u8>), Status> {
                        let mut header = Header::request(capability, $konst);
                        let mut owned: Vec<u8> = Vec::new();
                        let mut buf: &[u8] = &[];
                        $( $crate::__put_request!(header, buf, owned, $aplace, $arg); )*
                        Ok((header, Vec::from(buf)))
                    }

                    /// The reply carrying `value`.
                    pub fn reply(
                        value: $crate::__reply_type!($($rplace $(<$rty>)?),*),
                    ) -> Result<(Header, Vec<u8>), Status> {
                        $crate::__bind_reply!(value; $($ret)*);
                        let mut reply = Header::reply(Status::Ok);
                        let mut out: Vec<u8> = Vec::new();
                        $( $crate::__put!(reply, out, $rplace, $ret); )*
                        Ok((reply, out))
                    }

                    /// The value a successful reply carries.
                    pub fn value(
                        header: Header,
                        buf: Vec<u8>,
                    ) -> Result<$crate::__reply_type!($($rplace $(<$rty>)?),*), Status> {
                        Ok($crate::__reply_value!(header, buf; $($rplace $(<$rty>)?),*))
                    }
                }
            )*

            /// The server side: one method per operation, called by [`dispatch`] once
            /// the capability and rights have been checked.
            pub trait Server: Objects {
                $(
                    $(#[$op_meta])*
                    fn $op(
                        &mut self,
                        call: &Call<'_>
                        $(, $arg: $crate::__arg_type!(serve $aplace $(<$aty>)?))*
                    ) -> Result<$crate::__reply_type!($($rplace $(<$rty>)?),*), Status>;
                )*
            }

            /// Answers one request: verifies, unmarshals, calls `server`, marshals the
            /// reply. Commands not declared here go to the standard commands.
            pub fn dispatch<S: Server + ?Sized>(server: &mut S, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
                match header.command {
                    $(
                        $konst => {
                            fn handle<S: Server + ?Sized>(
                                server: &mut S,
                                header: &Header,
                                buf: &[u8],
                            ) -> Result<(Header, Vec<u8>), Status> {
                                let call = $crate::interface::verify_call(
                                    server,
                                    header,
                                    $crate::__target!($target),
                                    $crate::__rights!($($rights)?),
                                )?;
                                $( let $arg = $crate::__get!(header, buf, $aplace $(<$aty>)?)?; )*
                                let value = <S as Server>::$op(server, &call $(, $arg)*)?;
                                $op::reply(value)
                            }
                            handle(server, header, buf).unwrap_or_else($crate::interface::status_reply)
                        }
                    )*
                    _ => $fallback(server, header, buf),
                }
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __target {
    (public) => {
        $crate::interface::Target::Public
    };
    (server) => {
        $crate::interface::Target::Server
    };
    (object) => {
        $crate::interface::Target::Object
    };
    (any) => {
        $crate::interface::Target::Any
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __rights {
    () => {
        $crate::__abi::Rights::NONE
    };
    ($rights:expr) => {
        $rights
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __limit {
    ($limit:expr ; $($place:ident)*) => {
        ($limit) as usize
    };
    ( ; $($place:ident)*) => {
        $crate::__default_limit!($($place)*)
    };
}

/// A reply without a buffer needs no room for one (so a stub call that sends a
/// borrowed buffer and gets a header back does not allocate).
#[doc(hidden)]
#[macro_export]
macro_rules! __default_limit {
    () => { 0usize };
    (bytes $($rest:ident)*) => { $crate::interface::DEFAULT_REPLY_LIMIT };
    (text $($rest:ident)*) => { $crate::interface::DEFAULT_REPLY_LIMIT };
    (data $($rest:ident)*) => { $crate::interface::DEFAULT_REPLY_LIMIT };
    ($other:ident $($rest:ident)*) => { $crate::__default_limit!($($rest)*) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __put_request {
    ($h:ident, $b:ident, $owned:ident, bytes, $v:ident) => {
        $b = $v
    };
    ($h:ident, $b:ident, $owned:ident, text, $v:ident) => {
        $b = $v.as_bytes()
    };
    ($h:ident, $b:ident, $owned:ident, data, $v:ident) => {{
        $owned = $crate::interface::wire::encode_data(&$v)?;
        $b = &$owned;
    }};
    ($h:ident, $b:ident, $owned:ident, $field:ident, $v:ident) => {
        $crate::__put!($h, $b, $field, $v)
    };
}

/// The Rust type of an argument: `in` for what a client passes, `serve` for what a
/// server method gets, `out` for what a reply holds.
#[doc(hidden)]
#[macro_export]
macro_rules! __arg_type {
    (in bytes) => { &[u8] };
    (serve bytes) => { &[u8] };
    (out bytes) => { $crate::interface::wire::Vec<u8> };
    (in text) => { &str };
    (serve text) => { $crate::interface::wire::String };
    (out text) => { $crate::interface::wire::String };
    (in data<$t:ty>) => { &$t };
    (serve data<$t:ty>) => { $t };
    (out data<$t:ty>) => { $t };
    (out cap) => { $crate::__abi::Capability };
    ($dir:ident $field:ident<$t:ty>) => { $t };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reply_type {
    () => { () };
    ($place:ident $(<$t:ty>)?) => { $crate::__arg_type!(out $place $(<$t>)?) };
    ($($place:ident $(<$t:ty>)?),+) => { ($($crate::__arg_type!(out $place $(<$t>)?)),+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __reply_value {
    ($h:ident, $b:ident; ) => { () };
    ($h:ident, $b:ident; $place:ident $(<$t:ty>)?) => { $crate::__get!($h, $b, $place $(<$t>)?)? };
    ($h:ident, $b:ident; $($place:ident $(<$t:ty>)?),+) => { ($($crate::__get!($h, $b, $place $(<$t>)?)?),+) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __bind_reply {
    ($v:ident; ) => {
        let () = $v;
    };
    ($v:ident; $r:ident) => {
        let $r = $v;
    };
    ($v:ident; $($r:ident)+) => {
        let ($($r),+) = $v;
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __put {
    ($h:ident, $b:ident, offset, $v:ident) => {
        $crate::interface::wire::put_offset(&mut $h, &$v)?
    };
    ($h:ident, $b:ident, size, $v:ident) => {
        $crate::interface::wire::put_size(&mut $h, &$v)?
    };
    ($h:ident, $b:ident, extra, $v:ident) => {
        $crate::interface::wire::put_extra(&mut $h, &$v)?
    };
    ($h:ident, $b:ident, bytes, $v:ident) => {
        $b = ::core::convert::Into::<$crate::interface::wire::Vec<u8>>::into($v)
    };
    ($h:ident, $b:ident, text, $v:ident) => {
        $b = ::core::convert::Into::<$crate::interface::wire::Vec<u8>>::into($v)
    };
    ($h:ident, $b:ident, data, $v:ident) => {
        $b = $crate::interface::wire::encode_data(&$v)?
    };
    ($h:ident, $b:ident, cap, $v:ident) => {
        $h.set_capability(&$v)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __get {
    ($h:ident, $b:ident, offset<$t:ty>) => {
        $crate::interface::wire::get_offset::<$t>(&$h)
    };
    ($h:ident, $b:ident, size<$t:ty>) => {
        $crate::interface::wire::get_size::<$t>(&$h)
    };
    ($h:ident, $b:ident, extra<$t:ty>) => {
        $crate::interface::wire::get_extra::<$t>(&$h)
    };
    ($h:ident, $b:ident, bytes) => {
        Ok::<_, $crate::__abi::Status>($b)
    };
    ($h:ident, $b:ident, text) => {
        Ok::<_, $crate::__abi::Status>($crate::interface::wire::text(&$b))
    };
    ($h:ident, $b:ident, data<$t:ty>) => {
        $crate::interface::wire::decode_data::<$t>(&$b)
    };
    ($h:ident, $b:ident, cap) => {
        Ok::<_, $crate::__abi::Status>($h.capability())
    };
}

/// The fallback of the standard commands' dispatcher: a command no declaration names.
#[doc(hidden)]
pub fn unknown_command<S: ?Sized>(_: &mut S, _: &Header, _: &[u8]) -> (Header, Vec<u8>) {
    status_reply(Status::ComBad)
}

/// Restricts `capability` (which must verify against `objects`) to `mask`: the
/// standard STD_RESTRICT, done by the server that knows the random value.
pub fn restrict_for<O: Objects + ?Sized>(
    objects: &O,
    capability: &Capability,
    mask: Rights,
) -> Result<Capability, Status> {
    let random = objects.check(capability.object).ok_or(Status::CapBad)?;
    let held = verify(&random, capability).map_err(|_| Status::CapBad)?;
    let rights = held & mask;
    Ok(Capability { rights, check: restrict(&random, rights), ..*capability })
}
