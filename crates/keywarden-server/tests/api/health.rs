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
