//! Leaked keys (Keywarden extensions in the Unkey RPC style):
//!
//! - `leaks.githubSecretScanning`: GitHub's secret scanning partner endpoint. Not root-key
//!   authenticated: the ECDSA signature over the body is the authentication. Answers GitHub's
//!   feedback form, a bare JSON array of `{token_raw, token_type, label}`.
//! - `leaks.reportKey`: a root key reports one of its keys by value.
//! - `leaks.checkKeys`: which of up to 100 keys are live keys of the caller's workspace.
//! - `leaks.getPolicy` / `leaks.setPolicy`: the workspace's policy (revoke, disable, flag).
//! - `leaks.listReports`: the reports handled in the workspace, newest first.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::audit::AuditEntry;
use keywarden_core::leak::{LeakPolicy, MAX_CHECK_KEYS, MAX_TOKEN_LEN};
use keywarden_core::store::PageRequest;
use keywarden_core::time::UnixMillis;
use serde::Deserialize;
use serde_json::{Value, json};

use super::context;
use super::envelope::{Data, Paginated, Pagination};
use super::extract::{ApiJson, MAX_BODY_BYTES};
use super::fields::Fields;
use super::wire::parse_time_window;
use crate::error::ApiError;
use crate::service::{Caller, LeakSighting, PartnerRequest};
use crate::state::AppState;

const KEY_ID_HEADER: &str = "github-public-key-identifier";
const SIGNATURE_HEADER: &str = "github-public-key-signature";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v2/leaks.githubSecretScanning",
            post(github_secret_scanning),
        )
        .route("/v2/leaks.reportKey", post(report_key))
        .route("/v2/leaks.checkKeys", post(check_keys))
        .route("/v2/leaks.getPolicy", post(get_policy))
        .route("/v2/leaks.setPolicy", post(set_policy))
        .route("/v2/leaks.listReports", post(list_reports))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn github_secret_scanning(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Read here rather than with an extractor, so an oversized body gets the Unkey 413.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let context = context::current();
    let answers = state
        .service
        .receive_partner_reports(PartnerRequest {
            key_identifier: header(KEY_ID_HEADER),
            signature: header(SIGNATURE_HEADER),
            body: &body,
            request_id: context.request_id.into(),
            client_ip: context.client_ip,
        })
        .await?;
    let labels: Vec<Value> = answers
        .into_iter()
        .map(|(report, label)| {
            json!({
                "token_raw": report.token,
                "token_type": report.token_type,
                "label": label.as_str(),
            })
        })
        .collect();
    Ok(axum::Json(labels).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportKeyBody {
    key: String,
    url: Option<String>,
    source: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn report_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReportKeyBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    f.length("body.key", &body.key, 1, MAX_TOKEN_LEN);
    if let Some(url) = &body.url {
        f.length("body.url", url, 1, 2048);
    }
    if let Some(source) = &body.source {
        f.length("body.source", source, 1, 256);
    }
    f.finish(Some(()))?;
    let handled = state
        .service
        .report_leaked_key(
            &caller,
            &body.key,
            LeakSighting {
                url: body.url,
                source: body.source,
                token_type: None,
            },
        )
        .await?;
    Ok(Data(json!({
        "keyId": handled.key.id.as_str(),
        "apiId": handled.key.api_id.as_str(),
        "policy": handled.policy.as_str(),
        "action": handled.policy.outcome(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct CheckKeysBody {
    keys: Vec<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn check_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CheckKeysBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    if body.keys.is_empty() || body.keys.len() > MAX_CHECK_KEYS {
        f.error("body.keys", format!("must hold 1 to {MAX_CHECK_KEYS} keys"));
    }
    for (i, key) in body.keys.iter().enumerate() {
        f.length(format!("body.keys[{i}]"), key, 1, MAX_TOKEN_LEN);
    }
    f.finish(Some(()))?;
    let answers = state.service.check_keys(&caller, &body.keys).await?;
    // Answers follow the order of the request and never echo a key.
    let data: Vec<Value> = answers
        .into_iter()
        .map(|found| match found {
            Some(key) => json!({
                "live": true,
                "keyId": key.id.as_str(),
                "apiId": key.api_id.as_str(),
                "enabled": key.enabled,
            }),
            None => json!({"live": false}),
        })
        .collect();
    Ok(Data(data).into_response())
}

#[derive(Debug, Deserialize)]
struct NoFields {}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(_): ApiJson<NoFields>,
) -> Result<Response, ApiError> {
    let policy = state.service.leak_policy(&caller).await?;
    Ok(Data(json!({"policy": policy.as_str()})).into_response())
}

#[derive(Debug, Deserialize)]
struct SetPolicyBody {
    policy: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SetPolicyBody>,
) -> Result<Response, ApiError> {
    let policy = LeakPolicy::parse(&body.policy).ok_or_else(|| {
        ApiError::invalid_field(
            "body.policy",
            format!("'{}' is not one of revoke, disable, flag", body.policy),
        )
    })?;
    state.service.set_leak_policy(&caller, policy).await?;
    Ok(Data(json!({"policy": policy.as_str()})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListReportsBody {
    cursor: Option<String>,
    limit: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
}

struct ListReports {
    since: Option<UnixMillis>,
    until: Option<UnixMillis>,
    page: PageRequest,
}

impl TryFrom<ListReportsBody> for ListReports {
    type Error = ApiError;

    fn try_from(body: ListReportsBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
        if let Some(cursor) = &body.cursor {
            f.length("body.cursor", cursor, 1, 1024);
        }
        let (since, until) = parse_time_window(&mut f, body.since, body.until);
        f.finish(limit.map(|limit| ListReports {
            since,
            until,
            page: PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
        }))
    }
}

/// One report as `leaks.listReports` shows it, from its audit entry.
fn report_json(entry: &AuditEntry) -> Value {
    let target = |kind: &str| {
        entry
            .targets
            .iter()
            .find(|t| t.kind == kind)
            .map(|t| t.id.clone())
    };
    let change = |field: &str| entry.changes.get(field).cloned().unwrap_or(Value::Null);
    json!({
        "id": entry.id.as_str(),
        "time": entry.time.as_millis(),
        "keyId": target("key"),
        "apiId": target("api"),
        "reporter": {"type": entry.actor.kind(), "id": entry.actor.id()},
        "policy": change("policy"),
        "action": change("action"),
        "url": change("url"),
        "source": change("source"),
        "tokenType": change("tokenType"),
        "requestId": entry.request_id,
    })
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_reports(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListReportsBody>,
) -> Result<Response, ApiError> {
    let request = ListReports::try_from(body)?;
    let page = state
        .service
        .leak_reports(&caller, request.since, request.until, request.page)
        .await?;
    let items: Vec<Value> = page.items.iter().map(report_json).collect();
    Ok(Paginated(items, Pagination::from_next(page.next)).into_response())
}
