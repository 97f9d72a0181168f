//! `GET /v2/health` and `GET /metrics`: which backends a node runs on, and whether each
//! answers.

use serde_json::Value;

use crate::backend::Backend;
use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_metrics_name_the_backends_and_say_they_answer() {
    let app = spawn_app().await;
    let (store, limiter, feed) = match crate::BACKEND {
        Backend::Sqlite => ("sqlite", "memory", "none"),
        Backend::PostgresRedis => ("postgres", "redis", "postgres"),
    };
    // The change feed connects in the background; a node is healthy once it listens.
    let mut health = Value::Null;
    for _ in 0..100 {
        let response = app
            .client
            .get(format!("{}/v2/health", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        health = response.json::<Value>().await.unwrap()["data"].clone();
        if health["status"] == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["store"]["backend"], store);
    assert_eq!(health["store"]["reachable"], true);
    assert_eq!(health["limiter"]["backend"], limiter);
    assert_eq!(health["limiter"]["reachable"], true);
    assert_eq!(health["changeFeed"]["backend"], feed);
    assert_eq!(health["changeFeed"]["cacheTrusted"], true);
    let expected_state = if feed == "none" {
        "standalone"
    } else {
        "connected"
    };
    assert_eq!(health["changeFeed"]["state"], expected_state);

    let response = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for line in [
        format!("keywarden_store_up{{backend=\"{store}\"}} 1"),
        format!("keywarden_limiter_up{{backend=\"{limiter}\"}} 1"),
        "keywarden_degraded 0".to_owned(),
        "keywarden_cached_records_trusted 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
}

/// The value of the one sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_and_time_requests_per_endpoint() {
    let app = spawn_app().await;
    let api = app.create_api("metered").await;
    let (_, key) = app.create_key(&api, serde_json::json!({})).await;
    for _ in 0..3 {
        assert_eq!(app.verify(&key).await["valid"], true);
    }
    app.call("keys.verifyKey", serde_json::json!({ "key": 5 }))
        .await
        .err(400);
    let limit = serde_json::json!({
        "namespace": "metered", "identifier": "one", "limit": 1, "duration": 60_000
    });
    for passes in [true, false] {
        let reply = app.call("ratelimit.limit", limit.clone()).await;
        assert_eq!(reply.ok()["success"], passes);
    }
    let missing = app
        .client
        .get(format!(
            "{}/v2/no.suchThing/{}",
            app.base_url,
            "x".repeat(40)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let text = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let verify = "endpoint=\"/v2/keys.verifyKey\"";
    let requests = "keywarden_http_requests_total";
    assert_eq!(
        sample(&text, requests, &[verify, "status=\"2xx\""]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, requests, &[verify, "status=\"4xx\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            requests,
            &["endpoint=\"/v2/apis.createApi\"", "status=\"2xx\""]
        ),
        Some(1.0)
    );
    // Unmatched paths share one label: the path itself never becomes one.
    assert_eq!(
        sample(
            &text,
            requests,
            &["endpoint=\"unmatched\"", "status=\"4xx\""]
        ),
        Some(1.0)
    );
    assert!(!text.contains("no.suchThing"), "{text}");
    // One load from the store, then two hits; nothing was unknown.
    let lookups = "keywarden_key_cache_lookups_total";
    assert_eq!(
        sample(&text, lookups, &["result=\"load\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, lookups, &["result=\"hit\""]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, lookups, &["result=\"unknown\""]),
        Some(0.0),
        "{text}"
    );
    let outcomes = "keywarden_verifications_total";
    assert_eq!(
        sample(&text, outcomes, &["outcome=\"VALID\""]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, outcomes, &["outcome=\"NOT_FOUND\""]),
        Some(0.0),
        "{text}"
    );
    let decisions = "keywarden_ratelimit_decisions_total";
    assert_eq!(
        sample(&text, decisions, &["result=\"passed\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, decisions, &["result=\"denied\""]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, decisions, &["result=\"failed\""]),
        Some(0.0),
        "{text}"
    );
    let duration = "keywarden_http_request_duration_seconds";
    assert_eq!(
        sample(&text, &format!("{duration}_count"), &[verify]),
        Some(4.0)
    );
    // A histogram: every request is within the largest finite bucket.
    assert_eq!(
        sample(&text, &format!("{duration}_bucket"), &[verify, "le=\"5\""]),
        Some(4.0),
        "{text}"
    );
}
