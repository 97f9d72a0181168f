//! A bounded hand-off from request handlers to one background consumer, for work that must
//! never hold a request up (usage events, anomaly observations).
//!
//! It is a `Vec` behind a lock held only to push one item or to take a batch, not a channel:
//! a channel costs every item a send and a receive of its own (a permit, a slot, blocks of
//! slots allocated and freed) and tends to wake its receiver for nearly every item. Here the
//! consumer takes everything waiting by swapping vectors, so once both sides' vectors have
//! grown neither allocates. When to wake the consumer is the caller's choice: [`HandOff::offer`]
//! says how many items wait.

use parking_lot::Mutex;

pub struct HandOff<T> {
    waiting: Mutex<Waiting<T>>,
    /// Most items that may wait; more are refused.
    capacity: usize,
}

struct Waiting<T> {
    items: Vec<T>,
    /// Cleared when the consumer stops: nothing is queued after that.
    consumer_open: bool,
    /// Cleared when the producing side is gone: the consumer finishes what waits.
    producer_open: bool,
}

/// What became of an offered item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Queued; this many items wait now, it included.
    Queued(usize),
    /// Dropped: the queue is full.
    Full,
    /// Dropped: the consumer has stopped.
    Closed,
}

impl<T> HandOff<T> {
    /// A queue of at most `capacity` items (at least one), with room for `reserve` at first.
    pub fn new(capacity: usize, reserve: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            waiting: Mutex::new(Waiting {
                items: Vec::with_capacity(reserve.min(capacity)),
                consumer_open: true,
                producer_open: true,
            }),
            capacity,
        }
    }

    /// Queues `item` unless the queue is full or the consumer has stopped. Never waits on
    /// anything but the push of another item or the swap of a batch.
    pub fn offer(&self, item: T) -> Offered {
        let mut waiting = self.waiting.lock();
        if !waiting.consumer_open {
            return Offered::Closed;
        }
        if waiting.items.len() >= self.capacity {
            return Offered::Full;
        }
        waiting.items.push(item);
        Offered::Queued(waiting.items.len())
    }

    /// How many items wait.
    pub fn len(&self) -> usize {
        self.waiting.lock().items.len()
    }

    /// Moves waiting items into `batch` until it holds `limit` or nothing waits; says whether
    /// the producing side is still open. When everything waiting fits into an empty batch —
    /// the usual case — the two vectors just change places.
    pub fn take(&self, batch: &mut Vec<T>, limit: usize) -> bool {
        let room = limit.saturating_sub(batch.len());
        let mut waiting = self.waiting.lock();
        if batch.is_empty() && waiting.items.len() <= room {
            std::mem::swap(batch, &mut waiting.items);
        } else {
            let n = room.min(waiting.items.len());
            batch.extend(waiting.items.drain(..n));
        }
        waiting.producer_open
    }

    /// The consumer stops: later offers are refused. With `discard`, what waits is dropped
    /// too; without, it stays to be taken.
    pub fn close_consumer(&self, discard: bool) {
        let mut waiting = self.waiting.lock();
        waiting.consumer_open = false;
        if discard {
            waiting.items = Vec::new();
        }
    }

    /// The producing side is gone.
    pub fn close_producer(&self) {
        self.waiting.lock().producer_open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_beyond_capacity_are_refused_and_taking_makes_room() {
        let queue = HandOff::new(3, 0);
        assert_eq!(queue.offer(1), Offered::Queued(1));
        assert_eq!(queue.offer(2), Offered::Queued(2));
        assert_eq!(queue.offer(3), Offered::Queued(3));
        assert_eq!(queue.offer(4), Offered::Full);
        let mut batch = Vec::new();
        assert!(queue.take(&mut batch, 10));
        assert_eq!(batch, vec![1, 2, 3]);
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.offer(5), Offered::Queued(1));
    }

    #[test]
    fn a_take_stops_at_its_limit_and_keeps_order() {
        let queue = HandOff::new(10, 10);
        for n in 0..5 {
            queue.offer(n);
        }
        let mut batch = vec![100];
        queue.take(&mut batch, 3);
        assert_eq!(batch, vec![100, 0, 1]);
        batch.clear();
        queue.take(&mut batch, 2);
        assert_eq!(batch, vec![2, 3]);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn a_stopped_consumer_refuses_offers_and_keeps_or_drops_what_waits() {
        let queue = HandOff::new(10, 0);
        queue.offer(1);
        queue.close_consumer(false);
        assert_eq!(queue.offer(2), Offered::Closed);
        let mut batch = Vec::new();
        queue.take(&mut batch, 10);
        assert_eq!(batch, vec![1]);

        let queue = HandOff::new(10, 0);
        queue.offer(1);
        queue.close_consumer(true);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn the_consumer_learns_that_the_producer_is_gone() {
        let queue = HandOff::new(10, 0);
        queue.offer(1);
        queue.close_producer();
        let mut batch = Vec::new();
        assert!(!queue.take(&mut batch, 10));
        assert_eq!(batch, vec![1]);
    }
}
