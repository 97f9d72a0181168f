//! What handlers share.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusRecorder;

use crate::service::Keywarden;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Keywarden>,
    /// This server's metrics, rendered by `/metrics`.
    pub metrics: Arc<PrometheusRecorder>,
}
