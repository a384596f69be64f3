//! The memory pool that users' queries, and separately the server's background work, draw
//! from: first come, first served, except that no consumer that can spill may take more
//! than its partition's share.

use std::fmt;
use std::sync::Mutex;

use datafusion::common::{Result, resources_datafusion_err};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, human_readable_size,
};

/// A pool of `size` bytes. Consumers that cannot spill take what is free. A consumer that
/// can spill may hold at most what those leave, divided by the number of spillable
/// consumers registered or by `partitions` (how many a plan runs at once), whichever is
/// smaller.
///
/// DataFusion's own pools each fail a kind of query SpendQL runs:
/// - `GreedyMemoryPool` lets the first of an aggregate's parallel partitions take the whole
///   pool. The other, having spilled all it held, still cannot get one batch of group
///   state, and the query fails with 53200 (`forecast` over 100,000 groups of 180 points
///   in 200 MiB failed every time).
/// - `FairSpillPool` divides by every spillable consumer registered, busy or idle.
///   `maturity`'s plan registers about 800, so its sort was refused 3 MB of a 2 GiB pool
///   that held 25 MB.
#[derive(Debug)]
pub struct PartitionSharePool {
    size: usize,
    partitions: usize,
    state: Mutex<Usage>,
}

#[derive(Debug, Default)]
struct Usage {
    spillable_consumers: usize,
    spillable: usize,
    unspillable: usize,
}

impl PartitionSharePool {
    pub fn new(size: usize, partitions: usize) -> PartitionSharePool {
        PartitionSharePool {
            size,
            partitions: partitions.max(1),
            state: Mutex::new(Usage::default()),
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        // The counters stay consistent even if a holder panicked: each update is one
        // statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most one spillable reservation may hold.
    fn share(&self, usage: &Usage) -> usize {
        let free_of_unspillable = self.size.saturating_sub(usage.unspillable);
        free_of_unspillable / usage.spillable_consumers.clamp(1, self.partitions)
    }
}

impl MemoryPool for PartitionSharePool {
    fn name(&self) -> &str {
        "partition_share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.usage().spillable_consumers += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut usage = self.usage();
            usage.spillable_consumers = usage.spillable_consumers.saturating_sub(1);
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        let mut usage = self.usage();
        if reservation.consumer().can_spill() {
            usage.spillable += additional;
        } else {
            usage.unspillable += additional;
        }
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        let mut usage = self.usage();
        if reservation.consumer().can_spill() {
            usage.spillable = usage.spillable.saturating_sub(shrink);
        } else {
            usage.unspillable = usage.unspillable.saturating_sub(shrink);
        }
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let mut usage = self.usage();
        let free = self
            .size
            .saturating_sub(usage.spillable + usage.unspillable);
        let can_spill = reservation.consumer().can_spill();
        let available = if can_spill {
            free.min(self.share(&usage).saturating_sub(reservation.size()))
        } else {
            free
        };
        if additional > available {
            // Display locks the counters again.
            drop(usage);
            return Err(resources_datafusion_err!(
                "Failed to allocate additional {} for {} with {} already allocated for this \
                 reservation - {} remain available for it in the memory pool: {}",
                human_readable_size(additional),
                reservation.consumer().name(),
                human_readable_size(reservation.size()),
                human_readable_size(available),
                self
            ));
        }
        if can_spill {
            usage.spillable += additional;
        } else {
            usage.unspillable += additional;
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        let usage = self.usage();
        usage.spillable + usage.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.size)
    }
}

impl fmt::Display for PartitionSharePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let usage = self.usage();
        write!(
            f,
            "{}(used: {}, pool_size: {}, share of a spilling consumer: {})",
            self.name(),
            human_readable_size(usage.spillable + usage.unspillable),
            human_readable_size(self.size),
            human_readable_size(self.share(&usage)),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn consumer(pool: &Arc<dyn MemoryPool>, name: &str, can_spill: bool) -> MemoryReservation {
        MemoryConsumer::new(name)
            .with_can_spill(can_spill)
            .register(pool)
    }

    #[test]
    fn one_spilling_consumer_may_take_the_whole_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(PartitionSharePool::new(100 * MIB, 2));
        let sort = consumer(&pool, "sort", true);
        sort.try_grow(100 * MIB).expect("all of it");
        assert!(sort.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 100 * MIB);
    }

    #[test]
    fn parallel_partitions_each_keep_room_for_their_share() {
        let pool: Arc<dyn MemoryPool> = Arc::new(PartitionSharePool::new(100 * MIB, 2));
        let first = consumer(&pool, "aggregate[0]", true);
        let second = consumer(&pool, "aggregate[1]", true);
        // The first partition cannot take more than half, so it spills...
        first.try_grow(50 * MIB).expect("its share");
        let refused = first.try_grow(1).expect_err("past its share");
        assert!(refused.to_string().contains("aggregate[0]"), "{refused}");
        // ...and the second still gets a batch's worth.
        second.try_grow(50 * MIB).expect("the other half");
        assert!(second.try_grow(1).is_err());
        // Released memory is available again, to the share.
        first.shrink(50 * MIB);
        first.try_grow(50 * MIB).expect("its share again");
    }

    #[test]
    fn many_spillable_consumers_share_by_partitions_not_by_count() {
        // A plan like `maturity`'s registers hundreds of spillable operators; most are idle.
        let pool: Arc<dyn MemoryPool> = Arc::new(PartitionSharePool::new(2048 * MIB, 2));
        let idle: Vec<MemoryReservation> = (0..800)
            .map(|i| consumer(&pool, &format!("aggregate[{i}]"), true))
            .collect();
        let sort = consumer(&pool, "sort", true);
        sort.try_grow(1024 * MIB)
            .expect("half the pool, however many are registered");
        assert!(sort.try_grow(1).is_err());
        drop(idle);
        // Once the others are gone, it is the only spilling consumer.
        sort.try_grow(1024 * MIB).expect("the whole pool");
    }

    #[test]
    fn unspillable_memory_comes_first_and_the_total_is_bounded() {
        let pool: Arc<dyn MemoryPool> = Arc::new(PartitionSharePool::new(100 * MIB, 4));
        let hash_join = consumer(&pool, "hash join build", false);
        let sort = consumer(&pool, "sort", true);
        hash_join.try_grow(60 * MIB).expect("free memory");
        // The one spilling consumer may have what the join leaves.
        sort.try_grow(40 * MIB).expect("the rest");
        assert!(sort.try_grow(1).is_err());
        assert!(hash_join.try_grow(1).is_err(), "the pool is full");
        sort.free();
        hash_join.try_grow(40 * MIB).expect("freed by the sort");
        assert_eq!(pool.reserved(), 100 * MIB);
        assert!(consumer(&pool, "sort", true).try_grow(1).is_err());
    }
}
