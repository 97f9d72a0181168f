//! `anomalies.list` (a Keywarden extension in the Unkey RPC style): a page of the workspace's
//! anomalies, newest first, with the Unkey pagination envelope.

use crate::http::wire::parse_time_window;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::anomaly::{AnomalyFilter, AnomalyKind, Severity};
use keywarden_core::id::KeyId;
use keywarden_core::store::PageRequest;
use serde::Deserialize;
use serde_json::Value;

use super::envelope::{Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::Fields;
use crate::error::ApiError;
use crate::service::Caller;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/anomalies.list", post(list))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    cursor: Option<String>,
    limit: Option<i64>,
    kind: Option<String>,
    severity: Option<String>,
    key_id: Option<String>,
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Unix milliseconds, inclusive.
    until: Option<i64>,
}

struct List {
    filter: AnomalyFilter,
    page: PageRequest,
}

impl TryFrom<ListBody> for List {
    type Error = ApiError;

    fn try_from(body: ListBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
        if let Some(cursor) = &body.cursor {
            f.length("body.cursor", cursor, 1, 1024);
        }
        let kind = body.kind.and_then(|k| {
            let parsed = AnomalyKind::parse(&k);
            if parsed.is_none() {
                f.error("body.kind", format!("'{k}' is not an anomaly kind"));
            }
            parsed
        });
        let severity = body.severity.and_then(|s| {
            let parsed = Severity::parse(&s);
            if parsed.is_none() {
                f.error(
                    "body.severity",
                    format!("'{s}' is not one of info, warning, critical"),
                );
            }
            parsed
        });
        let key_id = body.key_id.and_then(|k| match KeyId::parse(&k) {
            Ok(id) => Some(id),
            Err(e) => {
                f.error("body.keyId", e.to_string());
                None
            }
        });
        let (since, until) = parse_time_window(&mut f, body.since, body.until);
        f.finish(limit.map(|limit| List {
            filter: AnomalyFilter {
                kind,
                severity,
                key_id,
                since,
                until,
            },
            page: PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
        }))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let request = List::try_from(body)?;
    let page = state
        .service
        .anomalies(&caller, &request.filter, request.page)
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|a| Value::Object(a.to_json()))
        .collect();
    Ok(Paginated(items, Pagination::from_next(page.next)).into_response())
}
