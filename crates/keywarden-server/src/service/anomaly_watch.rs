//! Anomaly detection off the hot path.
//!
//! Verification hands every outcome — unknown keys included — to a bounded queue with a
//! non-blocking `try_send` ([`AnomalyFeed::observe`]); a full queue drops the observation
//! and counts it. One background task ([`AnomalyWatcher`]) owns the [`Detector`], feeds it
//! the observations in order, stores what it raises (with its webhook event, in one
//! transaction) and forgets idle keys every minute.
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
use tokio::sync::mpsc;

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
    queue: Option<mpsc::Sender<ObservedVerification>>,
    counters: Arc<AnomalyCounters>,
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
    let (queue, observations) = mpsc::channel(settings.queue_capacity.max(1));
    let watcher = AnomalyWatcher {
        observations,
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
        match queue.try_send(observation) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The watcher has stopped: the server is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
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

/// The background side: owns the detector.
pub struct AnomalyWatcher {
    observations: mpsc::Receiver<ObservedVerification>,
    detector: Detector,
    counters: Arc<AnomalyCounters>,
}

impl AnomalyWatcher {
    /// Observes until the feed closes (the service is dropped) or the task is aborted.
    pub async fn run(mut self, store: Arc<dyn AnomalyStore>, clock: Arc<dyn Clock>) {
        let mut forget = tokio::time::interval(FORGET_EVERY);
        forget.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                observation = self.observations.recv() => {
                    let Some(observation) = observation else { break };
                    self.observe(store.as_ref(), &observation).await;
                }
                _ = forget.tick() => {
                    let forgotten = self.detector.forget_idle(clock.now());
                    if forgotten > 0 {
                        tracing::debug!(forgotten, "idle keys dropped from anomaly baselines");
                    }
                }
            }
        }
    }

    async fn observe(&mut self, store: &dyn AnomalyStore, observation: &ObservedVerification) {
        for anomaly in self.detector.observe(&observation.as_observation()) {
            let kind = anomaly.kind;
            if let Some(i) = AnomalyKind::ALL.iter().position(|k| *k == kind) {
                self.counters.raised[i].fetch_add(1, Ordering::Relaxed);
            }
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

#[cfg(test)]
mod tests {
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
