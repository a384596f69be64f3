//! The event-id index that makes re-ingesting an event a no-op.
//!
//! An event's `ts` never changes, so ids are kept per UTC day: 128-bit hashes (a collision
//! is negligible at any realistic volume), loaded for a day the first time a write touches
//! it. Memory is bounded: when the cached days hold more than the configured number of ids,
//! the least recently used days are dropped and reloaded from their Parquet files later.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 (UTC) of a microsecond timestamp.
pub fn day_of_micros(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i32) -> String {
    chrono::DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

/// Hashes an event-id hash: xxh3 output is already uniform, so its low 64 bits are the
/// table hash. SipHash here cost a quarter of bulk-ingest time.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128; fold the bytes so it stays a valid hasher.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// A set of event-id hashes.
pub type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// The row indices of a batch grouped by UTC day: rows of one day keep their order.
#[derive(Debug, Default)]
pub struct DayGroups {
    /// Row indices, day by day.
    pub order: Vec<u32>,
    /// Each day with its slice of `order`, in ascending day order.
    pub days: Vec<(i32, Range<usize>)>,
}

impl DayGroups {
    /// Group the rows of microsecond timestamps `ts` by day: a counting sort when the days
    /// span a range comparable to the row count, a stable sort otherwise.
    pub fn of(ts: &[i64]) -> Option<Self> {
        let rows = u32::try_from(ts.len()).ok()?;
        let days: Vec<i32> = ts.iter().map(|micros| day_of_micros(*micros)).collect();
        let (Some(min), Some(max)) = (days.iter().min(), days.iter().max()) else {
            return Some(DayGroups::default());
        };
        let span = usize::try_from(i64::from(*max) - i64::from(*min)).ok()? + 1;
        let order: Vec<u32> = if span <= 4 * days.len() + 1024 {
            let mut starts = vec![0usize; span + 1];
            for day in &days {
                starts[(day - min) as usize + 1] += 1;
            }
            for i in 1..starts.len() {
                starts[i] += starts[i - 1];
            }
            let mut order = vec![0u32; days.len()];
            for (row, day) in (0..rows).zip(&days) {
                let slot = &mut starts[(day - min) as usize];
                order[*slot] = row;
                *slot += 1;
            }
            order
        } else {
            let mut order: Vec<u32> = (0..rows).collect();
            order.sort_by_key(|row| days[*row as usize]);
            order
        };
        let mut groups = Vec::new();
        let mut start = 0;
        for i in 1..=order.len() {
            let day = days[order[start] as usize];
            if i == order.len() || days[order[i] as usize] != day {
                groups.push((day, start..i));
                start = i;
            }
        }
        Some(DayGroups {
            order,
            days: groups,
        })
    }
}

#[derive(Debug, Default)]
struct DaySet {
    ids: IdSet,
    last_used: u64,
}

/// Per-day sets of stored event-id hashes, bounded by an LRU on total ids.
#[derive(Debug)]
pub struct EventIdIndex {
    days: HashMap<i32, DaySet>,
    /// Days that must not be evicted (see [`EventIdIndex::pin`]), with pin counts.
    pinned: HashMap<i32, usize>,
    entries: usize,
    capacity: usize,
    clock: u64,
}

impl EventIdIndex {
    pub fn new(capacity: usize) -> Self {
        EventIdIndex {
            days: HashMap::new(),
            pinned: HashMap::new(),
            entries: 0,
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    pub fn hash(event_id: &str) -> u128 {
        xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
    }

    pub fn is_loaded(&self, day: i32) -> bool {
        self.days.contains_key(&day)
    }

    /// Cache the stored ids of `day`, evicting other days if over capacity.
    pub fn insert_day(&mut self, day: i32, ids: Vec<u128>) {
        self.clock += 1;
        let set = DaySet {
            ids: ids.into_iter().collect(),
            last_used: self.clock,
        };
        self.entries += set.ids.len();
        if let Some(old) = self.days.insert(day, set) {
            self.entries -= old.ids.len();
        }
        self.evict(day);
    }

    /// Record `hash` as stored on `day` (which must be loaded); false if it already was.
    pub fn insert(&mut self, day: i32, hash: u128) -> bool {
        self.clock += 1;
        let clock = self.clock;
        let set = self.days.entry(day).or_default();
        set.last_used = clock;
        let new = set.ids.insert(hash);
        if new {
            self.entries += 1;
        }
        new
    }

    /// The ids recorded for `day`, if it is loaded.
    pub fn day(&self, day: i32) -> Option<&IdSet> {
        self.days.get(&day).map(|set| &set.ids)
    }

    /// Add committed ids to `day` if it is cached; an uncached day reloads them later.
    pub fn extend_loaded(&mut self, day: i32, ids: impl IntoIterator<Item = u128>) {
        if let Some(set) = self.days.get_mut(&day) {
            let before = set.ids.len();
            set.ids.extend(ids);
            self.entries += set.ids.len() - before;
        }
        self.evict(day);
    }

    /// Drop `day`'s cached ids; they reload from its files when next needed. For days a
    /// bulk write stored without keeping their ids (see `BulkWriter`).
    pub fn unload(&mut self, day: i32) {
        if !self.pinned.contains_key(&day)
            && let Some(set) = self.days.remove(&day)
        {
            self.entries -= set.ids.len();
        }
    }

    /// The most ids the index keeps cached.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Undo [`EventIdIndex::insert`] for writes that did not commit.
    pub fn forget(&mut self, added: &[(i32, u128)]) {
        for (day, hash) in added {
            if let Some(set) = self.days.get_mut(day)
                && set.ids.remove(hash)
            {
                self.entries -= 1;
            }
        }
    }

    /// Keep `day` cached until [`EventIdIndex::unpin`]: it holds ids that are not yet in
    /// any published file, so it could not be reloaded.
    pub fn pin(&mut self, day: i32) {
        *self.pinned.entry(day).or_default() += 1;
    }

    pub fn unpin(&mut self, day: i32) {
        if let Some(count) = self.pinned.get_mut(&day) {
            *count -= 1;
            if *count == 0 {
                self.pinned.remove(&day);
            }
        }
        self.evict(day);
    }

    /// Drop least recently used days (never `keep` or a pinned day) until within capacity.
    fn evict(&mut self, keep: i32) {
        while self.entries > self.capacity && self.days.len() > 1 {
            let victim = self
                .days
                .iter()
                .filter(|(day, _)| **day != keep && !self.pinned.contains_key(day))
                .min_by_key(|(_, set)| set.last_used)
                .map(|(day, _)| *day);
            let Some(victim) = victim else { break };
            if let Some(set) = self.days.remove(&victim) {
                self.entries -= set.ids.len();
            }
        }
    }

    /// Ids currently cached (for tests and metrics).
    pub fn cached_entries(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_and_negative_safe() {
        assert_eq!(day_of_micros(0), 0);
        assert_eq!(day_of_micros(-1), -1);
        assert_eq!(
            day_string(day_of_micros(1_767_225_600_000_000)),
            "2026-01-01"
        );
    }

    #[test]
    fn day_groups_keep_row_order_within_a_day() {
        let day = 86_400_000_000i64;
        let ts = [3 * day, day + 5, 3 * day + 1, -1, day];
        let groups = DayGroups::of(&ts).expect("small batch");
        assert_eq!(groups.order, vec![3, 1, 4, 0, 2]);
        let days: Vec<(i32, Range<usize>)> = groups.days.clone();
        assert_eq!(days, vec![(-1, 0..1), (1, 1..3), (3, 3..5)]);
        // Days far apart take the sorting path and group the same way.
        let wide = [5000 * day * 365, 0, 5000 * day * 365 + 1];
        let groups = DayGroups::of(&wide).expect("small batch");
        assert_eq!(groups.order, vec![1, 0, 2]);
        assert_eq!(groups.days.len(), 2);
        assert!(DayGroups::of(&[]).expect("empty").days.is_empty());
    }

    #[test]
    fn id_sets_dedupe_like_std_sets() {
        let mut set = IdSet::default();
        let hashes: Vec<u128> = (0..1000)
            .map(|i| EventIdIndex::hash(&format!("ev-{}", i % 700)))
            .collect();
        let inserted = hashes.iter().filter(|h| set.insert(**h)).count();
        assert_eq!(inserted, 700);
    }

    #[test]
    fn capacity_bounds_cached_ids() {
        let mut index = EventIdIndex::new(10);
        for day in 0..5 {
            index.insert_day(day, (0..6).map(|i| (day as u128) * 100 + i).collect());
        }
        assert!(index.cached_entries() <= 10 + 6);
        assert!(index.is_loaded(4), "the day just loaded is kept");
        assert!(!index.is_loaded(0), "the oldest day is evicted");
    }

    #[test]
    fn pinned_days_survive_eviction() {
        let mut index = EventIdIndex::new(4);
        index.insert_day(1, vec![]);
        index.pin(1);
        for i in 0..3 {
            index.insert(1, i);
        }
        index.insert_day(2, (10..20).collect());
        assert!(index.is_loaded(1), "a pinned day is never evicted");
        assert!(!index.insert(1, 0), "its ids are still known");
        index.unpin(1);
        index.insert_day(3, (30..40).collect());
        assert!(!index.is_loaded(1), "once unpinned it can go");
    }

    #[test]
    fn forget_undoes_insert() {
        let mut index = EventIdIndex::new(100);
        index.insert_day(1, vec![]);
        assert!(index.insert(1, 7));
        assert!(!index.insert(1, 7));
        index.forget(&[(1, 7)]);
        assert!(index.insert(1, 7));
    }
}
