//! A bounded buffer of encoded records (access log lines, spans) shared between the
//! request tasks that fill it and the one consumer that drains it in batches.
//!
//! A channel per record would cost an allocation, a queue operation and often a thread
//! wake-up per request; here a request appends bytes under a short lock, and the
//! consumer is woken only when a batch starts (so an idle proxy never wakes) or fills
//! up (so a busy one never waits for its timer). Everything beyond the bounds is
//! dropped and counted by the caller: observability never slows requests down.

use std::sync::Mutex;

/// How full the buffer may get.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Records beyond this many are dropped.
    pub max_records: usize,
    /// Records that would take the buffer past this many bytes are dropped.
    pub max_bytes: usize,
    /// The consumer is woken early when this many records are waiting…
    pub batch_records: usize,
    /// …or this many bytes.
    pub batch_bytes: usize,
}

/// What became of an appended record, and whether the consumer should be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The buffer is full: the record was not kept.
    Dropped,
    /// The first record of a new batch: start the consumer's batching timer.
    Started,
    /// The batch is now big enough to be taken right away.
    Full,
    /// Kept; nothing to do.
    Queued,
}

impl Pushed {
    pub fn wakes_consumer(self) -> bool {
        matches!(self, Self::Started | Self::Full)
    }
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    records: usize,
}

#[derive(Debug)]
pub struct Batcher {
    bounds: Bounds,
    pending: Mutex<Pending>,
}

impl Batcher {
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Appends one record. `prefix` is written before it (a field header carrying the
    /// record's length, for protobuf); both are copied in one go under the lock.
    pub fn push(&self, prefix: &[u8], record: &[u8]) -> Pushed {
        let mut pending = self.lock();
        let len = prefix.len() + record.len();
        if pending.records >= self.bounds.max_records
            || pending.bytes.len() + len > self.bounds.max_bytes
        {
            return Pushed::Dropped;
        }
        pending.bytes.reserve(len);
        pending.bytes.extend_from_slice(prefix);
        pending.bytes.extend_from_slice(record);
        pending.records += 1;
        if pending.records == 1 {
            Pushed::Started
        } else if self.is_full(&pending) {
            // Only the record that crosses the line wakes the consumer, not every later one.
            let before = pending.bytes.len() - len;
            let was_full =
                pending.records > self.bounds.batch_records || before >= self.bounds.batch_bytes;
            if was_full {
                Pushed::Queued
            } else {
                Pushed::Full
            }
        } else {
            Pushed::Queued
        }
    }

    /// Whether a batch is waiting that the consumer should take without waiting longer.
    pub fn batch_is_full(&self) -> bool {
        self.is_full(&self.lock())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Takes everything waiting: swapped with `spare` (cleared), so the buffers' capacity
    /// is reused from batch to batch. Returns the number of records taken.
    pub fn take(&self, spare: &mut Vec<u8>) -> usize {
        spare.clear();
        let mut pending = self.lock();
        std::mem::swap(&mut pending.bytes, spare);
        std::mem::take(&mut pending.records)
    }

    fn is_full(&self, pending: &Pending) -> bool {
        pending.records >= self.bounds.batch_records
            || pending.bytes.len() >= self.bounds.batch_bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batcher() -> Batcher {
        Batcher::new(Bounds {
            max_records: 5,
            max_bytes: 40,
            batch_records: 3,
            batch_bytes: 20,
        })
    }

    #[test]
    fn the_consumer_is_woken_when_a_batch_starts_and_once_when_it_fills() {
        let b = batcher();
        assert_eq!(b.push(b"", b"a"), Pushed::Started);
        assert_eq!(b.push(b"", b"b"), Pushed::Queued);
        assert!(!b.batch_is_full());
        assert_eq!(b.push(b"", b"c"), Pushed::Full);
        assert!(b.batch_is_full());
        assert_eq!(b.push(b"", b"d"), Pushed::Queued);
        let mut spare = Vec::new();
        assert_eq!(b.take(&mut spare), 4);
        assert_eq!(spare, b"abcd");
        assert!(b.is_empty());
        assert_eq!(b.push(b"", b"e"), Pushed::Started);
    }

    #[test]
    fn bytes_fill_a_batch_too() {
        let b = batcher();
        assert_eq!(b.push(b"12", b"345678"), Pushed::Started);
        assert_eq!(b.push(b"", b"9012345678901"), Pushed::Full);
        let mut spare = Vec::new();
        b.take(&mut spare);
        assert_eq!(spare, b"123456789012345678901");
    }

    #[test]
    fn records_beyond_the_bounds_are_dropped_and_the_rest_kept() {
        let b = batcher();
        for _ in 0..5 {
            assert_ne!(b.push(b"", b"x"), Pushed::Dropped);
        }
        assert_eq!(b.push(b"", b"x"), Pushed::Dropped, "record count bound");
        let mut spare = Vec::new();
        assert_eq!(b.take(&mut spare), 5);
        assert_eq!(b.push(b"", &[b'y'; 41]), Pushed::Dropped, "byte bound");
        assert_eq!(b.push(b"", &[b'y'; 40]), Pushed::Started);
        assert_eq!(b.take(&mut spare), 1);
        assert_eq!(spare.len(), 40);
    }
}
