//! `GET /v2/health`: which backends this node uses and whether each answers, so operators
//! and load balancers can tell a healthy node from one running on its fallbacks. No
//! authentication, and nothing secret in it. A Keywarden extension; Unkey has only liveness.

use std::time::Duration;

use axum::extract::State;
use keywarden_core::change::FeedState;
use serde::Serialize;

use super::envelope::Data;
use crate::state::AppState;

/// Longest the store may take to answer the health check's ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when every backend answers, else `degraded`.
    status: &'static str,
    store: StoreHealth,
    limiter: LimiterReport,
    change_feed: FeedReport,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreHealth {
    backend: &'static str,
    reachable: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimiterReport {
    backend: &'static str,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fault_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_since: Option<i64>,
    fallback_calls: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeedReport {
    backend: &'static str,
    state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    down_since: Option<i64>,
}

pub async fn health(State(state): State<AppState>) -> Data<Health> {
    let service = &state.service;
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
    Data(Health {
        status: if ok { "ok" } else { "degraded" },
        store: StoreHealth {
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
        },
    })
}
