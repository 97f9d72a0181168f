//! Verification events through HTTP: every verification of a known key is counted exactly
//! in the rollups once the server has flushed, and `lastUsedAt` follows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keywarden_core::store::UsageStore;
use keywarden_core::usage::Granularity;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClock, spawn_app};

const KEYS: usize = 50;
const VERIFICATIONS: usize = 20_000;
const TASKS: usize = 16;

/// Waits (up to 30 s) until the store holds `n` raw events of the app's workspace.
async fn wait_for_events(app: &TestApp, n: u64) {
    let started = Instant::now();
    loop {
        let stored = app
            .store
            .count_verification_events(&app.workspace)
            .await
            .unwrap();
        if stored == n {
            return;
        }
        assert!(stored < n, "more events than verifications: {stored} > {n}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "only {stored} of {n} events recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_roll_up_exactly() {
    let app = Arc::new(spawn_app().await);
    let api = app.create_api("usage").await;
    // Keys 0..40 are unlimited, 40..45 have 100 credits, 45..50 a limit of 50 a minute.
    let keys = Arc::new(app.create_mixed_keys(&api, KEYS).await);
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (app, keys) = (Arc::clone(&app), Arc::clone(&keys));
            tokio::spawn(async move {
                for n in (task..VERIFICATIONS).step_by(TASKS) {
                    let (_, key) = &keys[n % KEYS];
                    let reply = app
                        .call(
                            "keys.verifyKey",
                            json!({ "key": key, "tags": ["path=/v1/x"] }),
                        )
                        .await;
                    reply.ok();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Unknown keys have no workspace and are not recorded.
    for _ in 0..10 {
        let unknown = app.verify("kw_this_key_does_not_exist_at_all").await;
        assert_eq!(unknown["code"], "NOT_FOUND");
    }
    wait_for_events(&app, VERIFICATIONS as u64).await;
    let text = metrics(&app).await;
    for line in [
        format!("keywarden_usage_events_recorded_total {VERIFICATIONS}"),
        "keywarden_usage_events_dropped_total{reason=\"queue_full\"} 0".to_owned(),
        "keywarden_usage_events_dropped_total{reason=\"store_error\"} 0".to_owned(),
        "keywarden_usage_queue_depth 0".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    let per_key = VERIFICATIONS / KEYS;
    let expected = |i: usize| -> Vec<(&'static str, i64, i64)> {
        let per_key = per_key as i64;
        match i {
            0..40 => vec![("VALID", per_key, 0)],
            40..45 => vec![("USAGE_EXCEEDED", per_key - 100, 0), ("VALID", 100, 100)],
            _ => vec![("RATE_LIMITED", per_key - 50, 0), ("VALID", 50, 0)],
        }
    };
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (id.as_str(), i))
        .collect();
    for granularity in Granularity::ALL {
        let rows = app
            .store
            .verification_rollups(&app.workspace, granularity)
            .await
            .unwrap();
        let bucket = granularity.bucket_start(keywarden_core::time::UnixMillis::from_millis(
            TestClock::START,
        ));
        let mut found: HashMap<usize, Vec<(&'static str, i64, i64)>> = HashMap::new();
        for row in &rows {
            assert_eq!(row.bucket, bucket, "{granularity:?}");
            assert_eq!(row.api_id.as_str(), api);
            assert_eq!(row.tags, ["path=/v1/x"]);
            let i = index[row.key_id.as_str()];
            found
                .entry(i)
                .or_default()
                .push((row.outcome.as_str(), row.count, row.spent_credits));
        }
        assert_eq!(found.len(), KEYS, "{granularity:?}");
        for (i, mut outcomes) in found {
            outcomes.sort_unstable();
            assert_eq!(outcomes, expected(i), "{granularity:?}, key {i}");
        }
    }
}

fn last_used(key: &Value) -> Option<i64> {
    key.get("lastUsedAt")
        .map(|t| t.as_i64().expect("an integer"))
}

#[tokio::test]
async fn last_used_at_shows_once_a_verification_is_flushed() {
    let app = spawn_app().await;
    let api = app.create_api("usage").await;
    let (key_id, key) = app.create_key(&api, json!({})).await;
    let get = || async {
        app.call("keys.getKey", json!({ "keyId": key_id }))
            .await
            .ok()
            .clone()
    };
    assert_eq!(last_used(&get().await), None, "never used");

    assert_eq!(app.verify(&key).await["valid"], true);
    let started = Instant::now();
    while last_used(&get().await).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lastUsedAt never showed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last_used(&get().await), Some(TestClock::START));

    // A later verification moves it on; every rendering of the key shows it.
    app.clock.advance(5_000);
    app.verify(&key).await;
    let later = TestClock::START + 5_000;
    let started = Instant::now();
    while last_used(&get().await) != Some(later) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lastUsedAt stayed behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = app
        .call("apis.listKeys", json!({ "apiId": api }))
        .await
        .ok()
        .clone();
    assert_eq!(last_used(&listed[0]), Some(later));
    let whoami = app
        .call("keys.whoami", json!({ "key": key }))
        .await
        .ok()
        .clone();
    assert_eq!(last_used(&whoami), Some(later));
}

#[tokio::test]
async fn a_graceful_stop_writes_what_is_queued() {
    let app = spawn_app().await;
    let api = app.create_api("usage").await;
    let (_, key) = app.create_key(&api, json!({})).await;
    for _ in 0..25 {
        app.verify(&key).await;
    }
    let store = Arc::clone(&app.store);
    // Keeps the database (a PostgreSQL schema is dropped with its storage) past the stop.
    let _storage = Arc::clone(&app.storage);
    let workspace = app.workspace.clone();
    app.stop().await;
    assert_eq!(
        store.count_verification_events(&workspace).await.unwrap(),
        25
    );
}
