//! The whole-file RAM cache of committed files, bounded in bytes, least recently used
//! out first. Files are immutable, so a cached copy never goes stale; it is dropped
//! only to make room or when its file is destroyed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

struct Entry {
    data: Vec<u8>,
    stamp: u64,
}

/// Cached file contents by inode number.
pub(crate) struct Cache {
    capacity: usize,
    used: usize,
    entries: BTreeMap<u32, Entry>,
    /// Use stamp → inode; the first entry is the least recently used.
    by_age: BTreeMap<u64, u32>,
    clock: u64,
}

impl Cache {
    /// An empty cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Cache {
        Cache { capacity, used: 0, entries: BTreeMap::new(), by_age: BTreeMap::new(), clock: 0 }
    }

    /// The configured bound in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Could a file of `len` bytes be cached at all?
    pub fn fits(&self, len: usize) -> bool {
        len <= self.capacity
    }

    /// Is inode `inode` cached? (Does not count as a use.)
    pub fn contains(&self, inode: u32) -> bool {
        self.entries.contains_key(&inode)
    }

    /// The cached contents of `inode`, marking it most recently used.
    pub fn get(&mut self, inode: u32) -> Option<&[u8]> {
        let e = self.entries.get_mut(&inode)?;
        self.by_age.remove(&e.stamp);
        self.clock += 1;
        e.stamp = self.clock;
        self.by_age.insert(self.clock, inode);
        Some(&e.data)
    }

    /// Cache `data` as the contents of `inode` (most recently used), evicting the
    /// least recently used files until it fits. A file larger than the whole cache is
    /// not cached.
    pub fn insert(&mut self, inode: u32, data: Vec<u8>) {
        self.remove(inode);
        if !self.fits(data.len()) {
            return;
        }
        while self.used + data.len() > self.capacity && self.evict_one() {}
        self.clock += 1;
        self.used += data.len();
        self.by_age.insert(self.clock, inode);
        self.entries.insert(inode, Entry { data, stamp: self.clock });
    }

    /// Drop the least recently used file, giving its memory back; false if the
    /// cache was empty.
    pub fn evict_one(&mut self) -> bool {
        let Some((_, victim)) = self.by_age.pop_first() else { return false };
        if let Some(e) = self.entries.remove(&victim) {
            self.used -= e.data.len();
        }
        true
    }

    /// Drop `inode`'s contents.
    pub fn remove(&mut self, inode: u32) {
        if let Some(e) = self.entries.remove(&inode) {
            self.by_age.remove(&e.stamp);
            self.used -= e.data.len();
        }
    }

    /// Cached inodes, least recently used first.
    pub fn lru_order(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_age.values().copied()
    }

    /// Is the bookkeeping consistent (bytes add up, bound kept, the age index matches
    /// the entries)?
    pub fn check(&self) -> Result<(), &'static str> {
        let sum: usize = self.entries.values().map(|e| e.data.len()).sum();
        if sum != self.used {
            return Err("cache byte count does not match its entries");
        }
        if self.used > self.capacity {
            return Err("cache holds more than its bound");
        }
        let indexed = self.by_age.len() == self.entries.len()
            && self.by_age.iter().all(|(s, i)| self.entries.get(i).is_some_and(|e| e.stamp == *s));
        if !indexed {
            return Err("cache age index does not match its entries");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn lru_eviction_respects_the_bound() {
        let mut c = Cache::new(100);
        c.insert(1, vec![1; 40]);
        c.insert(2, vec![2; 40]);
        assert_eq!(c.get(1).map(|d| d[0]), Some(1)); // 1 now more recent than 2
        c.insert(3, vec![3; 40]); // evicts 2
        assert!(c.contains(1) && !c.contains(2) && c.contains(3));
        assert_eq!(c.used(), 80);
        assert_eq!(c.lru_order().collect::<Vec<_>>(), [1, 3]);
        c.insert(4, vec![4; 101]); // too big: not cached, nothing evicted
        assert!(!c.contains(4) && c.contains(1));
        c.insert(5, vec![5; 100]); // evicts everything else
        assert_eq!(c.lru_order().collect::<Vec<_>>(), [5]);
        c.remove(5);
        assert_eq!(c.used(), 0);
        c.check().unwrap();
        c.insert(6, vec![6; 10]);
        c.insert(7, vec![7; 10]);
        assert!(c.evict_one());
        assert_eq!(c.lru_order().collect::<Vec<_>>(), [7]);
        assert!(c.evict_one() && !c.evict_one());
        assert_eq!(c.used(), 0);
        c.check().unwrap();
    }

    #[test]
    fn check_rejects_broken_bookkeeping() {
        let mut c = Cache::new(100);
        c.insert(1, vec![0; 10]);
        c.used = 11;
        assert!(c.check().is_err());
        c.used = 10;
        c.by_age.insert(999, 1);
        assert!(c.check().is_err());
    }
}
