//! Anomaly detection end to end: scripted traffic over HTTP raises each rule's anomaly exactly
//! once, listed by `anomalies.list` with its evidence and delivered to a subscribed webhook;
//! steady traffic raises nothing; other workspaces see none.
//!
//! Client addresses: every address in 127.0.0.0/8 is loopback on Linux, so the test binds
//! each client's socket to the address it plays (127.0.0.2, 127.0.0.3, …) and the server
//! sees real, distinct peers at its HTTP edge — no hook in the service. Minutes pass on the
//! test clock, which is what verification stamps observations with; thresholds are small
//! through the test app's settings.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use keywarden_core::anomaly::AnomalySettings;
use keywarden_server::service::AnomalyDetection;
use serde_json::{Value, json};

use crate::backend::TestStorage;
use crate::helpers::{ROOT_KEY, TestApp, TestClock, spawn_app_with};
use crate::webhooks::{create_endpoint, receiver, wait_for};

const MINUTE: i64 = 60_000;

fn thresholds() -> AnomalySettings {
    AnomalySettings {
        warmup_minutes: 2,
        rate_factor: 3.0,
        rate_min_calls: 10,
        new_ip_threshold: 3,
        new_ip_window_ms: MINUTE,
        probe_threshold: 5,
        probe_window_ms: MINUTE,
        credits_low_fraction: 0.1,
        credits_low_absolute: 3,
        ..AnomalySettings::default()
    }
}

async fn spawn() -> TestApp {
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    spawn_app_with(storage, TestClock::START, |settings| {
        settings.service.anomalies = AnomalyDetection {
            thresholds: thresholds(),
            ..AnomalyDetection::default()
        };
    })
    .await
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// Verifies `key` from a client whose socket is bound to `from`; returns the outcome code.
async fn verify_from(app: &TestApp, from: IpAddr, key: &str) -> String {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v2/keys.verifyKey", app.base_url))
        .bearer_auth(ROOT_KEY)
        .json(&json!({ "key": key }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"]["code"].as_str().unwrap().to_owned()
}

async fn list(app: &TestApp, root_key: &str, body: Value) -> Vec<Value> {
    app.call_as(root_key, "anomalies.list", body)
        .await
        .ok()
        .as_array()
        .unwrap()
        .clone()
}

/// A metric's value from `/metrics` (0 when absent).
async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the detector has taken in `n` observations.
async fn wait_for_observations(app: &TestApp, n: f64) {
    for _ in 0..300 {
        if metric(app, "keywarden_anomaly_observations_total ").await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the detector never saw {n} observations");
}

fn of_kind<'a>(anomalies: &'a [Value], kind: &str) -> Vec<&'a Value> {
    anomalies.iter().filter(|a| a["kind"] == kind).collect()
}

#[tokio::test]
async fn each_rule_fires_once_on_its_pattern_listed_and_delivered() {
    let app = spawn().await;
    let (inbox, addr) = receiver("127.0.0.1:0".parse().unwrap()).await;
    let (_, secret) = create_endpoint(
        &app,
        addr,
        &[
            "anomaly.rate_spike",
            "anomaly.new_client_ips",
            "anomaly.used_after_rotation",
            "anomaly.unknown_key_probing",
            "key.credits_low",
        ],
    )
    .await;
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("watched").await;
    let (spiky_id, spiky) = app.create_key(&api, json!({})).await;
    let (roaming_id, roaming) = app.create_key(&api, json!({})).await;
    let (spender_id, spender) = app
        .create_key(&api, json!({ "credits": { "remaining": 5 } }))
        .await;
    let (old_id, old) = app.create_key(&api, json!({})).await;
    let home = loopback(1);
    let mut calls = 0.0;

    // Three minutes of warm-up: 3 calls a minute, all from the usual address.
    for _ in 0..3 {
        for _ in 0..3 {
            assert_eq!(verify_from(&app, home, &spiky).await, "VALID");
        }
        assert_eq!(verify_from(&app, home, &roaming).await, "VALID");
        calls += 4.0;
        app.clock.advance(MINUTE);
    }
    // Rate spike: 12 calls in one minute against a baseline of about 3 (threshold 10).
    for _ in 0..12 {
        verify_from(&app, home, &spiky).await;
    }
    // New client addresses: three never seen before within the window.
    for n in 2..=4 {
        assert_eq!(verify_from(&app, loopback(n), &roaming).await, "VALID");
    }
    // Probing: five unknown keys from one address.
    for n in 0..5 {
        let code = verify_from(&app, loopback(9), &format!("kw_unknown_{n:020}")).await;
        assert_eq!(code, "NOT_FOUND");
    }
    // Credits low: 5 → 4 → 3 crosses the low mark of 3 once; 2 stays below it.
    for _ in 0..3 {
        assert_eq!(verify_from(&app, home, &spender).await, "VALID");
    }
    // Used after rotation: the old key of a reroll without grace, presented afterwards.
    app.call(
        "keys.rerollKey",
        json!({ "keyId": old_id, "expiration": 0 }),
    )
    .await
    .ok();
    app.clock.advance(1_000);
    assert_eq!(verify_from(&app, loopback(7), &old).await, "EXPIRED");
    calls += 12.0 + 3.0 + 5.0 + 3.0 + 1.0;
    wait_for_observations(&app, calls).await;

    let anomalies = list(&app, ROOT_KEY, json!({})).await;
    assert_eq!(anomalies.len(), 5, "{anomalies:#?}");
    let times: Vec<i64> = anomalies
        .iter()
        .map(|a| a["time"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(
        anomalies
            .iter()
            .all(|a| a["anomalyId"].as_str().unwrap().starts_with("anm_"))
    );

    let spike = of_kind(&anomalies, "rate_spike");
    assert_eq!(spike.len(), 1);
    assert_eq!(spike[0]["severity"], "warning");
    assert_eq!(spike[0]["keyId"], spiky_id.as_str());
    assert_eq!(spike[0]["evidence"]["callsThisMinute"], 11);
    assert_eq!(spike[0]["evidence"]["threshold"], 10.0);

    let roamed = of_kind(&anomalies, "new_client_ips");
    assert_eq!(roamed.len(), 1);
    assert_eq!(roamed[0]["severity"], "critical");
    assert_eq!(roamed[0]["keyId"], roaming_id.as_str());
    assert_eq!(roamed[0]["evidence"]["newAddresses"], 3);
    let mut sample: Vec<&str> = roamed[0]["evidence"]["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    sample.sort_unstable();
    assert_eq!(sample, ["127.0.0.2", "127.0.0.3", "127.0.0.4"]);

    let probing = of_kind(&anomalies, "unknown_key_probing");
    assert_eq!(probing.len(), 1);
    assert_eq!(probing[0]["severity"], "warning");
    assert_eq!(probing[0]["clientIp"], "127.0.0.9");
    assert!(probing[0].get("keyId").is_none());
    assert_eq!(probing[0]["evidence"]["unknownKeys"], 5);

    let low = of_kind(&anomalies, "credits_low");
    assert_eq!(low.len(), 1);
    assert_eq!(low[0]["severity"], "info");
    assert_eq!(low[0]["keyId"], spender_id.as_str());
    assert_eq!(low[0]["evidence"]["remaining"], 3);
    assert_eq!(low[0]["evidence"]["lowMark"], 3);

    let rotated = of_kind(&anomalies, "used_after_rotation");
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0]["severity"], "critical");
    assert_eq!(rotated[0]["keyId"], old_id.as_str());
    assert_eq!(rotated[0]["clientIp"], "127.0.0.7");
    assert_eq!(rotated[0]["evidence"]["outcome"], "EXPIRED");

    // Filters narrow the list.
    let critical = list(&app, ROOT_KEY, json!({ "severity": "critical" })).await;
    assert_eq!(critical.len(), 2);
    let of_key = list(&app, ROOT_KEY, json!({ "keyId": spiky_id })).await;
    assert_eq!(of_key.len(), 1);
    let probes = list(&app, ROOT_KEY, json!({ "kind": "unknown_key_probing" })).await;
    assert_eq!(probes.len(), 1);
    let later = list(&app, ROOT_KEY, json!({ "since": times[0] + 1 })).await;
    assert!(later.is_empty());
    let first_page = app.call("anomalies.list", json!({ "limit": 2 })).await;
    assert_eq!(first_page.data().as_array().unwrap().len(), 2);
    let cursor = first_page.body["pagination"]["cursor"].as_str().unwrap();
    let rest = list(&app, ROOT_KEY, json!({ "cursor": cursor })).await;
    assert_eq!(rest.len(), 3);

    // Each anomaly reached the subscriber, signed, once.
    wait_for(&inbox, |i| i.received.len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (received, bad_signatures) = {
        let inbox = inbox.lock().unwrap();
        (inbox.received.clone(), inbox.bad_signatures)
    };
    assert_eq!(bad_signatures, 0);
    let mut types: Vec<&str> = received
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "anomaly.new_client_ips",
            "anomaly.rate_spike",
            "anomaly.unknown_key_probing",
            "anomaly.used_after_rotation",
            "key.credits_low",
        ]
    );
    for event in &received {
        let listed = anomalies
            .iter()
            .find(|a| a["anomalyId"] == event["data"]["anomalyId"])
            .expect("a delivered anomaly is listed");
        assert_eq!(&event["data"], listed);
    }

    assert_eq!(
        metric(
            &app,
            "keywarden_anomalies_raised_total{kind=\"rate_spike\"} "
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "keywarden_anomaly_observations_dropped_total{reason=\"queue_full\"} "
        )
        .await,
        0.0
    );

    // Other workspaces see none of them.
    let (_, other) = app.other_workspace().await;
    assert!(list(&app, &other, json!({})).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn steady_traffic_raises_nothing() {
    let app = spawn().await;
    let api = app.create_api("steady").await;
    let (_, busy) = app.create_key(&api, json!({})).await;
    let (_, refilled) = app
        .create_key(
            &api,
            json!({ "credits": { "remaining": 1000, "refill": { "interval": "daily", "amount": 1000 } } }),
        )
        .await;
    let (graced_id, graced) = app.create_key(&api, json!({})).await;
    let (_, expiring) = app
        .create_key(
            &api,
            json!({ "expires": TestClock::START + 3 * MINUTE + 30_000 }),
        )
        .await;
    app.call(
        "keys.rerollKey",
        json!({ "keyId": graced_id, "expiration": 60 * MINUTE }),
    )
    .await
    .ok();
    let mut calls = 0.0;
    // Ten minutes of the same traffic from the same two addresses: a rate the baseline
    // learns, no new addresses, credits far from low, the old key of a reroll within its
    // grace, an expired key that was never rotated, and a few unknown keys (below the
    // probing threshold) spread over minutes.
    for minute in 0..10 {
        for n in 0..8 {
            verify_from(&app, loopback(1 + n % 2), &busy).await;
        }
        verify_from(&app, loopback(1), &refilled).await;
        assert_eq!(verify_from(&app, loopback(2), &graced).await, "VALID");
        let expected = if minute < 4 { "VALID" } else { "EXPIRED" };
        assert_eq!(verify_from(&app, loopback(1), &expiring).await, expected);
        calls += 11.0;
        if minute % 3 == 0 {
            let code = verify_from(&app, loopback(1), &format!("kw_typo_{minute:020}")).await;
            assert_eq!(code, "NOT_FOUND");
            calls += 1.0;
        }
        app.clock.advance(MINUTE);
    }
    wait_for_observations(&app, calls).await;
    let anomalies = list(&app, ROOT_KEY, json!({})).await;
    assert!(anomalies.is_empty(), "{anomalies:#?}");
    app.stop().await;
}

#[tokio::test]
async fn listing_needs_the_permission_and_refuses_bad_filters() {
    let app = spawn().await;
    let reader = app.root_key_with(&["anomaly.*.read"]).await;
    assert!(list(&app, &reader, json!({})).await.is_empty());
    let other = app.root_key_with(&["api.*.read_key"]).await;
    app.call_as(&other, "anomalies.list", json!({}))
        .await
        .err(403);
    let reply = app
        .call("anomalies.list", json!({ "kind": "meteor" }))
        .await;
    reply.invalid_at("body.kind");
    let reply = app
        .call("anomalies.list", json!({ "severity": "dire" }))
        .await;
    reply.invalid_at("body.severity");
    let reply = app.call("anomalies.list", json!({ "limit": 0 })).await;
    reply.invalid_at("body.limit");
    let reply = app
        .call("anomalies.list", json!({ "since": 10, "until": 5 }))
        .await;
    reply.invalid_at("body.until");
    app.stop().await;
}
