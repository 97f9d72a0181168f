//! What handlers share.

use std::ops::Deref;
use std::sync::Arc;

use keywarden_core::restriction::IpNetwork;
use metrics_exporter_prometheus::PrometheusRecorder;

use crate::http::RequestMetrics;
use crate::service::{Keywarden, WebhookStats};

/// The handlers' shared state: one reference-counted allocation. axum clones the state for
/// every request (the middleware, the route, each `State` extractor), so a clone is one
/// atomic increment rather than one per member.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub service: Arc<Keywarden>,
    /// This server's metrics, rendered by `/metrics`.
    pub metrics: Arc<PrometheusRecorder>,
    /// Per-endpoint handles into `metrics`.
    pub requests: RequestMetrics,
    /// The webhook worker's counters.
    pub webhooks: Arc<WebhookStats>,
    /// Peers whose `X-Forwarded-For` names the client (see `http::context`).
    pub trusted_proxies: Box<[IpNetwork]>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
