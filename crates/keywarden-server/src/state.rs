//! What handlers share.

use std::sync::Arc;

use keywarden_core::restriction::IpNetwork;
use metrics_exporter_prometheus::PrometheusRecorder;

use crate::http::RequestMetrics;
use crate::service::{Keywarden, WebhookStats};

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Keywarden>,
    /// This server's metrics, rendered by `/metrics`.
    pub metrics: Arc<PrometheusRecorder>,
    /// Per-endpoint handles into `metrics`.
    pub requests: Arc<RequestMetrics>,
    /// The webhook worker's counters.
    pub webhooks: Arc<WebhookStats>,
    /// Peers whose `X-Forwarded-For` names the client (see `http::context`).
    pub trusted_proxies: Arc<[IpNetwork]>,
}
