//! Which streams want polling: each stream slot has a waker of its own that marks the
//! slot ready and wakes the connection's task, so a wake-up polls the streams that were
//! woken rather than every stream in flight (the same idea as `FuturesUnordered`, with
//! the slots' wakers made once per slot and reused by the streams that take it).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;

/// The ready slots of one connection, and its task's waker.
#[derive(Debug, Default)]
pub struct ReadySet {
    marks: Mutex<Marks>,
    conn: AtomicWaker,
}

#[derive(Debug, Default)]
struct Marks {
    ready: Vec<usize>,
    /// `ready` holds the slot already.
    marked: Vec<bool>,
}

impl ReadySet {
    fn lock(&self) -> MutexGuard<'_, Marks> {
        // A panic while holding the lock leaves nothing half-written that matters here.
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection's task, woken when a slot is marked.
    pub fn register(&self, conn: &Waker) {
        self.conn.register(conn);
    }

    /// Marks `slot` ready without waking anyone (the connection itself is running).
    pub fn mark(&self, slot: usize) {
        let mut marks = self.lock();
        if marks.marked.len() <= slot {
            marks.marked.resize(slot + 1, false);
        }
        if !marks.marked[slot] {
            marks.marked[slot] = true;
            marks.ready.push(slot);
        }
    }

    /// The slots marked since the last call, in the order they were marked; `into` is
    /// emptied first (a buffer the caller keeps, so this allocates nothing).
    pub fn take(&self, into: &mut Vec<usize>) {
        into.clear();
        let mut marks = self.lock();
        std::mem::swap(into, &mut marks.ready);
        for &slot in into.iter() {
            marks.marked[slot] = false;
        }
    }
}

/// One slot's waker.
#[derive(Debug)]
struct SlotWaker {
    slot: usize,
    set: Arc<ReadySet>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.set.mark(self.slot);
        self.set.conn.wake();
    }
}

/// The wakers of a connection's slots, made as slots are first used.
#[derive(Debug, Default)]
pub struct SlotWakers {
    set: Arc<ReadySet>,
    wakers: Vec<Waker>,
}

impl SlotWakers {
    pub fn set(&self) -> &ReadySet {
        &self.set
    }

    /// Slot `slot`'s waker.
    pub fn waker(&mut self, slot: usize) -> &Waker {
        while self.wakers.len() <= slot {
            let waker = Waker::from(Arc::new(SlotWaker {
                slot: self.wakers.len(),
                set: self.set.clone(),
            }));
            self.wakers.push(waker);
        }
        &self.wakers[slot]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::test_waker::counting_waker;

    #[test]
    fn a_slot_woken_twice_is_ready_once_and_wakes_the_connection() {
        let mut wakers = SlotWakers::default();
        let (conn, conn_waker) = counting_waker();
        wakers.set().register(&conn_waker);
        let two = wakers.waker(2).clone();
        let zero = wakers.waker(0).clone();
        two.wake_by_ref();
        zero.wake_by_ref();
        two.wake();
        // Once until the connection registers again (it does at each turn).
        assert_eq!(conn.0.load(Ordering::Relaxed), 1);
        let mut ready = Vec::new();
        wakers.set().take(&mut ready);
        assert_eq!(ready, [2, 0]);
        wakers.set().take(&mut ready);
        assert!(ready.is_empty());
        wakers.set().register(&conn_waker);
        zero.wake();
        assert_eq!(conn.0.load(Ordering::Relaxed), 2);
        wakers.set().take(&mut ready);
        assert_eq!(ready, [0]);
    }
}
