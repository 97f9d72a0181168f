//! `GET /v2/health`: which backends this node uses and whether each answers, so operators
//! and load balancers can tell a healthy node from one running on its fallbacks. No
//! authentication, and nothing secret in it. A Keywarden extension; Unkey has only liveness.

use std::time::Duration;

use axum::extract::State;
use keywarden_core::change::FeedState;
use serde::Serialize;

use super::envelope::Data;
use crate::service::Keywarden;
use crate::state::AppState;

/// Longest the store may take to answer the health check's ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when every backend answers, else `degraded`.
    pub status: &'static str,
    pub store: StoreReport,
    pub limiter: LimiterReport,
    pub change_feed: FeedReport,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreReport {
    pub backend: &'static str,
    pub reachable: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LimiterReport {
    pub backend: &'static str,
    pub reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since: Option<i64>,
    pub fallback_calls: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedReport {
    pub backend: &'static str,
    /// `standalone`, `connected` or `disconnected`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_since: Option<i64>,
    /// Whether cached key records answer verifications (false once the feed has been down
    /// longer than the staleness bound).
    pub cache_trusted: bool,
}

pub async fn health(State(state): State<AppState>) -> Data<Health> {
    Data(snapshot(&state.service).await)
}

/// The node's state now; also what `/metrics` reports.
pub async fn snapshot(service: &Keywarden) -> Health {
    let store = service.store();
    let store_reachable = matches!(
        tokio::time::timeout(PING_TIMEOUT, store.ping()).await,
        Ok(Ok(()))
    );
    let limiter = service.limiter_health();
    let feed = service.feed();
    let feed_state = feed.state();
    let feed_ok = !matches!(feed_state, FeedState::Disconnected { .. });
    let ok = store_reachable && limiter.reachable && feed_ok;
    Health {
        status: if ok { "ok" } else { "degraded" },
        store: StoreReport {
            backend: store.kind(),
            reachable: store_reachable,
        },
        limiter: LimiterReport {
            backend: limiter.backend,
            reachable: limiter.reachable,
            fault_mode: limiter.fault_mode,
            down_since: limiter.down_since.map(|t| t.as_millis()),
            fallback_calls: limiter.fallback_calls,
        },
        change_feed: FeedReport {
            backend: feed.kind(),
            state: feed_state.to_string(),
            down_since: match feed_state {
                FeedState::Disconnected { since } => Some(since.as_millis()),
                _ => None,
            },
            cache_trusted: service.cache_trusted(service.now()),
        },
    }
}
