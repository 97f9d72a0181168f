//! `webhooks.*` (a Keywarden extension in the Unkey RPC style): a workspace's webhook
//! endpoints and their delivery log. Secrets appear only in the answers of
//! `createEndpoint` and `rotateSecret`.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::id::WebhookEndpointId;
use keywarden_core::store::PageRequest;
use keywarden_core::webhook::WebhookEventType;
use keywarden_core::webhook_outbox::{
    DeliveryFilter, DeliveryState, EndpointUpdate, WebhookDelivery, WebhookEndpoint, WebhookUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::envelope::{Data, Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::Fields;
use crate::error::ApiError;
use crate::service::{Caller, NewEndpoint};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/webhooks.createEndpoint", post(create_endpoint))
        .route("/v2/webhooks.listEndpoints", post(list_endpoints))
        .route("/v2/webhooks.updateEndpoint", post(update_endpoint))
        .route("/v2/webhooks.rotateSecret", post(rotate_secret))
        .route("/v2/webhooks.deleteEndpoint", post(delete_endpoint))
        .route("/v2/webhooks.listDeliveries", post(list_deliveries))
        .route("/v2/webhooks.sendTest", post(send_test))
}

fn url(f: &mut Fields, location: &str, text: &str) -> Option<WebhookUrl> {
    f.check(location, WebhookUrl::parse(text))
}

fn event_types(f: &mut Fields, location: &str, names: &[String]) -> Option<Vec<WebhookEventType>> {
    if names.is_empty() || names.len() > WebhookEventType::ALL.len() * 2 {
        f.error(location, "must list 1 to 20 event types");
        return None;
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| WebhookEventType::parse(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        f.error(
            location,
            format!("unknown event types: {}", unknown.join(", ")),
        );
        return None;
    }
    Some(
        names
            .iter()
            .filter_map(|n| WebhookEventType::parse(n))
            .collect(),
    )
}

fn endpoint_id(f: &mut Fields, text: Option<String>) -> Option<WebhookEndpointId> {
    let text = f.required("body.endpointId", text)?;
    f.check("body.endpointId", WebhookEndpointId::parse(&text))
}

fn page(f: &mut Fields, cursor: Option<String>, limit: Option<i64>) -> Option<PageRequest> {
    let limit = f.range("body.limit", limit.unwrap_or(100), 1, 100)?;
    if let Some(cursor) = &cursor {
        f.length("body.cursor", cursor, 1, 1024);
    }
    Some(PageRequest {
        from: cursor,
        limit: usize::try_from(limit).unwrap_or(100),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointView<'a> {
    endpoint_id: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    event_types: Vec<&'static str>,
    enabled: bool,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
}

fn endpoint_view(e: &WebhookEndpoint) -> EndpointView<'_> {
    EndpointView {
        endpoint_id: e.id.as_str(),
        url: e.url.as_str(),
        description: e.description.as_deref(),
        event_types: e.event_types.iter().map(|t| t.as_str()).collect(),
        enabled: e.enabled,
        created_at: e.created_at.as_millis(),
        updated_at: e.updated_at.map(|t| t.as_millis()),
    }
}

fn delivery_view(d: &WebhookDelivery) -> Value {
    json!({
        "deliveryId": d.id.as_str(),
        "endpointId": d.endpoint_id.as_str(),
        "eventType": d.event_type.as_str(),
        "createdAt": d.created_at.as_millis(),
        "state": d.state.as_str(),
        "attempts": d.attempts,
        "lastStatusCode": d.last_status,
        "lastError": d.last_error,
        "nextAttemptAt": d.next_attempt_at.map(|t| t.as_millis()),
        "deliveredAt": d.delivered_at.map(|t| t.as_millis()),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateEndpointBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateEndpointBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let u = f
        .required("body.url", body.url)
        .and_then(|u| url(&mut f, "body.url", &u));
    let types = f
        .required("body.eventTypes", body.event_types)
        .and_then(|t| event_types(&mut f, "body.eventTypes", &t));
    if let Some(d) = &body.description {
        f.length("body.description", d, 0, 512);
    }
    let new = f.finish(u.zip(types).map(|(url, event_types)| NewEndpoint {
        url,
        event_types,
        description: body.description,
    }))?;
    let (endpoint, secret) = state.service.create_webhook_endpoint(&caller, new).await?;
    Ok(Data(json!({
        "endpointId": endpoint.id.as_str(),
        "secret": secret.expose(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBody {
    cursor: Option<String>,
    limit: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let page = page(&mut f, body.cursor, body.limit);
    let page = f.finish(page)?;
    let page = state.service.webhook_endpoints(&caller, page).await?;
    let views: Vec<_> = page.items.iter().map(endpoint_view).collect();
    Ok(Paginated(views, Pagination::from_next(page.next)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateEndpointBody {
    endpoint_id: Option<String>,
    url: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
    description: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateEndpointBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = endpoint_id(&mut f, body.endpoint_id);
    let mut update = EndpointUpdate {
        enabled: body.enabled,
        ..EndpointUpdate::default()
    };
    if let Some(u) = &body.url {
        update.url = url(&mut f, "body.url", u);
    }
    if let Some(t) = &body.event_types {
        update.event_types = event_types(&mut f, "body.eventTypes", t);
    }
    if let Some(d) = &body.description {
        f.length("body.description", d, 0, 512);
        update.description = Some(d.clone());
    }
    let id = f.finish(id)?;
    let endpoint = state
        .service
        .update_webhook_endpoint(&caller, &id, update)
        .await?;
    Ok(Data(endpoint_view(&endpoint)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointBody {
    endpoint_id: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = endpoint_id(&mut f, body.endpoint_id);
    let id = f.finish(id)?;
    let secret = state.service.rotate_webhook_secret(&caller, &id).await?;
    Ok(Data(json!({ "secret": secret.expose() })).into_response())
}

#[tracing::instrument(level = "debug", skip_all)]
async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let id = endpoint_id(&mut f, body.endpoint_id);
    let id = f.finish(id)?;
    state.service.delete_webhook_endpoint(&caller, &id).await?;
    Ok(Data(json!({})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListDeliveriesBody {
    endpoint_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListDeliveriesBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let endpoint = body
        .endpoint_id
        .and_then(|e| f.check("body.endpointId", WebhookEndpointId::parse(&e)));
    let status = body.status.and_then(|s| {
        let parsed = DeliveryState::parse(&s);
        if parsed.is_none() {
            f.error("body.status", "must be pending, delivered or failed");
        }
        parsed
    });
    let page = page(&mut f, body.cursor, body.limit);
    let page = f.finish(page)?;
    let filter = DeliveryFilter {
        endpoint,
        state: status,
    };
    let page = state
        .service
        .webhook_deliveries(&caller, &filter, page)
        .await?;
    let views: Vec<_> = page.items.iter().map(delivery_view).collect();
    Ok(Paginated(views, Pagination::from_next(page.next)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendTestBody {
    event_type: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all)]
async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SendTestBody>,
) -> Result<Response, ApiError> {
    let mut f = Fields::new();
    let t = f
        .required("body.eventType", body.event_type)
        .and_then(|t| event_types(&mut f, "body.eventType", &[t]))
        .and_then(|t| t.first().copied());
    let t = f.finish(t)?;
    let deliveries = state.service.send_test_webhook(&caller, t).await?;
    Ok(Data(json!({ "deliveries": deliveries })).into_response())
}
