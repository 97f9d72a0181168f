//! Request counts and latencies per endpoint, for `/metrics`.
//!
//! Handles to the recorder's counters and histogram are looked up once per endpoint and kept,
//! so a request costs two atomic updates, not a registry lookup with label formatting. The
//! endpoint label is the route's pattern (never the raw path, so random URLs cannot grow the
//! label set); requests no route matched share one label.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::{Request, StatusCode};
use metrics::{Counter, Histogram, counter, histogram};
use metrics_exporter_prometheus::PrometheusRecorder;
use parking_lot::RwLock;

use super::error::StoreFailure;

pub const REQUEST_DURATION: &str = "keywarden_http_request_duration_seconds";
pub const REQUESTS: &str = "keywarden_http_requests_total";
pub const STORE_ERRORS: &str = "keywarden_store_errors_total";
/// Latency buckets in seconds: verification answers in well under a millisecond, admin
/// writes in milliseconds, so the buckets are dense at the low end.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];
/// The label of requests that matched no route.
const UNMATCHED: &str = "unmatched";
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One endpoint's handles.
pub struct EndpointMetrics {
    duration: Histogram,
    by_status_class: [Counter; 5],
}

impl EndpointMetrics {
    /// Records one answered request.
    pub fn record(&self, status: StatusCode, took: Duration) {
        self.duration.record(took.as_secs_f64());
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_status_class[class].increment(1);
    }
}

/// The endpoints seen so far, with their handles.
pub struct RequestMetrics {
    recorder: Arc<PrometheusRecorder>,
    /// Requests that failed because the store failed (unreachable or erring).
    store_errors: Counter,
    /// Keyed by route patterns, a fixed set no client chooses: hashed with foldhash rather
    /// than SipHash, as this is looked up on every request.
    endpoints: RwLock<foldhash::HashMap<Box<str>, Arc<EndpointMetrics>>>,
}

impl RequestMetrics {
    pub fn new(recorder: Arc<PrometheusRecorder>) -> Self {
        let store_errors =
            metrics::with_local_recorder(recorder.as_ref(), || counter!(STORE_ERRORS));
        Self {
            recorder,
            store_errors,
            endpoints: RwLock::new(foldhash::HashMap::default()),
        }
    }

    /// Counts the failures a response says it had.
    pub fn record_failure<B>(&self, response: &axum::http::Response<B>) {
        if response.extensions().get::<StoreFailure>().is_some() {
            self.store_errors.increment(1);
        }
    }

    /// The handles for the route `request` matched.
    pub fn endpoint_of<B>(&self, request: &Request<B>) -> Arc<EndpointMetrics> {
        let pattern = request
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str);
        if let Some(found) = self.endpoints.read().get(pattern) {
            return Arc::clone(found);
        }
        let registered = metrics::with_local_recorder(self.recorder.as_ref(), || {
            let endpoint = pattern.to_owned();
            EndpointMetrics {
                duration: histogram!(REQUEST_DURATION, "endpoint" => endpoint.clone()),
                by_status_class: STATUS_CLASSES.map(
                    |class| counter!(REQUESTS, "endpoint" => endpoint.clone(), "status" => class),
                ),
            }
        });
        Arc::clone(
            self.endpoints
                .write()
                .entry(pattern.into())
                .or_insert_with(|| Arc::new(registered)),
        )
    }
}
