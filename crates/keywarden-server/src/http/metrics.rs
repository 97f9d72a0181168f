//! `GET /metrics`: the node's state in the Prometheus text format, for alerting on a node
//! that runs on its fallbacks. Each scrape records the current health snapshot into this
//! server's own recorder (never a process-global one, so several servers in one process, as
//! in tests, do not mix their numbers) and renders it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use super::health::snapshot;
use super::request_metrics::{DURATION_BUCKETS, REQUEST_DURATION};
use crate::state::AppState;

/// Where a server's metrics are recorded.
pub fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    // Histograms rather than summaries, so latencies can be aggregated across nodes.
    match builder.set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), DURATION_BUCKETS) {
        Ok(with_buckets) => with_buckets.build_recorder(),
        Err(e) => unreachable!("the bucket list is a non-empty constant: {e}"),
    }
}

/// How often recorded latencies are folded into their histograms between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the latencies recorded since the last pass into their histograms, for as long as the
/// server runs. The recorder keeps every recorded value until something drains it, and
/// rendering a scrape is the only other thing that does: a server nobody scrapes would grow
/// by every request's latency, and each request would write to freshly faulted-in memory.
pub async fn keep_up(recorder: Arc<PrometheusRecorder>) {
    let handle = recorder.handle();
    let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        handle.run_upkeep();
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let health = snapshot(&state.service).await;
    let up = |yes: bool| if yes { 1.0 } else { 0.0 };
    metrics::with_local_recorder(state.metrics.as_ref(), || {
        gauge!("keywarden_store_up", "backend" => health.store.backend)
            .set(up(health.store.reachable));
        gauge!("keywarden_limiter_up", "backend" => health.limiter.backend)
            .set(up(health.limiter.reachable));
        if let Some(mode) = &health.limiter.fault_mode {
            gauge!("keywarden_limiter_fault_mode", "mode" => mode.clone()).set(1.0);
        }
        counter!("keywarden_limiter_fallback_calls_total").absolute(health.limiter.fallback_calls);
        gauge!(
            "keywarden_change_feed_connected",
            "backend" => health.change_feed.backend,
            "state" => health.change_feed.state.clone()
        )
        .set(up(health.change_feed.state != "disconnected"));
        gauge!("keywarden_cached_records_trusted").set(up(health.change_feed.cache_trusted));
        gauge!("keywarden_degraded").set(up(health.status != "ok"));
        let lookups = state.service.key_cache_lookups();
        for (result, count) in [
            ("hit", lookups.hits),
            ("load", lookups.loads),
            ("unknown", lookups.unknown),
        ] {
            counter!("keywarden_key_cache_lookups_total", "result" => result).absolute(count);
        }
        gauge!("keywarden_key_cache_records").set(lookups.cached_records as f64);
        for (code, count) in state.service.verification_counts() {
            counter!("keywarden_verifications_total", "outcome" => code.as_str()).absolute(count);
        }
        let limits = state.service.limit_decisions();
        for (result, count) in [
            ("passed", limits.passed),
            ("denied", limits.denied),
            ("failed", limits.failed),
        ] {
            counter!("keywarden_ratelimit_decisions_total", "result" => result).absolute(count);
        }
        let usage = state.service.usage_stats();
        counter!("keywarden_usage_events_recorded_total").absolute(usage.recorded);
        counter!("keywarden_usage_events_dropped_total", "reason" => "queue_full")
            .absolute(usage.dropped_queue_full);
        counter!("keywarden_usage_events_dropped_total", "reason" => "store_error")
            .absolute(usage.dropped_store_error);
        #[expect(
            clippy::cast_precision_loss,
            reason = "a gauge is a float; depths are small"
        )]
        gauge!("keywarden_usage_queue_depth").set(usage.queue_depth as f64);
        counter!("keywarden_usage_batches_written_total").absolute(usage.batches_written);
        let anomalies = state.service.anomaly_stats();
        counter!("keywarden_anomaly_observations_total").absolute(anomalies.observed);
        counter!("keywarden_anomaly_observations_dropped_total", "reason" => "queue_full")
            .absolute(anomalies.dropped_queue_full);
        counter!("keywarden_anomaly_store_errors_total").absolute(anomalies.store_errors);
        for (kind, n) in anomalies.raised {
            counter!("keywarden_anomalies_raised_total", "kind" => kind.as_str()).absolute(n);
        }
        let webhooks = &state.webhooks;
        for (result, count) in [
            ("delivered", &webhooks.delivered),
            ("retry", &webhooks.retried),
            ("failed", &webhooks.failed),
        ] {
            counter!("keywarden_webhook_attempts_total", "result" => result)
                .absolute(count.load(Ordering::Relaxed));
        }
        gauge!("keywarden_webhook_pending_deliveries")
            .set(webhooks.pending.load(Ordering::Relaxed) as f64);
    });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.handle().render(),
    )
}
