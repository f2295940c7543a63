//! The object table most servers keep: objects keyed by object number, each with its
//! random check value and a lifetime, and [`TableServer`], which gives a server whose
//! objects live in one table the capability checks and standard commands of every
//! declared interface ([`crate::interface::Objects`]).
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
//! use amoeba_ipc::interface::Call;
//! use amoeba_ipc::interfaces::counter;
//! use amoeba_ipc::server::{ObjectTable, TableServer};
//! use amoeba_abi::{Header, Rights, Rng, Status};
//!
//! struct Counters(ObjectTable<u32>);
//! impl TableServer for Counters {
//!     type Object = u32;
//!     fn table(&self) -> &ObjectTable<u32> { &self.0 }
//!     fn table_mut(&mut self) -> &mut ObjectTable<u32> { &mut self.0 }
//! }
//! impl counter::Server for Counters {
//!     fn increment(&mut self, call: &Call) -> Result<u32, Status> {
//!         let n = self.0.get_mut(call.object).ok_or(Status::CapBad)?;
//!         *n += 1;
//!         Ok(*n)
//!     }
//!     fn read(&mut self, call: &Call) -> Result<u32, Status> {
//!         self.0.get(call.object).copied().ok_or(Status::CapBad)
//!     }
//!     fn slow_increment(&mut self, call: &Call) -> Result<u32, Status> {
//!         self.increment(call)
//!     }
//! }
//!
//! let mut rng = Rng::from_seed([1; 32]);
//! let mut server = Counters(ObjectTable::new(rng.port(), Rng::from_seed([2; 32]), 3));
//! let cap = server.0.create(0).unwrap();
//! let (reply, _) = counter::dispatch(&mut server, &Header::request(&cap, counter::COUNTER_INCREMENT), &[]);
//! assert_eq!((reply.status(), reply.extra), (Status::Ok, 1));
//! let read_only = cap.restrict(Rights::READ).unwrap();
//! let (reply, _) = counter::dispatch(&mut server, &Header::request(&read_only, counter::COUNTER_INCREMENT), &[]);
//! assert_eq!(reply.status(), Status::Denied);
//! ```

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::interface::Objects;
use amoeba_abi::{Capability, Check, OBJECT_MAX, Port, Rights, Rng, Status, restrict, verify};

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

/// A server whose objects live in an [`ObjectTable`] gets [`Objects`] (capability
/// checks and the standard commands) by naming its table.
pub trait TableServer {
    /// Per-object data.
    type Object;
    /// The table.
    fn table(&self) -> &ObjectTable<Self::Object>;
    /// The table, mutably.
    fn table_mut(&mut self) -> &mut ObjectTable<Self::Object>;
    /// Text for `STD_INFO` (`data` is `None` for object 0).
    fn describe_object(&self, object: u32, data: Option<&Self::Object>) -> String {
        let _ = data;
        if object == 0 { String::from("server") } else { format!("object {object}") }
    }
    /// Called when an object is destroyed by `STD_DESTROY` or collected by `STD_AGE`
    /// (e.g. to free disk blocks).
    fn destroyed(&mut self, object: u32, data: Self::Object) {
        let _ = (object, data);
    }
}

impl<S: TableServer> Objects for S {
    fn port(&self) -> Port {
        self.table().port()
    }
    fn check(&self, object: u32) -> Option<Check> {
        self.table().random(object)
    }
    fn touch_object(&mut self, object: u32) {
        self.table_mut().touch(object);
    }
    fn describe(&mut self, object: u32) -> String {
        self.describe_object(object, self.table().get(object))
    }
    fn destroy_object(&mut self, object: u32) -> Result<(), Status> {
        let data = self.table_mut().remove(object).ok_or(Status::CapBad)?;
        self.destroyed(object, data);
        Ok(())
    }
    fn age_objects(&mut self) -> Result<u32, Status> {
        let dead = self.table_mut().age();
        let n = dead.len() as u32;
        for (object, data) in dead {
            self.destroyed(object, data);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interface::Call;
    use crate::interfaces::standard::{STD_AGE, STD_DESTROY, STD_INFO, STD_RESTRICT, STD_TOUCH};
    use amoeba_abi::Header;
    use proptest::prelude::*;

    crate::interface! {
        /// A toy store: objects are byte strings.
        mod store {
            fn create as CREATE = 5000, server(Rights::CREATE) (data: bytes) -> (cap: cap);
            fn read as READ = 5001, object(Rights::READ) () -> (data: bytes);
            fn write as WRITE = 5002, object(Rights::MODIFY) (data: bytes) -> ();
        }
    }
    use store::{CREATE, READ, WRITE};

    struct Store {
        table: ObjectTable<Vec<u8>>,
        destroyed: Vec<u32>,
    }

    impl TableServer for Store {
        type Object = Vec<u8>;
        fn table(&self) -> &ObjectTable<Vec<u8>> {
            &self.table
        }
        fn table_mut(&mut self) -> &mut ObjectTable<Vec<u8>> {
            &mut self.table
        }
        fn describe_object(&self, object: u32, data: Option<&Vec<u8>>) -> String {
            format!("store object {object} len {}", data.map_or(0, |d| d.len()))
        }
        fn destroyed(&mut self, object: u32, _data: Vec<u8>) {
            self.destroyed.push(object);
        }
    }

    impl store::Server for Store {
        fn create(&mut self, _: &Call<'_>, data: &[u8]) -> Result<Capability, Status> {
            self.table.create(data.to_vec())
        }
        fn read(&mut self, call: &Call<'_>) -> Result<Vec<u8>, Status> {
            self.table.get(call.object).cloned().ok_or(Status::CapBad)
        }
        fn write(&mut self, call: &Call<'_>, data: &[u8]) -> Result<(), Status> {
            *self.table.get_mut(call.object).ok_or(Status::CapBad)? = data.to_vec();
            Ok(())
        }
    }

    fn server() -> Store {
        let port = Port([0x11; 6]);
        Store { table: ObjectTable::new(port, amoeba_abi::Rng::from_seed([3; 32]), 2), destroyed: Vec::new() }
    }

    fn call(s: &mut Store, cap: &Capability, cmd: u32, buf: &[u8]) -> (Header, Vec<u8>) {
        store::dispatch(s, &Header::request(cap, cmd), buf)
    }

    fn create(s: &mut Store, data: &[u8]) -> Capability {
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
        // Object kinds: create needs the server's capability, read an object's.
        assert_eq!(call(&mut s, &cap, CREATE, b"x").0.status(), Status::Denied);
        let sup = s.table.super_capability();
        assert_eq!(call(&mut s, &sup, READ, &[]).0.status(), Status::Denied);
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
        // Standard commands verify too.
        let f = Capability { check: amoeba_abi::Check([0; 6]), ..cap };
        assert_eq!(call(&mut s, &f, STD_INFO, &[]).0.status(), Status::CapBad);
        assert_eq!(call(&mut s, &f, STD_DESTROY, &[]).0.status(), Status::CapBad);
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
        let (rep, _) = store::dispatch(&mut s, &h, &[]);
        assert_eq!(rep.status(), Status::Ok);
        let rm = rep.capability();
        assert_eq!(rm.rights, Rights(0x06));
        assert_eq!(rm.object, cap.object);
        assert_eq!(call(&mut s, &rm, WRITE, b"z").0.status(), Status::Ok);
        // Restricted → read only: only possible through the server.
        assert!(rm.restrict(Rights::READ).is_err());
        let mut h = Header::request(&rm, STD_RESTRICT);
        h.extra = Rights::READ.bits() as u32;
        let ro = store::dispatch(&mut s, &h, &[]).0.capability();
        assert_eq!(ro.rights, Rights::READ);
        assert_eq!(call(&mut s, &ro, READ, &[]).1, b"z");
        assert_eq!(call(&mut s, &ro, WRITE, b"q").0.status(), Status::Denied);
        // Restriction can't add rights back.
        let mut h = Header::request(&ro, STD_RESTRICT);
        h.extra = 0xff;
        assert_eq!(store::dispatch(&mut s, &h, &[]).0.capability().rights, Rights::READ);
        // Same as local restriction of the owner.
        assert_eq!(ro, cap.restrict(Rights::READ).unwrap());
        // A mask that does not fit the rights byte is a bad argument.
        let mut h = Header::request(&cap, STD_RESTRICT);
        h.extra = 0x100;
        assert_eq!(store::dispatch(&mut s, &h, &[]).0.status(), Status::ArgBad);
    }

    #[test]
    fn destroy_then_use_is_capbad() {
        let mut s = server();
        let cap = create(&mut s, b"x");
        let other = create(&mut s, b"y");
        assert_eq!(call(&mut s, &cap, STD_DESTROY, &[]).0.status(), Status::Ok);
        assert_eq!(s.destroyed, vec![cap.object]);
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
        let age = |s: &mut Store| {
            let (h, _) = store::dispatch(s, &Header::request(&sup, STD_AGE), &[]);
            assert_eq!(h.status(), Status::Ok);
            h.extra
        };
        assert_eq!(age(&mut s), 0);
        assert_eq!(call(&mut s, &a, STD_TOUCH, &[]).0.status(), Status::Ok);
        assert_eq!(call(&mut s, &b, READ, &[]).1, b"b"); // any access touches
        assert_eq!(age(&mut s), 1); // c dies
        assert_eq!(s.destroyed, vec![c.object]);
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
        let mut t: ObjectTable<Vec<u8>> =
            ObjectTable::new(s.table.port(), amoeba_abi::Rng::from_seed([4; 32]), 2);
        t.insert(a.object, random, b"a".to_vec());
        assert_eq!(t.verify(&a), Ok(Rights::ALL));
        assert_eq!(t.verify(&a.restrict(Rights::READ).unwrap()), Ok(Rights::READ));
    }

    proptest! {
        #[test]
        fn random_caps_are_refused(port: [u8; 6], object in 0u32..=20, rights: u8, check: [u8; 6], cmd in 4990u32..5010) {
            let mut s = server();
            for i in 0..10 { create(&mut s, &[i]); }
            let cap = Capability { port: Port(port), object, rights: Rights(rights), check: amoeba_abi::Check(check) };
            let (h, _) = call(&mut s, &cap, cmd, &[]);
            prop_assert!(matches!(h.status(), Status::CapBad | Status::ComBad), "{:?}", h.status());
        }
    }
}
