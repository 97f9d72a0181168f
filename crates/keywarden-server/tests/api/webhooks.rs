//! Webhooks end to end: a local receiver that checks every signature with the endpoint's
//! secret; key changes arrive as subscribed events; failures are retried with backoff (the
//! test clock moves past each delay); deliveries survive a restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use keywarden_core::time::Clock as _;
use keywarden_core::webhook::WebhookSecret;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_in};

/// What the receiver got, and what it answers next.
#[derive(Default)]
pub struct Inbox {
    pub secret: Option<WebhookSecret>,
    /// Statuses to answer, first to last; 200 once used up.
    answers: Vec<u16>,
    pub received: Vec<Value>,
    ids: Vec<String>,
    pub bad_signatures: usize,
}

pub type Shared = Arc<Mutex<Inbox>>;

async fn receive(State(inbox): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut inbox = inbox.lock().unwrap();
    let (id, ts) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = inbox
        .secret
        .as_ref()
        .map(|s| s.sign(&id, ts.parse().unwrap_or(-1), body.as_bytes()));
    if expected.as_deref() != Some(header("webhook-signature").as_str())
        || header("user-agent") != "keywarden-webhooks"
        || header("content-type") != "application/json"
    {
        inbox.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let status = if inbox.answers.is_empty() {
        200
    } else {
        inbox.answers.remove(0)
    };
    if status == 200 {
        inbox.received.push(serde_json::from_str(&body).unwrap());
        inbox.ids.push(id);
    }
    StatusCode::from_u16(status).unwrap()
}

/// Starts a receiver on `addr` (port 0 for any).
pub async fn receiver(addr: SocketAddr) -> (Shared, SocketAddr) {
    let inbox = Shared::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let app = receiver_routes(Arc::clone(&inbox));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (inbox, bound)
}

/// The receiver's routes: `POST /hook` into `inbox`.
pub fn receiver_routes(inbox: Shared) -> axum::Router {
    axum::Router::new()
        .route("/hook", post(receive))
        .with_state(inbox)
}

pub async fn create_endpoint(
    app: &TestApp,
    addr: SocketAddr,
    types: &[&str],
) -> (String, WebhookSecret) {
    create_endpoint_at(app, &format!("http://{addr}/hook"), types).await
}

pub async fn create_endpoint_at(
    app: &TestApp,
    url: &str,
    types: &[&str],
) -> (String, WebhookSecret) {
    let reply = app
        .call(
            "webhooks.createEndpoint",
            json!({ "url": url, "eventTypes": types }),
        )
        .await;
    let data = reply.ok();
    (
        data["endpointId"].as_str().unwrap().to_owned(),
        WebhookSecret::parse(data["secret"].as_str().unwrap()).unwrap(),
    )
}

/// Waits until `done` holds for the inbox.
pub async fn wait_for(inbox: &Shared, done: impl Fn(&Inbox) -> bool) {
    for _ in 0..300 {
        if done(&inbox.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let inbox = {
        let got = inbox.lock().unwrap();
        Inbox {
            received: got.received.clone(),
            ids: got.ids.clone(),
            bad_signatures: got.bad_signatures,
            ..Inbox::default()
        }
    };
    panic!(
        "timed out; received {:?}, bad signatures {}",
        inbox.received, inbox.bad_signatures
    );
}

async fn deliveries(app: &TestApp) -> Vec<Value> {
    app.call("webhooks.listDeliveries", json!({}))
        .await
        .ok()
        .as_array()
        .unwrap()
        .clone()
}

fn types(inbox: &Inbox) -> Vec<String> {
    inbox
        .received
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn key_changes_arrive_signed_and_only_subscribed_types() {
    let app = spawn_app().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) =
        create_endpoint(&app, addr, &["key.created", "key.deleted", "key.rerolled"]).await;
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("hooks").await;
    let (key_id, _) = app.create_key(&api, json!({ "name": "k" })).await;
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "name": "renamed" }),
    )
    .await
    .ok();
    let rerolled = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": key_id, "expiration": 0 }),
        )
        .await;
    let new_id = rerolled.ok()["keyId"].as_str().unwrap().to_owned();
    app.call("keys.deleteKey", json!({ "keyId": new_id }))
        .await
        .ok();
    // A failed admin call enqueues nothing.
    app.call("keys.deleteKey", json!({ "keyId": "key_missing" }))
        .await
        .err(404);
    wait_for(&inbox, |i| i.received.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let inbox = {
        let got = inbox.lock().unwrap();
        Inbox {
            received: got.received.clone(),
            ids: got.ids.clone(),
            bad_signatures: got.bad_signatures,
            ..Inbox::default()
        }
    };
    assert_eq!(
        types(&inbox),
        ["key.created", "key.rerolled", "key.deleted"],
        "key.updated is not subscribed"
    );
    assert_eq!(inbox.bad_signatures, 0);
    let created = &inbox.received[0];
    assert_eq!(created["data"]["keyId"], key_id.as_str());
    assert_eq!(created["data"]["apiId"], api.as_str());
    assert_eq!(created["data"]["changes"]["name"], "k");
    assert!(created["timestamp"].is_i64());
    assert_eq!(inbox.received[1]["data"]["newKeyId"], new_id.as_str());
    assert!(inbox.ids.iter().all(|id| id.starts_with("msg_")));
    let log = deliveries(&app).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 1)
    );
}

#[tokio::test]
async fn key_updates_name_the_keys_api() {
    let app = spawn_app().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) = create_endpoint(&app, addr, &["key.updated"]).await;
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("hooks").await;
    let (key_id, _) = app.create_key(&api, json!({})).await;
    app.call("keys.updateKey", json!({ "keyId": key_id, "name": "n" }))
        .await
        .ok();
    app.call(
        "keys.updateCredits",
        json!({ "keyId": key_id, "operation": "set", "value": 5 }),
    )
    .await
    .ok();
    app.call(
        "keys.addPermissions",
        json!({ "keyId": key_id, "permissions": ["documents.read"] }),
    )
    .await
    .ok();
    wait_for(&inbox, |i| i.received.len() >= 3).await;
    let received = inbox.lock().unwrap().received.clone();
    let mut actions: Vec<_> = received
        .iter()
        .map(|e| e["data"]["action"].as_str().unwrap().to_owned())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        ["key.credits.update", "key.permissions.add", "key.update"]
    );
    for event in &received {
        assert_eq!(event["type"], "key.updated");
        assert_eq!(event["data"]["keyId"], key_id.as_str(), "{event}");
        assert_eq!(event["data"]["apiId"], api.as_str(), "{event}");
    }
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_logged() {
    let app = spawn_app().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) = create_endpoint(&app, addr, &["key.created"]).await;
    {
        let mut inbox = inbox.lock().unwrap();
        inbox.secret = Some(secret);
        inbox.answers = vec![500, 500];
    }
    let api = app.create_api("hooks").await;
    app.create_key(&api, json!({})).await;
    // Each failure schedules the next attempt 5 s, then 30 s (plus jitter) later on the
    // server's clock, which this test moves.
    for (expected, wait) in [(1, 6_000), (2, 40_000)] {
        for _ in 0..300 {
            let log = deliveries(&app).await;
            if log[0]["attempts"] == expected {
                assert_eq!(log[0]["state"], "pending");
                assert_eq!(log[0]["lastStatusCode"], 500);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Not yet due: nothing is sent before the delay.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(deliveries(&app).await[0]["attempts"], expected);
        app.clock.advance(wait);
    }
    wait_for(&inbox, |i| i.received.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = deliveries(&app).await;
    assert_eq!(log[0]["state"], "delivered", "{log:?}");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["lastStatusCode"], 200);
    let workspace = app.workspace.clone();
    let id = keywarden_core::id::DeliveryId::parse(log[0]["deliveryId"].as_str().unwrap()).unwrap();
    let attempts =
        keywarden_core::store::WebhookStore::delivery_attempts(app.store.as_ref(), &workspace, &id)
            .await
            .unwrap();
    let statuses: Vec<_> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(200)]);
}

#[tokio::test]
async fn deliveries_survive_a_restart() {
    let app = spawn_app().await;
    // A port nobody listens on yet: the receiver is down.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, secret) = create_endpoint(&app, addr, &["key.created"]).await;
    let api = app.create_api("hooks").await;
    let (key_id, _) = app.create_key(&api, json!({})).await;
    for _ in 0..300 {
        if deliveries(&app).await[0]["attempts"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(deliveries(&app).await[0]["lastError"], "could not connect");
    let (storage, now) = (app.storage.clone(), app.clock.now().as_millis());
    app.stop().await;
    let (inbox, _) = receiver(addr).await;
    inbox.lock().unwrap().secret = Some(secret);
    let app = spawn_app_in(storage, now + 10_000).await;
    wait_for(&inbox, |i| i.received.len() == 1).await;
    assert_eq!(
        inbox.lock().unwrap().received[0]["data"]["keyId"],
        key_id.as_str()
    );
    // The receiver answers before the worker records the attempt.
    for _ in 0..300 {
        if deliveries(&app).await[0]["state"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(deliveries(&app).await[0]["attempts"], 2);
}

#[tokio::test]
async fn other_workspaces_never_receive_this_workspaces_events() {
    let app = spawn_app().await;
    let (other, other_root) = app.other_workspace().await;
    let _ = other;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let reply = app
        .call_as(
            &other_root,
            "webhooks.createEndpoint",
            json!({ "url": format!("http://{addr}/hook"), "eventTypes": ["key.created"] }),
        )
        .await;
    let secret = WebhookSecret::parse(reply.ok()["secret"].as_str().unwrap()).unwrap();
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("mine").await;
    app.create_key(&api, json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(inbox.lock().unwrap().received.is_empty());
    assert!(deliveries(&app).await.is_empty());
    // This workspace cannot see or touch the other one's endpoint either.
    let listed = app.call("webhooks.listEndpoints", json!({})).await;
    assert!(listed.ok().as_array().unwrap().is_empty());
}

#[tokio::test]
async fn endpoint_input_is_validated_and_secrets_are_not_listed() {
    let app = spawn_app().await;
    let reply = app
        .call(
            "webhooks.createEndpoint",
            json!({ "url": "ftp://x", "eventTypes": ["key.created", "key.exploded"] }),
        )
        .await;
    reply.invalid_at("body.url");
    reply.invalid_at("body.eventTypes");
    assert!(reply.body.to_string().contains("key.exploded"));
    let (id, _) = create_endpoint(&app, "127.0.0.1:9".parse().unwrap(), &["key.created"]).await;
    let listed = app.call("webhooks.listEndpoints", json!({})).await;
    assert!(!listed.body.to_string().contains("whsec_"));
    let reader = app.root_key_with(&["api.*.read_key"]).await;
    app.call_as(&reader, "webhooks.listEndpoints", json!({}))
        .await
        .err(403);
    app.call("webhooks.deleteEndpoint", json!({ "endpointId": id }))
        .await
        .ok();
    app.call("webhooks.deleteEndpoint", json!({ "endpointId": id }))
        .await
        .err(404);
}

#[tokio::test]
async fn expiring_soon_fires_once_per_expiry() {
    let app = spawn_app().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) = create_endpoint(&app, addr, &["key.expiring_soon"]).await;
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("hooks").await;
    let expires = app.clock.now().as_millis() + 3_600_000;
    let (key_id, _) = app.create_key(&api, json!({ "expires": expires })).await;
    app.create_key(&api, json!({ "expires": expires + 48 * 3_600_000 }))
        .await;
    wait_for(&inbox, |i| i.received.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(inbox.lock().unwrap().received.len(), 1);
    assert_eq!(
        inbox.lock().unwrap().received[0]["data"]["keyId"],
        key_id.as_str()
    );
    // A new expiry re-arms it.
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "expires": expires + 60_000 }),
    )
    .await
    .ok();
    wait_for(&inbox, |i| i.received.len() == 2).await;
}

#[tokio::test]
async fn expiring_soon_fires_for_expiries_set_by_an_api_policy() {
    let app = spawn_app().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) = create_endpoint(&app, addr, &["key.expiring_soon"]).await;
    inbox.lock().unwrap().secret = Some(secret);
    let reply = app
        .call(
            "apis.createApi",
            json!({ "name": "short-lived", "defaultKeyLifetimeMs": 3_600_000 }),
        )
        .await;
    let api = reply.ok()["apiId"].as_str().unwrap().to_owned();
    let (key_id, _) = app.create_key(&api, json!({})).await;
    wait_for(&inbox, |i| i.received.len() == 1).await;
    let received = inbox.lock().unwrap().received[0].clone();
    assert_eq!(received["data"]["keyId"], key_id.as_str());
}
