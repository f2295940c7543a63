//! A generic object server: a table of objects keyed by object number, each holding
//! its random check value, and a [`Server::dispatch`] that verifies the capability of
//! an incoming request, answers the standard commands itself and hands the server's
//! own commands to a [`Service`].
//!
//! Object number 0 is the server itself: its owner capability
//! ([`ObjectTable::super_capability`]) is used for commands that do not name an
//! existing object (e.g. create) and for `STD_AGE`.
//!
//! Lifetimes: every object has a lifetime counter set to `max_life` on creation and on
//! every successful access (any verified request, e.g. `STD_TOUCH`); `STD_AGE`
//! decrements all counters and destroys objects that reach zero.
//!
//! ```
//! use amoeba::server::{Call, ObjectTable, Server, Service};
//! use amoeba::{cmd, Header, Rights, Rng, Status};
//!
//! struct Counter;
//! const INC: u32 = 4000;
//! impl Service for Counter {
//!     type Object = u64;
//!     fn handle(&mut self, t: &mut ObjectTable<u64>, c: Call<'_>) -> Result<(Header, Vec<u8>), Status> {
//!         match c.header.command {
//!             INC if c.object == 0 => {
//!                 let cap = t.create(0)?;
//!                 let mut h = Header::reply(Status::Ok);
//!                 h.set_capability(&cap);
//!                 Ok((h, vec![]))
//!             }
//!             INC => {
//!                 c.require(Rights::MODIFY)?;
//!                 let n = t.get_mut(c.object).ok_or(Status::CapBad)?;
//!                 *n += 1;
//!                 Ok((Header { extra: *n as u32, ..Header::reply(Status::Ok) }, vec![]))
//!             }
//!             _ => Err(Status::ComBad),
//!         }
//!     }
//! }
//!
//! let mut rng = Rng::from_seed([1; 32]);
//! let port = rng.port();
//! let mut srv = Server::new(ObjectTable::new(port, Rng::from_seed([2; 32]), 3), Counter);
//! let (rep, _) = srv.dispatch(&Header::request(&srv.table.super_capability(), INC), &[]);
//! let cap = rep.capability();
//! let (rep, _) = srv.dispatch(&Header::request(&cap, INC), &[]);
//! assert_eq!((rep.status(), rep.extra), (Status::Ok, 1));
//! let ro = cap.restrict(Rights::READ).unwrap();
//! let (rep, _) = srv.dispatch(&Header::request(&ro, INC), &[]);
//! assert_eq!(rep.status(), Status::Denied);
//! ```

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cmd::{STD_AGE, STD_DESTROY, STD_INFO, STD_RESTRICT, STD_TOUCH};
use crate::{Capability, Check, Header, OBJECT_MAX, Port, Rights, Rng, Status, restrict, verify};

struct Entry<T> {
    random: Check,
    life: u8,
    data: T,
}

/// The objects of a server: object number → (random check value, lifetime, data).
pub struct ObjectTable<T> {
    port: Port,
    rng: Rng,
    super_random: Check,
    objects: BTreeMap<u32, Entry<T>>,
    next: u32,
    max_life: u8,
    capacity: usize,
}

impl<T> ObjectTable<T> {
    /// An empty table for a server whose put-port is `port`. New objects live for
    /// `max_life` calls of `STD_AGE` without being touched (at least 1).
    pub fn new(port: Port, mut rng: Rng, max_life: u8) -> ObjectTable<T> {
        let super_random = rng.check();
        ObjectTable {
            port,
            rng,
            super_random,
            objects: BTreeMap::new(),
            next: 1,
            max_life: max_life.max(1),
            capacity: OBJECT_MAX as usize,
        }
    }

    /// Limit the number of objects (`create` fails with `NoSpace` beyond it).
    pub fn set_capacity(&mut self, n: usize) {
        self.capacity = n.min(OBJECT_MAX as usize);
    }

    /// The server's put-port.
    pub fn port(&self) -> Port {
        self.port
    }

    /// The owner capability of object 0, the server itself.
    pub fn super_capability(&self) -> Capability {
        Capability::owner(self.port, 0, self.super_random)
    }

    /// Number of objects (not counting object 0).
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// No objects?
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Create an object with a fresh random check value; returns its owner capability.
    pub fn create(&mut self, data: T) -> Result<Capability, Status> {
        if self.objects.len() >= self.capacity {
            return Err(Status::NoSpace);
        }
        let mut obj = self.next;
        while obj == 0 || self.objects.contains_key(&obj) {
            obj = if obj >= OBJECT_MAX { 1 } else { obj + 1 };
        }
        self.next = if obj >= OBJECT_MAX { 1 } else { obj + 1 };
        let random = self.rng.check();
        self.insert(obj, random, data);
        Ok(Capability::owner(self.port, obj, random))
    }

    /// Insert (or replace) an object with a known random value, e.g. when a server
    /// reloads its state from disk. Object 0 and numbers above 24 bits are ignored.
    pub fn insert(&mut self, object: u32, random: Check, data: T) {
        if object == 0 || object > OBJECT_MAX {
            return;
        }
        self.objects.insert(object, Entry { random, life: self.max_life, data });
    }

    /// The object's data.
    pub fn get(&self, object: u32) -> Option<&T> {
        self.objects.get(&object).map(|e| &e.data)
    }

    /// The object's data, mutably.
    pub fn get_mut(&mut self, object: u32) -> Option<&mut T> {
        self.objects.get_mut(&object).map(|e| &mut e.data)
    }

    /// The object's random check value (to persist it).
    pub fn random(&self, object: u32) -> Option<Check> {
        if object == 0 {
            return Some(self.super_random);
        }
        self.objects.get(&object).map(|e| e.random)
    }

    /// Remove an object; capabilities for it become invalid.
    pub fn remove(&mut self, object: u32) -> Option<T> {
        self.objects.remove(&object).map(|e| e.data)
    }

    /// Iterate over (object number, data).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.objects.iter().map(|(k, e)| (*k, &e.data))
    }

    /// Check a capability: right port, existing object, valid check field (compared
    /// in constant time). Returns its rights, or `CapBad`.
    pub fn verify(&self, cap: &Capability) -> Result<Rights, Status> {
        if cap.port != self.port {
            return Err(Status::CapBad);
        }
        let random = self.random(cap.object).ok_or(Status::CapBad)?;
        verify(&random, cap).map_err(|_| Status::CapBad)
    }

    /// Server-side restriction (STD_RESTRICT): a capability for the same object with
    /// rights `cap.rights & mask`. `cap` must verify.
    pub fn restrict(&self, cap: &Capability, mask: Rights) -> Result<Capability, Status> {
        let rights = self.verify(cap)? & mask;
        let random = self.random(cap.object).ok_or(Status::CapBad)?;
        Ok(Capability { rights, check: restrict(&random, rights), ..*cap })
    }

    /// Reset an object's lifetime. Returns false if it does not exist.
    pub fn touch(&mut self, object: u32) -> bool {
        match self.objects.get_mut(&object) {
            Some(e) => {
                e.life = self.max_life;
                true
            }
            None => object == 0,
        }
    }

    /// Decrement every lifetime; remove and return the objects that reach zero.
    pub fn age(&mut self) -> Vec<(u32, T)> {
        let mut dead = Vec::new();
        for (k, e) in self.objects.iter_mut() {
            e.life = e.life.saturating_sub(1);
            if e.life == 0 {
                dead.push(*k);
            }
        }
        dead.into_iter().filter_map(|k| self.objects.remove(&k).map(|e| (k, e.data))).collect()
    }
}

/// A verified incoming request handed to [`Service::handle`].
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// The request header.
    pub header: &'a Header,
    /// The request buffer.
    pub buf: &'a [u8],
    /// The object named by the (verified) capability; 0 = the server itself.
    pub object: u32,
    /// The capability's rights.
    pub rights: Rights,
}

impl Call<'_> {
    /// `Ok` if the capability has all of `needed`, else `Err(Status::Denied)`.
    pub fn require(&self, needed: Rights) -> Result<(), Status> {
        if self.rights.contains(needed) { Ok(()) } else { Err(Status::Denied) }
    }
}

/// A server's own behaviour; the standard commands are handled by [`Server::dispatch`].
pub trait Service {
    /// Per-object data.
    type Object;

    /// Handle a command that is not one of the generic standard commands
    /// (`STD_INFO`, `STD_RESTRICT`, `STD_DESTROY`, `STD_TOUCH`, `STD_AGE`). The
    /// capability has already been verified. `Err(s)` becomes a reply with status `s`.
    fn handle(
        &mut self,
        table: &mut ObjectTable<Self::Object>,
        call: Call<'_>,
    ) -> Result<(Header, Vec<u8>), Status>;

    /// Text for `STD_INFO` (`data` is `None` for object 0).
    fn info(&self, object: u32, data: Option<&Self::Object>) -> String {
        let _ = data;
        if object == 0 { String::from("server") } else { format!("object {object}") }
    }

    /// Called when an object is destroyed by `STD_DESTROY` or garbage collected by
    /// `STD_AGE` (e.g. to free disk blocks).
    fn destroyed(&mut self, object: u32, data: Self::Object) {
        let _ = (object, data);
    }
}

/// An object table plus a service: a server is a dispatch on commands.
pub struct Server<S: Service> {
    /// The objects.
    pub table: ObjectTable<S::Object>,
    /// The server's own state and commands.
    pub service: S,
}

fn status_reply(s: Status) -> (Header, Vec<u8>) {
    (Header::reply(s), Vec::new())
}

impl<S: Service> Server<S> {
    /// A server over `table` with `service`.
    pub fn new(table: ObjectTable<S::Object>, service: S) -> Server<S> {
        Server { table, service }
    }

    /// Handle one request: verify its capability (`CapBad` if forged, unknown or for
    /// another port), touch the object, answer the standard commands, pass the rest to
    /// the service. Returns the reply header and buffer.
    pub fn dispatch(&mut self, header: &Header, buf: &[u8]) -> (Header, Vec<u8>) {
        let cap = header.capability();
        let rights = match self.table.verify(&cap) {
            Ok(r) => r,
            Err(s) => return status_reply(s),
        };
        let object = cap.object;
        self.table.touch(object);
        let call = Call { header, buf, object, rights };
        match header.command {
            STD_INFO => {
                let text = self.service.info(object, self.table.get(object));
                let mut h = Header::reply(Status::Ok);
                h.size = text.len() as u32;
                (h, text.into_bytes())
            }
            STD_RESTRICT => match self.table.restrict(&cap, Rights(header.extra as u8)) {
                Ok(new) => {
                    let mut h = Header::reply(Status::Ok);
                    h.set_capability(&new);
                    (h, Vec::new())
                }
                Err(s) => status_reply(s),
            },
            STD_DESTROY => {
                if object == 0 {
                    return status_reply(Status::Denied);
                }
                if let Err(s) = call.require(Rights::DELETE) {
                    return status_reply(s);
                }
                match self.table.remove(object) {
                    Some(data) => {
                        self.service.destroyed(object, data);
                        status_reply(Status::Ok)
                    }
                    None => status_reply(Status::CapBad),
                }
            }
            STD_TOUCH => status_reply(Status::Ok),
            STD_AGE => {
                if object != 0 || !rights.is_owner() {
                    return status_reply(Status::Denied);
                }
                let dead = self.table.age();
                let n = dead.len();
                for (k, d) in dead {
                    self.service.destroyed(k, d);
                }
                let mut h = Header::reply(Status::Ok);
                h.extra = n as u32;
                (h, Vec::new())
            }
            _ => match self.service.handle(&mut self.table, call) {
                Ok(r) => r,
                Err(s) => status_reply(s),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use crate::cmd::STD_INFO;
    use proptest::prelude::*;

    const CREATE: u32 = 5000;
    const READ: u32 = 5001;
    const WRITE: u32 = 5002;

    /// A toy store: objects are byte strings.
    #[derive(Default)]
    struct Store {
        destroyed: Vec<u32>,
    }

    impl Service for Store {
        type Object = Vec<u8>;
        fn handle(&mut self, t: &mut ObjectTable<Vec<u8>>, c: Call<'_>) -> Result<(Header, Vec<u8>), Status> {
            match c.header.command {
                CREATE => {
                    if c.object != 0 {
                        return Err(Status::ArgBad);
                    }
                    c.require(Rights::CREATE)?;
                    let cap = t.create(c.buf.to_vec())?;
                    let mut h = Header::reply(Status::Ok);
                    h.set_capability(&cap);
                    Ok((h, Vec::new()))
                }
                READ => {
                    c.require(Rights::READ)?;
                    Ok((Header::reply(Status::Ok), t.get(c.object).ok_or(Status::CapBad)?.clone()))
                }
                WRITE => {
                    c.require(Rights::MODIFY)?;
                    *t.get_mut(c.object).ok_or(Status::CapBad)? = c.buf.to_vec();
                    Ok((Header::reply(Status::Ok), Vec::new()))
                }
                _ => Err(Status::ComBad),
            }
        }
        fn info(&self, object: u32, data: Option<&Vec<u8>>) -> String {
            format!("store object {object} len {}", data.map_or(0, |d| d.len()))
        }
        fn destroyed(&mut self, object: u32, _data: Vec<u8>) {
            self.destroyed.push(object);
        }
    }

    fn server() -> Server<Store> {
        let port = Port([0x11; 6]);
        Server::new(ObjectTable::new(port, Rng::from_seed([3; 32]), 2), Store::default())
    }

    fn call(s: &mut Server<Store>, cap: &Capability, cmd: u32, buf: &[u8]) -> (Header, Vec<u8>) {
        s.dispatch(&Header::request(cap, cmd), buf)
    }

    fn create(s: &mut Server<Store>, data: &[u8]) -> Capability {
        let sup = s.table.super_capability();
        let (h, _) = call(s, &sup, CREATE, data);
        assert_eq!(h.status(), Status::Ok);
        h.capability()
    }

    #[test]
    fn create_read_write() {
        let mut s = server();
        let cap = create(&mut s, b"hello");
        assert_eq!(cap.rights, Rights::ALL);
        assert_eq!(cap.port, s.table.port());
        assert_eq!(call(&mut s, &cap, READ, &[]).1, b"hello");
        assert_eq!(call(&mut s, &cap, WRITE, b"bye").0.status(), Status::Ok);
        assert_eq!(call(&mut s, &cap, READ, &[]).1, b"bye");
        assert_eq!(call(&mut s, &cap, 9999, &[]).0.status(), Status::ComBad);
        let (h, b) = call(&mut s, &cap, STD_INFO, &[]);
        assert_eq!(h.status(), Status::Ok);
        assert_eq!(b, b"store object 1 len 3");
        assert_eq!(h.size, 20);
    }

    #[test]
    fn forged_check_refused() {
        let mut s = server();
        let cap = create(&mut s, b"x");
        for i in 0..6 {
            let mut f = cap;
            f.check.0[i] ^= 1;
            assert_eq!(call(&mut s, &f, READ, &[]).0.status(), Status::CapBad);
        }
        // Wrong object, wrong port, forged super capability.
        let f = Capability { object: 77, ..cap };
        assert_eq!(call(&mut s, &f, READ, &[]).0.status(), Status::CapBad);
        let f = Capability { port: Port([0x12; 6]), ..cap };
        assert_eq!(call(&mut s, &f, READ, &[]).0.status(), Status::CapBad);
        let f = Capability { object: 0, ..cap };
        assert_eq!(call(&mut s, &f, CREATE, &[]).0.status(), Status::CapBad);
        // Raising the rights of a restricted capability.
        let r = cap.restrict(Rights::READ).unwrap();
        let f = Capability { rights: Rights::ALL, ..r };
        assert_eq!(call(&mut s, &f, WRITE, &[]).0.status(), Status::CapBad);
    }

    #[test]
    fn restricted_beyond_rights_is_denied() {
        let mut s = server();
        let cap = create(&mut s, b"x");
        let ro = cap.restrict(Rights::READ).unwrap();
        assert_eq!(call(&mut s, &ro, READ, &[]).1, b"x");
        assert_eq!(call(&mut s, &ro, WRITE, b"y").0.status(), Status::Denied);
        assert_eq!(call(&mut s, &ro, STD_DESTROY, &[]).0.status(), Status::Denied);
        assert_eq!(call(&mut s, &ro, READ, &[]).1, b"x");
        // A restricted super capability cannot create.
        let sup = s.table.super_capability().restrict(Rights::READ).unwrap();
        assert_eq!(call(&mut s, &sup, CREATE, &[]).0.status(), Status::Denied);
        assert_eq!(call(&mut s, &sup, STD_AGE, &[]).0.status(), Status::Denied);
    }

    #[test]
    fn std_restrict_then_use() {
        let mut s = server();
        let cap = create(&mut s, b"x");
        // Owner → read+modify via the server.
        let mut h = Header::request(&cap, STD_RESTRICT);
        h.extra = (Rights::READ | Rights::MODIFY).bits() as u32;
        let (rep, _) = s.dispatch(&h, &[]);
        assert_eq!(rep.status(), Status::Ok);
        let rm = rep.capability();
        assert_eq!(rm.rights, Rights(0x06));
        assert_eq!(rm.object, cap.object);
        assert_eq!(call(&mut s, &rm, WRITE, b"z").0.status(), Status::Ok);
        // Restricted → read only: only possible through the server.
        assert!(rm.restrict(Rights::READ).is_err());
        let mut h = Header::request(&rm, STD_RESTRICT);
        h.extra = Rights::READ.bits() as u32;
        let ro = s.dispatch(&h, &[]).0.capability();
        assert_eq!(ro.rights, Rights::READ);
        assert_eq!(call(&mut s, &ro, READ, &[]).1, b"z");
        assert_eq!(call(&mut s, &ro, WRITE, b"q").0.status(), Status::Denied);
        // Restriction can't add rights back.
        let mut h = Header::request(&ro, STD_RESTRICT);
        h.extra = 0xff;
        assert_eq!(s.dispatch(&h, &[]).0.capability().rights, Rights::READ);
        // Same as local restriction of the owner.
        assert_eq!(ro, cap.restrict(Rights::READ).unwrap());
    }

    #[test]
    fn destroy_then_use_is_capbad() {
        let mut s = server();
        let cap = create(&mut s, b"x");
        let other = create(&mut s, b"y");
        assert_eq!(call(&mut s, &cap, STD_DESTROY, &[]).0.status(), Status::Ok);
        assert_eq!(s.service.destroyed, vec![cap.object]);
        assert_eq!(call(&mut s, &cap, READ, &[]).0.status(), Status::CapBad);
        assert_eq!(call(&mut s, &cap, STD_DESTROY, &[]).0.status(), Status::CapBad);
        assert_eq!(call(&mut s, &other, READ, &[]).1, b"y");
        let sup = s.table.super_capability();
        assert_eq!(call(&mut s, &sup, STD_DESTROY, &[]).0.status(), Status::Denied);
        // A new object never reuses the old check.
        let n = create(&mut s, b"n");
        assert_ne!(n.check, cap.check);
    }

    #[test]
    fn age_collects_untouched() {
        let mut s = server(); // max_life 2
        let a = create(&mut s, b"a");
        let b = create(&mut s, b"b");
        let c = create(&mut s, b"c");
        let sup = s.table.super_capability();
        let age = |s: &mut Server<Store>| {
            let (h, _) = s.dispatch(&Header::request(&sup, STD_AGE), &[]);
            assert_eq!(h.status(), Status::Ok);
            h.extra
        };
        assert_eq!(age(&mut s), 0);
        assert_eq!(call(&mut s, &a, STD_TOUCH, &[]).0.status(), Status::Ok);
        assert_eq!(call(&mut s, &b, READ, &[]).1, b"b"); // any access touches
        assert_eq!(age(&mut s), 1); // c dies
        assert_eq!(s.service.destroyed, vec![c.object]);
        assert_eq!(call(&mut s, &c, READ, &[]).0.status(), Status::CapBad);
        assert_eq!(call(&mut s, &a, STD_TOUCH, &[]).0.status(), Status::Ok);
        assert_eq!(age(&mut s), 1); // b dies
        assert_eq!(call(&mut s, &b, READ, &[]).0.status(), Status::CapBad);
        assert_eq!(call(&mut s, &a, READ, &[]).1, b"a");
        // STD_AGE needs the super capability.
        assert_eq!(call(&mut s, &a, STD_AGE, &[]).0.status(), Status::Denied);
        assert_eq!(s.table.len(), 1);
    }

    #[test]
    fn capacity_and_reload() {
        let mut s = server();
        s.table.set_capacity(1);
        let a = create(&mut s, b"a");
        let sup = s.table.super_capability();
        assert_eq!(call(&mut s, &sup, CREATE, b"b").0.status(), Status::NoSpace);
        // Reload into another table with the same port keeps the capability valid.
        let random = s.table.random(a.object).unwrap();
        let mut t: ObjectTable<Vec<u8>> = ObjectTable::new(s.table.port(), Rng::from_seed([4; 32]), 2);
        t.insert(a.object, random, b"a".to_vec());
        assert_eq!(t.verify(&a), Ok(Rights::ALL));
        assert_eq!(t.verify(&a.restrict(Rights::READ).unwrap()), Ok(Rights::READ));
    }

    proptest! {
        #[test]
        fn random_caps_are_refused(port: [u8; 6], object in 0u32..=20, rights: u8, check: [u8; 6]) {
            let mut s = server();
            for i in 0..10 { create(&mut s, &[i]); }
            let cap = Capability { port: Port(port), object, rights: Rights(rights), check: crate::Check(check) };
            let (h, _) = call(&mut s, &cap, READ, &[]);
            prop_assert_eq!(h.status(), Status::CapBad);
        }
    }
}
