//! Recording verification events off the hot path.
//!
//! Verification pushes each event onto a bounded in-memory queue (a locked `Vec`, held for
//! the push only); when the queue is full the event is dropped and counted, so recording can
//! never slow verification down or hold it up. A background task ([`UsageWriter`]) drains
//! the queue in batches — when `batch_size` events wait, else at most every flush interval —
//! into one store transaction each. A batch the store refuses is retried with backoff a few
//! times, then dropped and counted.
//!
//! The store keeps what each batch adds to the rollups pending; the writer folds it into the
//! rollup tables every `rollup_interval` (and before it stops), so a key verified many times
//! in that interval costs one row update per rollup table, not one per batch. Analytics
//! queries on rollup tables fold first, so they see every written event.
//!
//! What a crash loses: the events still in the queue (at most a flush interval's worth, or a
//! queue's). That is the price of keeping the store off the hot path; a graceful stop drains
//! the queue first. Written events are never lost: what was pending is folded after a
//! restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keywarden_core::store::UsageStore;
use keywarden_core::usage::VerificationEvent;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::hand_off::{HandOff, Offered};

/// How usage is recorded.
#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// Whether verifications are recorded at all.
    pub record: bool,
    /// Most events waiting to be written; more are dropped (and counted).
    pub queue_capacity: usize,
    /// Longest an event waits in the queue before its batch is written.
    pub flush_interval: Duration,
    /// A batch is written as soon as this many events wait.
    pub batch_size: usize,
    /// How often what written batches add to the rollups (and to keys' `lastUsedAt`) is
    /// folded in.
    pub rollup_interval: Duration,
    /// How long raw events are kept; rollups are kept for good.
    pub retention: Duration,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            record: true,
            queue_capacity: 100_000,
            flush_interval: Duration::from_secs(1),
            batch_size: 20_000,
            rollup_interval: Duration::from_secs(10),
            retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// How often a batch is tried before it is dropped, and the wait before the first retry
/// (doubling each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// What recording has done so far, for `/metrics`.
#[derive(Debug, Default)]
pub struct UsageCounters {
    recorded: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_store_error: AtomicU64,
    batches_written: AtomicU64,
}

/// A snapshot of [`UsageCounters`] and the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageStats {
    /// Events written to the store.
    pub recorded: u64,
    pub dropped_queue_full: u64,
    /// Events of batches the store refused on every attempt.
    pub dropped_store_error: u64,
    pub batches_written: u64,
    /// Events waiting in the queue now.
    pub queue_depth: u64,
}

/// The events waiting for the writer.
struct Queue {
    events: HandOff<VerificationEvent>,
    batch_size: usize,
    /// Wakes the writer once a full batch waits. The writer does not wait for each event:
    /// that would wake it (a task switch, a timer reset) for nearly every verification.
    batch_ready: Notify,
}

/// The verification side: takes events without ever waiting.
pub struct UsageRecorder {
    /// `None` when recording is off.
    queue: Option<Arc<Queue>>,
    counters: Arc<UsageCounters>,
}

/// Creates the recorder and, when recording is on, the writer that drains it (to be run by
/// the application).
pub fn usage_channel(settings: &UsageSettings) -> (UsageRecorder, Option<UsageWriter>) {
    let counters = Arc::new(UsageCounters::default());
    if !settings.record {
        let recorder = UsageRecorder {
            queue: None,
            counters,
        };
        return (recorder, None);
    }
    let capacity = settings.queue_capacity.max(1);
    // A batch larger than the queue would never fill; it would wait for the timer.
    let batch_size = settings.batch_size.clamp(1, capacity);
    let queue = Arc::new(Queue {
        events: HandOff::new(capacity, batch_size),
        batch_size,
        batch_ready: Notify::new(),
    });
    let recorder = UsageRecorder {
        queue: Some(Arc::clone(&queue)),
        counters: Arc::clone(&counters),
    };
    let writer = UsageWriter {
        queue,
        counters,
        flush_interval: settings.flush_interval,
        rollup_interval: settings.rollup_interval,
    };
    (recorder, Some(writer))
}

impl UsageRecorder {
    /// Whether events are wanted; when not, callers need not build them.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues an event, or drops and counts it when the queue is full. Never waits.
    pub fn record(&self, event: VerificationEvent) {
        let Some(queue) = &self.queue else { return };
        match queue.events.offer(event) {
            Offered::Queued(waiting) => {
                if waiting == queue.batch_size {
                    queue.batch_ready.notify_one();
                }
            }
            Offered::Full => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The writer has stopped: the server is shutting down and no longer records.
            Offered::Closed => {}
        }
    }

    pub fn stats(&self) -> UsageStats {
        let c = &self.counters;
        let depth = self.queue.as_ref().map_or(0, |queue| queue.events.len());
        UsageStats {
            recorded: c.recorded.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            dropped_store_error: c.dropped_store_error.load(Ordering::Relaxed),
            batches_written: c.batches_written.load(Ordering::Relaxed),
            queue_depth: u64::try_from(depth).unwrap_or(u64::MAX),
        }
    }
}

impl Drop for UsageRecorder {
    fn drop(&mut self) {
        if let Some(queue) = &self.queue {
            queue.events.close_producer();
            // The writer writes what waits and returns without waiting for its timer.
            queue.batch_ready.notify_one();
        }
    }
}

/// The background side: drains the queue into the store in batches.
pub struct UsageWriter {
    queue: Arc<Queue>,
    counters: Arc<UsageCounters>,
    flush_interval: Duration,
    rollup_interval: Duration,
}

impl UsageWriter {
    /// Writes batches until `stop` turns true, then closes the queue, writes what it still
    /// holds and returns.
    pub async fn run(self, store: Arc<dyn UsageStore>, mut stop: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(self.queue.batch_size);
        let mut deadline = Instant::now() + self.flush_interval;
        // What an earlier run left pending (a crash) is folded first.
        fold(store.as_ref()).await;
        let mut next_fold = Instant::now() + self.rollup_interval;
        loop {
            let (due, stopping) = tokio::select! {
                () = tokio::time::sleep_until(deadline) => (true, false),
                () = self.queue.batch_ready.notified() => (false, false),
                _ = stop.wait_for(|stop| *stop) => (true, true),
            };
            // Full batches go at once; a partial one waits for the interval.
            let closed = loop {
                let closed = self.take(&mut batch);
                if batch.len() < self.queue.batch_size {
                    break closed;
                }
                self.write(store.as_ref(), &mut batch).await;
            };
            if due || closed {
                if !batch.is_empty() {
                    self.write(store.as_ref(), &mut batch).await;
                }
                deadline = Instant::now() + self.flush_interval;
            }
            if Instant::now() >= next_fold {
                fold(store.as_ref()).await;
                next_fold = Instant::now() + self.rollup_interval;
            }
            if stopping || closed {
                break;
            }
        }
        // Verification no longer reaches the queue (requests have finished); what is in it
        // is written before the store's final flush.
        self.queue.events.close_consumer(false);
        loop {
            self.take(&mut batch);
            if batch.is_empty() {
                break;
            }
            self.write(store.as_ref(), &mut batch).await;
        }
        fold(store.as_ref()).await;
    }

    /// Moves queued events into `batch` until it is full or the queue empty; says whether
    /// the queue is closed (the recorder is gone).
    fn take(&self, batch: &mut Vec<VerificationEvent>) -> bool {
        !self.queue.events.take(batch, self.queue.batch_size)
    }

    /// Writes one batch, retrying with backoff; empties `batch` either way.
    async fn write(&self, store: &dyn UsageStore, batch: &mut Vec<VerificationEvent>) {
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match store.record_verifications(batch).await {
                Ok(()) => {
                    self.counters.recorded.fetch_add(n, Ordering::Relaxed);
                    self.counters
                        .batches_written
                        .fetch_add(1, Ordering::Relaxed);
                    batch.clear();
                    return;
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = ?e, events = n, attempt, "could not record verifications; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::error!(error = ?e, events = n, "could not record verifications; dropping them");
                }
            }
        }
        self.counters
            .dropped_store_error
            .fetch_add(n, Ordering::Relaxed);
        batch.clear();
    }
}

/// Folds what written batches left pending into the rollups. A failure leaves it pending for
/// the next fold (nothing is lost), so it is only logged.
async fn fold(store: &dyn UsageStore) {
    if let Err(e) = store.fold_verification_rollups().await {
        tracing::warn!(error = ?e, "could not fold verification rollups; will retry");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use keywarden_core::id::{ApiId, KeyId, WorkspaceId};
    use keywarden_core::store::{StoreError, StoreResult};
    use keywarden_core::time::UnixMillis;
    use keywarden_core::usage::{Granularity, VerificationRollup};
    use keywarden_core::verify::VerifyCode;
    use tokio::sync::Semaphore;

    use super::*;

    /// A store whose writes wait for permits (a stalled database) or fail.
    struct FakeStore {
        permits: Semaphore,
        fail: bool,
        written: AtomicUsize,
        calls: AtomicUsize,
        folds: AtomicUsize,
    }

    impl FakeStore {
        fn new(permits: usize, fail: bool) -> Arc<Self> {
            Arc::new(Self {
                permits: Semaphore::new(permits),
                fail,
                written: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
                folds: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait]
    impl UsageStore for FakeStore {
        async fn record_verifications(&self, events: &[VerificationEvent]) -> StoreResult<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let permit = self.permits.acquire().await.expect("open");
            permit.forget();
            if self.fail {
                return Err(StoreError::Backend("down".into()));
            }
            self.written.fetch_add(events.len(), Ordering::SeqCst);
            Ok(())
        }
        async fn fold_verification_rollups(&self) -> StoreResult<u64> {
            self.folds.fetch_add(1, Ordering::SeqCst);
            Ok(0)
        }
        async fn prune_verifications(&self, _: UnixMillis) -> StoreResult<u64> {
            Ok(0)
        }
        async fn verification_rollups(
            &self,
            _: &WorkspaceId,
            _: Granularity,
        ) -> StoreResult<Vec<VerificationRollup>> {
            Ok(Vec::new())
        }
        async fn count_verification_events(&self, _: &WorkspaceId) -> StoreResult<u64> {
            Ok(0)
        }
    }

    fn event(n: i64) -> VerificationEvent {
        VerificationEvent {
            request_id: format!("req_{n}").into(),
            time: UnixMillis::from_millis(n),
            workspace_id: WorkspaceId::parse("ws_test1").expect("id"),
            api_id: ApiId::parse("api_test1").expect("id"),
            key_id: KeyId::parse("key_test1").expect("id"),
            identity_id: None,
            external_id: None,
            outcome: VerifyCode::Valid,
            spent_credits: 0,
            tags: Vec::new(),
            client_ip: None,
        }
    }

    /// A recorder whose writer runs on `store`.
    struct Running {
        recorder: UsageRecorder,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(settings: &UsageSettings, store: &Arc<FakeStore>) -> Running {
        let (recorder, writer) = usage_channel(settings);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(writer.expect("on").run(store.clone(), stopped));
        Running {
            recorder,
            stop,
            task,
        }
    }

    impl Running {
        /// Stops the writer and waits until it has finished; the recorder stays readable.
        async fn stop(self) -> UsageRecorder {
            self.stop.send(true).expect("writer listens");
            self.task.await.expect("writer ends");
            self.recorder
        }
    }

    fn settings(capacity: usize, batch_size: usize) -> UsageSettings {
        UsageSettings {
            queue_capacity: capacity,
            batch_size,
            flush_interval: Duration::from_millis(10),
            ..UsageSettings::default()
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let store = FakeStore::new(0, false);
        let run = start(&settings(1, 1), &store);
        let recorder = &run.recorder;
        // The writer takes the first event and stalls in the store; the next fills the
        // queue; every one after that is dropped at once.
        recorder.record(event(0));
        while store.calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        for n in 1..=1_000 {
            recorder.record(event(n));
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "recording waited"
        );
        let stats = recorder.stats();
        assert_eq!(stats.dropped_queue_full, 999);
        assert_eq!(stats.queue_depth, 1);
        assert_eq!(stats.recorded, 0);

        // Once the store answers, what was queued is written, also on stop.
        store.permits.add_permits(10);
        let recorder = run.stop().await;
        assert_eq!(store.written.load(Ordering::SeqCst), 2);
        let stats = recorder.stats();
        assert_eq!((stats.recorded, stats.batches_written), (2, 2));
        assert_eq!(stats.queue_depth, 0);
    }

    /// Waits (up to 10 s) until `done` holds.
    async fn eventually(done: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(10), "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_failing_store_drops_the_batch_after_retries() {
        let store = FakeStore::new(100, true);
        let run = start(&settings(100, 10), &store);
        let recorder = &run.recorder;
        for n in 0..5 {
            recorder.record(event(n));
        }
        eventually(|| recorder.stats().dropped_store_error > 0).await;
        assert_eq!(store.calls.load(Ordering::SeqCst), ATTEMPTS as usize);
        let stats = recorder.stats();
        assert_eq!((stats.dropped_store_error, stats.recorded), (5, 0));
        run.stop().await;
    }

    #[tokio::test]
    async fn batches_wait_for_the_interval_or_a_full_batch() {
        let store = FakeStore::new(100, false);
        let run = start(
            &UsageSettings {
                flush_interval: Duration::from_millis(400),
                ..settings(100, 10)
            },
            &store,
        );
        for n in 0..25 {
            run.recorder.record(event(n));
        }
        // Two full batches go at once; the remaining five wait for the interval.
        let started = std::time::Instant::now();
        eventually(|| store.written.load(Ordering::SeqCst) >= 20).await;
        assert!(started.elapsed() < Duration::from_millis(300));
        assert_eq!(store.written.load(Ordering::SeqCst), 20);
        eventually(|| store.written.load(Ordering::SeqCst) == 25).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        let recorder = run.stop().await;
        assert_eq!(recorder.stats().batches_written, 3);
    }

    #[tokio::test]
    async fn rollups_are_folded_at_start_on_the_interval_and_before_stopping() {
        let store = FakeStore::new(100, false);
        let run = start(
            &UsageSettings {
                rollup_interval: Duration::from_secs(3_600),
                ..settings(100, 10)
            },
            &store,
        );
        // What a crash may have left pending is folded first.
        eventually(|| store.folds.load(Ordering::SeqCst) == 1).await;
        run.recorder.record(event(1));
        eventually(|| store.written.load(Ordering::SeqCst) == 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            store.folds.load(Ordering::SeqCst),
            1,
            "not before the interval"
        );
        run.stop().await;
        assert_eq!(
            store.folds.load(Ordering::SeqCst),
            2,
            "once more on the way out"
        );

        let store = FakeStore::new(100, false);
        let run = start(
            &UsageSettings {
                rollup_interval: Duration::from_millis(30),
                ..settings(100, 10)
            },
            &store,
        );
        eventually(|| store.folds.load(Ordering::SeqCst) >= 4).await;
        run.stop().await;
    }

    #[tokio::test]
    async fn a_dropped_recorder_has_what_waits_written_at_once() {
        let store = FakeStore::new(100, false);
        let run = start(
            &UsageSettings {
                flush_interval: Duration::from_secs(3_600),
                rollup_interval: Duration::from_secs(3_600),
                ..settings(100, 10)
            },
            &store,
        );
        for n in 0..3 {
            run.recorder.record(event(n));
        }
        // The service (and with it the recorder) goes away without a stop signal: the writer
        // writes the partial batch and returns, without waiting for its hour-long interval.
        drop(run.recorder);
        tokio::time::timeout(Duration::from_secs(10), run.task)
            .await
            .expect("the writer returned before its interval")
            .expect("writer ends");
        assert_eq!(store.written.load(Ordering::SeqCst), 3);
        assert_eq!(
            store.folds.load(Ordering::SeqCst),
            2,
            "at start and on the way out"
        );
        drop(run.stop);
    }

    #[test]
    fn recording_off_takes_nothing() {
        let (recorder, writer) = usage_channel(&UsageSettings {
            record: false,
            ..UsageSettings::default()
        });
        assert!(writer.is_none());
        assert!(!recorder.is_on());
        recorder.record(event(1));
        assert_eq!(recorder.stats().dropped_queue_full, 0);
    }
}
