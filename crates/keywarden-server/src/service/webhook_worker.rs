//! The webhook delivery worker: claims due deliveries from the outbox in batches, POSTs each
//! signed with its endpoint's secret (Standard Webhooks headers), records every attempt, and
//! schedules retries with the retry policy's backoff. Also runs the expiring-soon pass.
//!
//! Nothing is held only in memory: a stop between claiming and recording leaves the
//! delivery leased, and it is claimed again when the lease runs out.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keywarden_core::time::UnixMillis;
use keywarden_core::webhook::{RetryPolicy, WebhookSecret};
use keywarden_core::webhook_outbox::{
    AttemptNext, ClaimedDelivery, DeliveryAttempt, WebhookDelivery,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Keywarden;

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Whether this node sends deliveries (and announces expiring keys) at all.
    pub enabled: bool,
    /// How often to look for due deliveries.
    pub poll_interval: Duration,
    /// How far ahead `key.expiring_soon` looks.
    pub expiring_horizon: Duration,
    /// How often the expiring-soon pass runs.
    pub expiring_every: Duration,
    pub retry: RetryPolicy,
    /// Certificates (DER) trusted for `https://` endpoints besides the system's roots, for
    /// receivers with a private CA.
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(1),
            expiring_horizon: Duration::from_secs(24 * 60 * 60),
            expiring_every: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            extra_roots: Vec::new(),
        }
    }
}

/// Deliveries claimed per round.
const BATCH: usize = 32;
/// Requests in flight at once.
const IN_FLIGHT: usize = 8;
/// How long a claim keeps other workers away; well above the request timeout.
const LEASE: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub pending: AtomicI64,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs until aborted.
pub async fn run_webhook_worker(
    service: Arc<Keywarden>,
    settings: WebhookSettings,
    stats: Arc<WebhookStats>,
) {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent("keywarden-webhooks")
        .redirect(reqwest::redirect::Policy::none());
    // `https://` endpoints are verified against the system's roots (rustls with the platform
    // verifier), plus any configured ones.
    for der in &settings.extra_roots {
        match reqwest::Certificate::from_der(der) {
            Ok(root) => builder = builder.add_root_certificate(root),
            Err(e) => {
                tracing::error!(error = ?e, "a configured webhook root certificate is unusable")
            }
        }
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = ?e, "could not build the webhook HTTP client; webhooks are not sent");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut last_expiring: Option<Instant> = None;
    let mut interval = tokio::time::interval(settings.poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if last_expiring.is_none_or(|t| t.elapsed() >= settings.expiring_every) {
            last_expiring = Some(Instant::now());
            let now = service.now();
            let end = UnixMillis::from_millis(
                now.as_millis()
                    .saturating_add(millis(settings.expiring_horizon)),
            );
            match service.store().announce_expiring_keys(now, end).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(keys = n, "expiring keys announced"),
                Err(e) => tracing::warn!(error = ?e, "expiring-soon pass failed"),
            }
        }
        loop {
            let now = service.now();
            let lease = UnixMillis::from_millis(now.as_millis().saturating_add(millis(LEASE)));
            let claimed = match service
                .store()
                .claim_webhook_deliveries(now, lease, BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = ?e, "could not claim webhook deliveries");
                    break;
                }
            };
            let full = claimed.len() == BATCH;
            let mut sends = JoinSet::new();
            for delivery in claimed {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let (service, client, stats, retry) = (
                    Arc::clone(&service),
                    client.clone(),
                    Arc::clone(&stats),
                    settings.retry,
                );
                sends.spawn(async move {
                    deliver(&service, &client, &stats, retry, delivery).await;
                    drop(permit);
                });
            }
            while sends.join_next().await.is_some() {}
            if !full {
                break;
            }
        }
        if let Ok(pending) = service.store().pending_webhook_deliveries().await {
            stats.pending.store(pending, Ordering::Relaxed);
        }
    }
}

/// Sends one delivery and records the attempt.
async fn deliver(
    service: &Keywarden,
    client: &reqwest::Client,
    stats: &WebhookStats,
    retry: RetryPolicy,
    claimed: ClaimedDelivery,
) {
    let ClaimedDelivery {
        delivery,
        url,
        secret,
    } = claimed;
    let sent_at = service.now();
    let (status, error, duration_ms) = match service.open_webhook_secret(
        &delivery.workspace_id,
        &delivery.endpoint_id,
        &secret,
    ) {
        Ok(secret) => send(client, &url, &delivery, &secret, sent_at).await,
        Err(e) => {
            // Not sent: a server whose master keys do not open the secret retries later
            // (another node, or this one once configured right, may send it).
            tracing::error!(error = %e, delivery_id = %delivery.id, "cannot sign a webhook delivery");
            (
                None,
                Some("the endpoint's secret does not decrypt on this server".into()),
                0,
            )
        }
    };
    let ok = status.is_some_and(|s| (200..300).contains(&s));
    let now = service.now();
    let next = if ok {
        stats.delivered.fetch_add(1, Ordering::Relaxed);
        AttemptNext::Delivered
    } else {
        match retry.delay_after(delivery.attempts.saturating_add(1)) {
            Some(delay) => {
                stats.retried.fetch_add(1, Ordering::Relaxed);
                let delay = millis(delay);
                AttemptNext::RetryAt(UnixMillis::from_millis(
                    now.as_millis() + delay + jitter(delay / 10),
                ))
            }
            None => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                AttemptNext::GiveUp
            }
        }
    };
    tracing::debug!(delivery_id = %delivery.id, ?status, ok, "webhook attempt");
    let attempt = DeliveryAttempt {
        at: sent_at,
        status,
        error,
        duration_ms,
        next,
    };
    if let Err(e) = service
        .store()
        .record_delivery_attempt(&delivery.id, &attempt)
        .await
    {
        // The lease runs out and the delivery is sent again: at least once, never lost.
        tracing::warn!(error = ?e, delivery_id = %delivery.id, "could not record a webhook attempt");
    }
}

/// POSTs one delivery signed with `secret`; returns the status, the failure and the duration.
async fn send(
    client: &reqwest::Client,
    url: &str,
    delivery: &WebhookDelivery,
    secret: &WebhookSecret,
    sent_at: UnixMillis,
) -> (Option<u16>, Option<String>, i64) {
    let timestamp = sent_at.as_millis() / 1000;
    let signature = secret.sign(delivery.id.as_str(), timestamp, delivery.payload.as_bytes());
    let started = Instant::now();
    let result = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", delivery.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send()
        .await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match result {
        Ok(response) => (Some(response.status().as_u16()), None, duration_ms),
        Err(e) => (None, Some(describe(&e)), duration_ms),
    }
}

/// A failure without an answer, in a few words (no URL: it may carry credentials).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else if e.is_request() {
        "request failed".into()
    } else {
        "no valid response".into()
    }
}

/// A random wait in `0..=max` ms, so retries of many deliveries spread out.
fn jitter(max: i64) -> i64 {
    if max <= 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    keywarden_core::random::fill(&mut bytes);
    let r = u64::from_le_bytes(bytes) % (u64::try_from(max).unwrap_or(0) + 1);
    i64::try_from(r).unwrap_or(0)
}
