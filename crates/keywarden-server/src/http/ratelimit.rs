//! `ratelimit.*`: the standalone limiter and its overrides.

use std::fmt::Display;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::namespace::{Identifier, RateOverride};
use keywarden_core::store::PageRequest;
use serde::{Deserialize, Serialize};

use super::envelope::{Data, Empty, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::{At, Fields, Item};
use super::wire::parse_duration;
use crate::error::ApiError;
use crate::service::{Caller, LimitRequest, LimitResult};
use crate::state::AppState;

/// The most limits one `multiLimit` call may decide.
const MAX_MULTI_LIMITS: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/ratelimit.limit", post(limit))
        .route("/v2/ratelimit.multiLimit", post(multi_limit))
        .route("/v2/ratelimit.setOverride", post(set_override))
        .route("/v2/ratelimit.getOverride", post(get_override))
        .route("/v2/ratelimit.listOverrides", post(list_overrides))
        .route("/v2/ratelimit.deleteOverride", post(delete_override))
}

fn namespace(f: &mut Fields, at: impl Display + Copy, value: Option<String>) -> Option<String> {
    let location = At(at, "namespace");
    let value = f.required(location, value)?;
    f.length(location, &value, 1, 512).then_some(value)
}

fn identifier(
    f: &mut Fields,
    at: impl Display + Copy,
    value: Option<String>,
) -> Option<Identifier> {
    let location = At(at, "identifier");
    let value = f.required(location, value)?;
    f.check(location, Identifier::from_string(value))
}

#[derive(Debug, Deserialize)]
struct LimitBody {
    namespace: Option<String>,
    identifier: Option<String>,
    limit: Option<i64>,
    duration: Option<i64>,
    cost: Option<i64>,
}

fn limit_request(f: &mut Fields, at: impl Display + Copy, body: LimitBody) -> Option<LimitRequest> {
    let namespace = namespace(f, at, body.namespace);
    let identifier = identifier(f, at, body.identifier);
    let limit = f
        .required(At(at, "limit"), body.limit)
        .and_then(|n| f.range(At(at, "limit"), n, 1, i64::MAX));
    let duration = f
        .required(At(at, "duration"), body.duration)
        .and_then(|ms| parse_duration(f, At(at, "duration"), ms));
    let cost = f.range(At(at, "cost"), body.cost.unwrap_or(1), 0, i64::MAX);
    Some(LimitRequest {
        namespace: namespace?,
        identifier: identifier?,
        limit: limit?.unsigned_abs(),
        duration: duration?,
        cost: cost?.unsigned_abs(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LimitData {
    limit: u64,
    remaining: u64,
    reset: i64,
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    override_id: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn limit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<LimitBody>,
) -> Result<Data<LimitData>, ApiError> {
    let mut f = Fields::new();
    let request = limit_request(&mut f, "body", body);
    let request = f.finish(request)?;
    let result = state.service.limit(&caller, &request).await?;
    Ok(Data(LimitData {
        limit: result.limit,
        remaining: result.remaining,
        reset: result.reset,
        success: result.passed,
        override_id: result.override_id.map(|id| id.to_string()),
    }))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MultiLimitEntry {
    namespace: String,
    identifier: String,
    limit: u64,
    remaining: u64,
    reset: i64,
    passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    override_id: Option<String>,
}

#[derive(Serialize)]
struct MultiLimitData {
    passed: bool,
    limits: Vec<MultiLimitEntry>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn multi_limit(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<Vec<LimitBody>>,
) -> Result<Data<MultiLimitData>, ApiError> {
    let mut f = Fields::new();
    if body.is_empty() || body.len() > MAX_MULTI_LIMITS {
        f.error(
            "body",
            format!("must be an array of 1 to {MAX_MULTI_LIMITS} limit requests"),
        );
    }
    let requests: Vec<Option<LimitRequest>> = body
        .into_iter()
        .enumerate()
        .map(|(i, item)| limit_request(&mut f, Item("body", i), item))
        .collect();
    let requests = f.finish(requests.into_iter().collect::<Option<Vec<_>>>())?;
    let (passed, results) = state.service.multi_limit(&caller, &requests).await?;
    let limits = requests
        .into_iter()
        .zip(results)
        .map(
            |(request, result): (LimitRequest, LimitResult)| MultiLimitEntry {
                namespace: request.namespace,
                identifier: request.identifier.as_str().to_owned(),
                limit: result.limit,
                remaining: result.remaining,
                reset: result.reset,
                passed: result.passed,
                override_id: result.override_id.map(|id| id.to_string()),
            },
        )
        .collect();
    Ok(Data(MultiLimitData { passed, limits }))
}

#[derive(Debug, Deserialize)]
struct SetOverrideBody {
    namespace: Option<String>,
    identifier: Option<String>,
    limit: Option<i64>,
    duration: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OverrideCreated {
    override_id: String,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn set_override(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SetOverrideBody>,
) -> Result<Data<OverrideCreated>, ApiError> {
    let mut f = Fields::new();
    let namespace = namespace(&mut f, "body", body.namespace);
    let identifier = identifier(&mut f, "body", body.identifier);
    // 0 is allowed: it blocks the identifier.
    let limit = f
        .required("body.limit", body.limit)
        .and_then(|n| f.range("body.limit", n, 0, i64::MAX));
    let duration = f
        .required("body.duration", body.duration)
        .and_then(|ms| parse_duration(&mut f, "body.duration", ms));
    let (namespace, identifier, limit, duration) = f.finish(
        namespace
            .zip(identifier)
            .zip(limit.zip(duration))
            .map(|((n, i), (l, d))| (n, i, l, d)),
    )?;
    let id = state
        .service
        .set_override(
            &caller,
            &namespace,
            identifier,
            limit.unsigned_abs(),
            duration,
        )
        .await?;
    Ok(Data(OverrideCreated {
        override_id: id.to_string(),
    }))
}

/// `RatelimitOverride` in responses.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OverrideData<'a> {
    override_id: &'a str,
    duration: u64,
    identifier: &'a str,
    limit: u64,
}

impl<'a> OverrideData<'a> {
    fn of(o: &'a RateOverride) -> Self {
        Self {
            override_id: o.id.as_str(),
            duration: o.duration.as_millis(),
            identifier: o.identifier.as_str(),
            limit: o.limit,
        }
    }
}

#[derive(Debug, Deserialize)]
struct OverrideBody {
    namespace: Option<String>,
    identifier: Option<String>,
}

fn override_reference(body: OverrideBody) -> Result<(String, Identifier), ApiError> {
    let mut f = Fields::new();
    let namespace = namespace(&mut f, "body", body.namespace);
    let identifier = identifier(&mut f, "body", body.identifier);
    f.finish(namespace.zip(identifier))
}

#[tracing::instrument(level = "debug", skip_all)]
async fn get_override(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OverrideBody>,
) -> Result<Response, ApiError> {
    let (namespace, identifier) = override_reference(body)?;
    let found = state
        .service
        .get_override(&caller, &namespace, &identifier)
        .await?;
    Ok(Data(OverrideData::of(&found)).into_response())
}

#[derive(Debug, Deserialize)]
struct ListOverridesBody {
    namespace: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_overrides(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListOverridesBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let namespace = namespace(&mut f, "body", body.namespace);
    let limit = f.range("body.limit", body.limit.unwrap_or(10), 1, 100);
    if let Some(cursor) = &body.cursor {
        f.length("body.cursor", cursor, 1, 1024);
    }
    let (namespace, limit) = f.finish(namespace.zip(limit))?;
    let page = state
        .service
        .list_overrides(
            &caller,
            &namespace,
            PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(10),
            },
        )
        .await?;
    let data: Vec<OverrideData<'_>> = page.items.iter().map(OverrideData::of).collect();
    Ok(Paginated(data, Pagination::from_next(page.next)).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_override(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OverrideBody>,
) -> Result<Data<Empty>, ApiError> {
    let (namespace, identifier) = override_reference(body)?;
    state
        .service
        .delete_override(&caller, &namespace, &identifier)
        .await?;
    Ok(Data(Empty {}))
}
