//! Anomaly detection off the hot path.
//!
//! Verification hands every outcome — unknown keys included — to a bounded queue without
//! waiting ([`AnomalyFeed::observe`]); a full queue drops the observation and counts it. One
//! background task ([`AnomalyWatcher`]) owns the [`Detector`], feeds it the observations in
//! order, stores what it raises (with its webhook event, in one transaction) and forgets idle
//! keys every minute.
//!
//! The queue is a locked `Vec` the watcher empties in batches, not a channel: a channel wakes
//! its receiver for nearly every observation, and that wake-up (a task poll, a schedule, a
//! receive) cost verification more than the detector itself. The feed wakes the watcher only
//! when the queue stops being empty or half fills; the watcher then lets observations gather
//! for a moment and takes them all at once. Each observation carries its own time, so the
//! detector decides exactly as it would have one by one; only the storing of what it raises
//! comes up to [`GATHER_FOR`] later.
//!
//! The baselines live only in this task's memory: a restart (or another node) starts them
//! afresh and relearns them over the warm-up. Anomalies already raised are stored.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keywarden_core::anomaly::{
    AnomalyKind, AnomalySettings, CreditsAfter, Detector, Observation, RecordedAnomaly,
};
use keywarden_core::id::{AnomalyId, KeyId, WorkspaceId};
use keywarden_core::store::AnomalyStore;
use keywarden_core::time::{Clock, UnixMillis};
use keywarden_core::verify::VerifyCode;
use tokio::sync::Notify;

use super::hand_off::{HandOff, Offered};

/// How anomaly detection runs.
#[derive(Debug, Clone)]
pub struct AnomalyDetection {
    /// Whether verifications are watched at all.
    pub enabled: bool,
    /// Most observations waiting for the detector; more are dropped (and counted).
    pub queue_capacity: usize,
    /// The rules' thresholds.
    pub thresholds: AnomalySettings,
}

impl Default for AnomalyDetection {
    fn default() -> Self {
        Self {
            enabled: true,
            queue_capacity: 100_000,
            thresholds: AnomalySettings::default(),
        }
    }
}

/// How often idle keys and addresses are forgotten.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// How long the watcher, woken by a first observation, lets more gather before taking them.
const GATHER_FOR: Duration = Duration::from_millis(20);

/// The most observations the watcher lets wait before it is woken at once; a small queue
/// wakes it at half full instead, so that gathering does not make it overflow.
const WAKE_AT_MOST: usize = 1024;

/// One verification outcome, owned, on its way to the detector.
#[derive(Debug, Clone)]
pub struct ObservedVerification {
    pub time: UnixMillis,
    pub workspace_id: WorkspaceId,
    /// `None` for a key that does not exist (or that the caller may not see).
    pub key_id: Option<KeyId>,
    pub outcome: VerifyCode,
    pub client_ip: Option<IpAddr>,
    pub credits: Option<CreditsAfter>,
    /// The key was replaced by a reroll and its grace has ended.
    pub replaced: bool,
}

impl ObservedVerification {
    fn as_observation(&self) -> Observation<'_> {
        Observation {
            time: self.time,
            workspace_id: &self.workspace_id,
            key_id: self.key_id.as_ref(),
            outcome: self.outcome,
            client_ip: self.client_ip,
            credits: self.credits,
            replaced: self.replaced,
        }
    }
}

/// What detection has done so far, for `/metrics`.
#[derive(Debug, Default)]
struct AnomalyCounters {
    observed: AtomicU64,
    dropped_queue_full: AtomicU64,
    store_errors: AtomicU64,
    raised: [AtomicU64; AnomalyKind::ALL.len()],
}

/// A snapshot of the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyStats {
    pub enabled: bool,
    /// Observations the detector has finished with (what they raised is stored).
    pub observed: u64,
    pub dropped_queue_full: u64,
    /// Anomalies raised but not stored (the store refused them).
    pub store_errors: u64,
    /// Anomalies raised, by kind.
    pub raised: Vec<(AnomalyKind, u64)>,
}

/// The verification side: takes observations without ever waiting.
pub struct AnomalyFeed {
    /// `None` when detection is off.
    queue: Option<Arc<Queue>>,
    counters: Arc<AnomalyCounters>,
}

/// The observations waiting for the watcher, shared by the feed and the watcher. The feed
/// closes its side when it is dropped (the service is): the watcher finishes what waits and
/// returns. The watcher closes its side when it stops (the server is shutting down): nothing
/// is queued then.
struct Queue {
    observations: HandOff<ObservedVerification>,
    /// How many waiting observations wake the watcher without gathering longer.
    wake_at: usize,
    /// Wakes the watcher: the queue stopped being empty or reached `wake_at`, or the feed
    /// is gone.
    wake: Notify,
}

/// Creates the feed and, when detection is on, the watcher that drains it.
pub fn anomaly_channel(settings: &AnomalyDetection) -> (AnomalyFeed, Option<AnomalyWatcher>) {
    let counters = Arc::new(AnomalyCounters::default());
    if !settings.enabled {
        return (
            AnomalyFeed {
                queue: None,
                counters,
            },
            None,
        );
    }
    let capacity = settings.queue_capacity.max(1);
    let queue = Arc::new(Queue {
        observations: HandOff::new(capacity, 0),
        wake_at: (capacity / 2).clamp(1, WAKE_AT_MOST),
        wake: Notify::new(),
    });
    let watcher = AnomalyWatcher {
        queue: Arc::clone(&queue),
        taken: Vec::new(),
        detector: Detector::new(settings.thresholds.clone()),
        counters: Arc::clone(&counters),
    };
    (
        AnomalyFeed {
            queue: Some(queue),
            counters,
        },
        Some(watcher),
    )
}

impl AnomalyFeed {
    /// Whether observations are wanted; when not, callers need not build them.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues an observation, or drops and counts it when the queue is full. Never waits.
    pub fn observe(&self, observation: ObservedVerification) {
        let Some(queue) = &self.queue else { return };
        match queue.observations.offer(observation) {
            Offered::Queued(waiting) => {
                if waiting == 1 || waiting == queue.wake_at {
                    queue.wake.notify_one();
                }
            }
            Offered::Full => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            Offered::Closed => {}
        }
    }

    pub fn stats(&self) -> AnomalyStats {
        let c = &self.counters;
        AnomalyStats {
            enabled: self.is_on(),
            observed: c.observed.load(Ordering::Relaxed),
            dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
            store_errors: c.store_errors.load(Ordering::Relaxed),
            raised: AnomalyKind::ALL
                .into_iter()
                .zip(&c.raised)
                .map(|(kind, n)| (kind, n.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl Drop for AnomalyFeed {
    fn drop(&mut self) {
        if let Some(queue) = &self.queue {
            queue.observations.close_producer();
            queue.wake.notify_one();
        }
    }
}

/// The background side: owns the detector.
pub struct AnomalyWatcher {
    queue: Arc<Queue>,
    /// The batch being observed; its allocation is traded with the queue's on each take, so
    /// neither side allocates once both have grown.
    taken: Vec<ObservedVerification>,
    detector: Detector,
    counters: Arc<AnomalyCounters>,
}

impl AnomalyWatcher {
    /// Observes until the feed closes (the service is dropped) or the task is aborted.
    pub async fn run(mut self, store: Arc<dyn AnomalyStore>, clock: Arc<dyn Clock>) {
        let mut forget = tokio::time::interval(FORGET_EVERY);
        forget.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queue = Arc::clone(&self.queue);
        loop {
            tokio::select! {
                () = queue.wake.notified() => {
                    if queue.observations.len() < queue.wake_at {
                        // One wake-up for many observations; a queue that reaches `wake_at`
                        // wakes this early.
                        let _ = tokio::time::timeout(GATHER_FOR, queue.wake.notified()).await;
                    }
                }
                _ = forget.tick() => {
                    // What waits is older than now: observed before forgetting, as it came.
                    self.observe_waiting(store.as_ref()).await;
                    let forgotten = self.detector.forget_idle(clock.now());
                    if forgotten > 0 {
                        tracing::debug!(forgotten, "idle keys dropped from anomaly baselines");
                    }
                }
            }
            if !self.observe_waiting(store.as_ref()).await {
                break;
            }
        }
    }

    /// Takes every waiting observation and observes them in order; says whether the feed is
    /// still open.
    async fn observe_waiting(&mut self, store: &dyn AnomalyStore) -> bool {
        let mut taken = std::mem::take(&mut self.taken);
        let feed_open = self.queue.observations.take(&mut taken, usize::MAX);
        for observation in taken.drain(..) {
            self.observe(store, &observation).await;
        }
        self.taken = taken;
        feed_open
    }

    async fn observe(&mut self, store: &dyn AnomalyStore, observation: &ObservedVerification) {
        for anomaly in self.detector.observe(&observation.as_observation()) {
            let kind = anomaly.kind;
            self.counters.raised[kind.index()].fetch_add(1, Ordering::Relaxed);
            let recorded = RecordedAnomaly {
                id: AnomalyId::generate(anomaly.time),
                anomaly,
            };
            match store.insert_anomaly(&recorded).await {
                Ok(()) => tracing::info!(
                    anomaly_id = %recorded.id,
                    kind = kind.as_str(),
                    workspace_id = %recorded.anomaly.workspace_id,
                    key_id = ?recorded.anomaly.key_id.as_ref().map(KeyId::as_str),
                    "anomaly raised"
                ),
                Err(e) => {
                    self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = ?e, kind = kind.as_str(), "could not store an anomaly");
                }
            }
        }
        // Counted once what it raised is stored, so a reader of the count sees those too.
        self.counters.observed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for AnomalyWatcher {
    fn drop(&mut self) {
        // Stopped (aborted at shutdown, or never run): later observations are not kept.
        self.queue.observations.close_consumer(true);
    }
}

#[cfg(test)]
mod tests {
    use keywarden_core::anomaly::AnomalyFilter;
    use keywarden_core::store::{Page, PageRequest, StoreResult};
    use keywarden_core::time::SystemClock;

    use super::*;

    fn observation(n: i64) -> ObservedVerification {
        ObservedVerification {
            time: UnixMillis::from_millis(1_800_000_000_000 + n),
            workspace_id: WorkspaceId::parse("ws_anomalywatch").unwrap(),
            key_id: None,
            outcome: VerifyCode::NotFound,
            client_ip: Some(IpAddr::from([10, 0, 0, 1])),
            credits: None,
            replaced: false,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let settings = AnomalyDetection {
            queue_capacity: 2,
            ..AnomalyDetection::default()
        };
        // The watcher is not running: nothing drains the queue.
        let (feed, watcher) = anomaly_channel(&settings);
        assert!(watcher.is_some());
        for n in 0..5 {
            feed.observe(observation(n));
        }
        let stats = feed.stats();
        assert_eq!(stats.dropped_queue_full, 3);
        assert_eq!(stats.observed, 0);
    }

    /// Keeps what it is given.
    #[derive(Default)]
    struct KeptAnomalies(parking_lot::Mutex<Vec<RecordedAnomaly>>);

    #[async_trait::async_trait]
    impl AnomalyStore for KeptAnomalies {
        async fn insert_anomaly(&self, anomaly: &RecordedAnomaly) -> StoreResult<()> {
            self.0.lock().push(anomaly.clone());
            Ok(())
        }

        async fn anomalies(
            &self,
            _workspace: &WorkspaceId,
            _filter: &AnomalyFilter,
            _page: PageRequest,
        ) -> StoreResult<Page<RecordedAnomaly>> {
            unreachable!("the watcher only stores")
        }
    }

    #[tokio::test]
    async fn gathered_observations_all_reach_the_detector_and_a_closed_feed_ends_the_watcher() {
        let settings = AnomalyDetection {
            // Small, so the half-full wake-up is exercised too.
            queue_capacity: 64,
            ..AnomalyDetection::default()
        };
        let probes = u64::from(settings.thresholds.probe_threshold);
        let (feed, watcher) = anomaly_channel(&settings);
        let store = Arc::new(KeptAnomalies::default());
        let watching = tokio::spawn(watcher.unwrap().run(
            Arc::clone(&store) as Arc<dyn AnomalyStore>,
            Arc::new(SystemClock),
        ));
        for n in 0..probes {
            feed.observe(observation(i64::try_from(n).unwrap()));
            if n % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        for _ in 0..500 {
            if feed.stats().observed == probes {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = feed.stats();
        assert_eq!((stats.observed, stats.dropped_queue_full), (probes, 0));
        let kinds: Vec<_> = store.0.lock().iter().map(|a| a.anomaly.kind).collect();
        assert_eq!(kinds, [AnomalyKind::UnknownKeyProbing]);

        drop(feed);
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("the watcher returns once the feed is gone")
            .unwrap();
    }

    #[test]
    fn off_means_no_queue_and_no_watcher() {
        let settings = AnomalyDetection {
            enabled: false,
            ..AnomalyDetection::default()
        };
        let (feed, watcher) = anomaly_channel(&settings);
        assert!(watcher.is_none());
        assert!(!feed.is_on());
        feed.observe(observation(0));
        assert_eq!(feed.stats().dropped_queue_full, 0);
    }
}
