//! Credit refills at midnight UTC, applied exactly once per boundary and caught up after
//! downtime.

use serde_json::json;

use crate::helpers::{TestClock, spawn_app, spawn_app_in};

const DAY: i64 = 86_400_000;
/// Midnight UTC after `TestClock::START` (2026-11-28T00:00:00Z).
const NEXT_MIDNIGHT: i64 = TestClock::START - TestClock::START % DAY + DAY;

#[tokio::test]
async fn daily_refill_sets_the_balance_at_midnight() {
    let app = spawn_app().await;
    let api_id = app.create_api("daily").await;
    let (key_id, key) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 1, "refill": { "interval": "daily", "amount": 5 } } }),
        )
        .await;
    assert_eq!(app.verify(&key).await["credits"], 0);
    assert_eq!(app.verify(&key).await["code"], "USAGE_EXCEEDED");

    app.clock.set(NEXT_MIDNIGHT - 1);
    assert_eq!(
        app.verify(&key).await["code"],
        "USAGE_EXCEEDED",
        "not before midnight"
    );

    app.clock.set(NEXT_MIDNIGHT);
    let read = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(
        read.ok()["credits"]["remaining"],
        5,
        "readers see the refill at once"
    );
    let data = app.verify(&key).await;
    assert_eq!(
        (data["code"].clone(), data["credits"].clone()),
        (json!("VALID"), json!(4))
    );
    // Once per boundary: later the same day, no second refill.
    app.clock.advance(3_600_000);
    assert_eq!(app.verify(&key).await["credits"], 3);
}

#[tokio::test]
async fn monthly_refill_happens_on_its_day() {
    let app = spawn_app().await;
    let api_id = app.create_api("monthly").await;
    // START is 2026-11-27; refill on the 28th.
    let (_, key) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 0, "refill": { "interval": "monthly", "amount": 10, "refillDay": 28 } } }),
        )
        .await;
    assert_eq!(app.verify(&key).await["code"], "USAGE_EXCEEDED");
    app.clock.set(NEXT_MIDNIGHT + 1);
    assert_eq!(app.verify(&key).await["credits"], 9);
    // The next day is not a refill day.
    app.clock.set(NEXT_MIDNIGHT + DAY + 1);
    assert_eq!(app.verify(&key).await["credits"], 8);
}

#[tokio::test]
async fn refills_missed_during_downtime_are_applied_at_startup() {
    let app = spawn_app().await;
    let storage = app.storage.clone();
    let api_id = app.create_api("downtime").await;
    let (key_id, _) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 2, "refill": { "interval": "daily", "amount": 50 } } }),
        )
        .await;
    let (untouched_id, _) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 80, "refill": { "interval": "daily", "amount": 50 } } }),
        )
        .await;
    app.stop().await;

    // Three days later the server starts again.
    let app = spawn_app_in(storage, NEXT_MIDNIGHT + 2 * DAY + 5_000).await;
    let mut refilled = serde_json::Value::Null;
    for _ in 0..100 {
        // The startup pass runs in the background; read the store directly to see the write.
        let key = keywarden_core::store::KeyStore::key(
            app.store.as_ref(),
            &app.workspace,
            &keywarden_core::id::KeyId::parse(&key_id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        refilled = json!(key.credits.unwrap().remaining());
        if refilled == 50 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(refilled, 50, "one refill, not one per missed day");
    let read = app
        .call("keys.getKey", json!({ "keyId": untouched_id }))
        .await;
    assert_eq!(
        read.ok()["credits"]["remaining"],
        80,
        "larger balances are left alone"
    );
}
