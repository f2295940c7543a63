//! What a process server's info call reports about its board, and the compact
//! binary form its reply carries: the run server decodes it to score the board.

use alloc::vec::Vec;
use core::fmt;

/// 1.0 in the thousandths that loads, preferences, speeds and bonuses are given in.
/// Fixed point keeps every score an exact integer, the same on every machine.
pub const UNIT: u32 = 1000;

/// The encoding's version byte; a new layout gets a new number.
pub const INFO_VERSION: u8 = 1;

/// At most this many cached program texts travel in one reply (the process
/// server lists its most recently used first; the rest are left out).
pub const MAX_CACHED_TEXTS: usize = 64;

/// Bytes before the list of cached texts: version, the fixed fields, the count.
const FIXED_LEN: usize = 1 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 2;

/// One board's state as its process server reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// Threads ready or running when the reply was made (not the one answering).
    pub runnable_threads: u32,
    /// Share of the last second the processor was busy, in thousandths (0..=1000).
    pub cpu_load_milli: u32,
    /// Bytes free for segments.
    pub free_bytes: u64,
    /// The largest contiguous free run: no segment larger than this can be made.
    pub largest_free: u64,
    /// Processes alive on the board.
    pub processes: u32,
    /// Processes created since boot (never goes down until the board reboots):
    /// tells the run server which of its placements have become processes.
    pub processes_created: u64,
    /// Microseconds since the board booted.
    pub uptime_us: u64,
    /// Identifiers of the program texts the board holds cached.
    pub cached_texts: Vec<u64>,
}

impl HostInfo {
    /// Demand on the processor in thousandths of one always-busy thread: the
    /// larger of the threads runnable now and the busy share of the last second.
    /// The count sees hogs that have just started (and how many compete); the
    /// share sees a program that happened to be blocked at the instant of the call.
    pub fn load_milli(&self) -> u64 {
        (u64::from(self.runnable_threads) * u64::from(UNIT)).max(u64::from(self.cpu_load_milli))
    }

    /// Whether the board holds the program text `text` cached.
    pub fn has_cached(&self, text: u64) -> bool {
        self.cached_texts.contains(&text)
    }

    /// The reply's bytes: the version, then every field little-endian in
    /// declaration order, then a u16 count and that many u64 text ids (at most
    /// [`MAX_CACHED_TEXTS`], the first ones).
    pub fn encode(&self) -> Vec<u8> {
        let texts = &self.cached_texts[..self.cached_texts.len().min(MAX_CACHED_TEXTS)];
        let mut out = Vec::with_capacity(FIXED_LEN + 8 * texts.len());
        out.push(INFO_VERSION);
        out.extend_from_slice(&self.runnable_threads.to_le_bytes());
        out.extend_from_slice(&self.cpu_load_milli.to_le_bytes());
        out.extend_from_slice(&self.free_bytes.to_le_bytes());
        out.extend_from_slice(&self.largest_free.to_le_bytes());
        out.extend_from_slice(&self.processes.to_le_bytes());
        out.extend_from_slice(&self.processes_created.to_le_bytes());
        out.extend_from_slice(&self.uptime_us.to_le_bytes());
        out.extend_from_slice(&(texts.len() as u16).to_le_bytes());
        for text in texts {
            out.extend_from_slice(&text.to_le_bytes());
        }
        out
    }

    /// Reads a reply made by [`HostInfo::encode`], refusing anything shorter,
    /// longer, of another version, or whose fields contradict each other.
    pub fn decode(bytes: &[u8]) -> Result<HostInfo, DecodeError> {
        let mut reader = Reader { bytes };
        let version = reader.take::<1>()?[0];
        if version != INFO_VERSION {
            return Err(DecodeError::Version(version));
        }
        let mut info = HostInfo {
            runnable_threads: u32::from_le_bytes(reader.take()?),
            cpu_load_milli: u32::from_le_bytes(reader.take()?),
            free_bytes: u64::from_le_bytes(reader.take()?),
            largest_free: u64::from_le_bytes(reader.take()?),
            processes: u32::from_le_bytes(reader.take()?),
            processes_created: u64::from_le_bytes(reader.take()?),
            uptime_us: u64::from_le_bytes(reader.take()?),
            cached_texts: Vec::new(),
        };
        let count = usize::from(u16::from_le_bytes(reader.take()?));
        if count > MAX_CACHED_TEXTS {
            return Err(DecodeError::TooManyTexts(count));
        }
        for _ in 0..count {
            info.cached_texts.push(u64::from_le_bytes(reader.take()?));
        }
        if !reader.bytes.is_empty() {
            return Err(DecodeError::TrailingBytes(reader.bytes.len()));
        }
        if info.cpu_load_milli > UNIT || info.largest_free > info.free_bytes {
            return Err(DecodeError::Inconsistent);
        }
        Ok(info)
    }
}

/// Why a reply could not be read as a [`HostInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the fields do.
    Short,
    /// A version this run server does not know.
    Version(u8),
    /// More cached texts announced than a reply may carry.
    TooManyTexts(usize),
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// Fields that cannot all be true: a busy share above 100 %, or a largest
    /// free run bigger than all free memory.
    Inconsistent,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short => write!(f, "host info reply is cut short"),
            DecodeError::Version(v) => write!(f, "host info reply has unknown version {v}"),
            DecodeError::TooManyTexts(n) => write!(f, "host info reply lists {n} cached texts"),
            DecodeError::TrailingBytes(n) => write!(f, "host info reply has {n} stray bytes at the end"),
            DecodeError::Inconsistent => write!(f, "host info reply contradicts itself"),
        }
    }
}

/// Takes fixed-size pieces off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self.bytes.split_first_chunk::<N>().ok_or(DecodeError::Short)?;
        self.bytes = rest;
        Ok(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn sample() -> HostInfo {
        HostInfo {
            runnable_threads: 3,
            cpu_load_milli: 870,
            free_bytes: 200 << 20,
            largest_free: 150 << 20,
            processes: 5,
            processes_created: 41,
            uptime_us: 12_345_678,
            cached_texts: vec![7, u64::MAX, 0x0123_4567_89ab_cdef],
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let info = sample();
        let bytes = info.encode();
        assert_eq!(bytes.len(), FIXED_LEN + 3 * 8);
        assert_eq!(bytes[0], INFO_VERSION);
        assert_eq!(HostInfo::decode(&bytes), Ok(info));
    }

    #[test]
    fn fields_are_little_endian_in_order() {
        let bytes = sample().encode();
        assert_eq!(bytes[1..5], 3u32.to_le_bytes());
        assert_eq!(bytes[5..9], 870u32.to_le_bytes());
        assert_eq!(bytes[FIXED_LEN - 2..FIXED_LEN], 3u16.to_le_bytes());
    }

    #[test]
    fn every_truncation_is_refused_as_short() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert_eq!(HostInfo::decode(&bytes[..len]), Err(DecodeError::Short), "length {len}");
        }
    }

    #[test]
    fn garbled_replies_are_refused() {
        let good = sample().encode();
        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(HostInfo::decode(&version), Err(DecodeError::Version(2)));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(HostInfo::decode(&trailing), Err(DecodeError::TrailingBytes(1)));
        let mut too_many = good.clone();
        too_many[FIXED_LEN - 2..FIXED_LEN].copy_from_slice(&(MAX_CACHED_TEXTS as u16 + 1).to_le_bytes());
        assert_eq!(HostInfo::decode(&too_many), Err(DecodeError::TooManyTexts(MAX_CACHED_TEXTS + 1)));
        let overloaded = HostInfo { cpu_load_milli: UNIT + 1, ..sample() };
        assert_eq!(HostInfo::decode(&overloaded.encode()), Err(DecodeError::Inconsistent));
        let hole_too_big = HostInfo { largest_free: (200 << 20) + 1, ..sample() };
        assert_eq!(HostInfo::decode(&hole_too_big.encode()), Err(DecodeError::Inconsistent));
    }

    #[test]
    fn long_cache_lists_are_cut_to_the_first_ones() {
        let info = HostInfo { cached_texts: (0..100).collect(), ..sample() };
        let decoded = HostInfo::decode(&info.encode()).unwrap();
        assert_eq!(decoded.cached_texts, (0..MAX_CACHED_TEXTS as u64).collect::<Vec<_>>());
    }

    #[test]
    fn load_is_the_larger_of_runnable_threads_and_busy_share() {
        let hogs = HostInfo { runnable_threads: 2, cpu_load_milli: 1000, ..HostInfo::default() };
        assert_eq!(hogs.load_milli(), 2000);
        let blocked = HostInfo { runnable_threads: 0, cpu_load_milli: 400, ..HostInfo::default() };
        assert_eq!(blocked.load_milli(), 400);
    }

    fn any_info() -> impl Strategy<Value = HostInfo> {
        (any::<[u32; 3]>(), 0..=UNIT, any::<[u64; 4]>(), proptest::collection::vec(any::<u64>(), 0..=64))
            .prop_map(|([runnable, processes, _], cpu, [a, b, created, uptime], texts)| HostInfo {
                runnable_threads: runnable,
                cpu_load_milli: cpu,
                free_bytes: a.max(b),
                largest_free: a.min(b),
                processes,
                processes_created: created,
                uptime_us: uptime,
                cached_texts: texts,
            })
    }

    proptest! {
        #[test]
        fn any_valid_info_round_trips(info in any_info()) {
            prop_assert_eq!(HostInfo::decode(&info.encode()), Ok(info));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(info) = HostInfo::decode(&bytes) {
                prop_assert_eq!(info.encode(), bytes);
            }
        }
    }
}
