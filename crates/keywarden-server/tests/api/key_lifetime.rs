//! Expiry policies per API: new keys get the default lifetime, explicit expiries beyond the
//! maximum (or no expiry under one) are refused, rerolled keys are clamped, and changing the
//! policy leaves existing keys alone.

use keywarden_core::time::Clock as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

async fn api_with(app: &TestApp, policy: Value) -> String {
    let mut body = json!({ "name": "policy" });
    body.as_object_mut()
        .unwrap()
        .extend(policy.as_object().unwrap().clone());
    let reply = app.call("apis.createApi", body).await;
    reply.ok()["apiId"].as_str().unwrap().to_owned()
}

async fn expires_of(app: &TestApp, key_id: &str) -> Value {
    let reply = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    reply.ok().get("expires").cloned().unwrap_or(Value::Null)
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().as_millis()
}

#[tokio::test]
async fn new_keys_get_the_default_lifetime_or_else_the_maximum() {
    let app = spawn_app().await;
    let both = api_with(
        &app,
        json!({ "defaultKeyLifetimeMs": HOUR, "maxKeyLifetimeMs": DAY }),
    )
    .await;
    let shown = app.call("apis.getApi", json!({ "apiId": both })).await;
    assert_eq!(shown.ok()["defaultKeyLifetimeMs"], HOUR);
    assert_eq!(shown.ok()["maxKeyLifetimeMs"], DAY);
    let (key_id, _) = app.create_key(&both, json!({})).await;
    assert_eq!(expires_of(&app, &key_id).await, now(&app) + HOUR);

    let max_only = api_with(&app, json!({ "maxKeyLifetimeMs": DAY })).await;
    let (key_id, _) = app.create_key(&max_only, json!({})).await;
    assert_eq!(expires_of(&app, &key_id).await, now(&app) + DAY);

    let none = app.create_api("no-policy").await;
    let (key_id, _) = app.create_key(&none, json!({})).await;
    assert_eq!(expires_of(&app, &key_id).await, Value::Null);
}

#[tokio::test]
async fn explicit_expiries_beyond_the_maximum_are_refused() {
    let app = spawn_app().await;
    let api = api_with(&app, json!({ "maxKeyLifetimeMs": DAY })).await;
    let at_limit = now(&app) + DAY;
    let (key_id, _) = app.create_key(&api, json!({ "expires": at_limit })).await;
    assert_eq!(expires_of(&app, &key_id).await, at_limit);

    let refused = app
        .call(
            "keys.createKey",
            json!({ "apiId": api, "expires": at_limit + 1 }),
        )
        .await;
    refused.invalid_at("body.expires");
    assert!(
        refused.body.to_string().contains("86400000"),
        "the message names the limit: {}",
        refused.body
    );

    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "expires": at_limit + 1 }),
    )
    .await
    .invalid_at("body.expires");
    let cleared = app
        .call(
            "keys.updateKey",
            json!({ "keyId": key_id, "expires": null }),
        )
        .await;
    cleared.invalid_at("body.expires");
    assert!(
        cleared.body.to_string().contains("must expire"),
        "{}",
        cleared.body
    );
    assert_eq!(expires_of(&app, &key_id).await, at_limit, "nothing changed");

    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "expires": at_limit - HOUR }),
    )
    .await
    .ok();
    assert_eq!(expires_of(&app, &key_id).await, at_limit - HOUR);
}

#[tokio::test]
async fn rerolled_keys_are_clamped_and_policies_are_not_retroactive() {
    let app = spawn_app().await;
    let api = app.create_api("later-policy").await;
    let (forever_id, _) = app.create_key(&api, json!({})).await;
    let far = now(&app) + 30 * DAY;
    let (far_id, _) = app.create_key(&api, json!({ "expires": far })).await;

    let updated = app
        .call(
            "apis.updateApi",
            json!({ "apiId": api, "maxKeyLifetimeMs": DAY }),
        )
        .await;
    assert_eq!(updated.ok()["maxKeyLifetimeMs"], DAY);
    // Existing keys keep what they had.
    assert_eq!(expires_of(&app, &forever_id).await, Value::Null);
    assert_eq!(expires_of(&app, &far_id).await, far);

    for old in [&forever_id, &far_id] {
        let reply = app
            .call("keys.rerollKey", json!({ "keyId": old, "expiration": 0 }))
            .await;
        let new_id = reply.ok()["keyId"].as_str().unwrap().to_owned();
        assert_eq!(expires_of(&app, &new_id).await, now(&app) + DAY);
    }

    // A shorter inherited expiry stays as it was.
    let soon = now(&app) + HOUR;
    let (soon_id, _) = app.create_key(&api, json!({ "expires": soon })).await;
    let reply = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": soon_id, "expiration": 0 }),
        )
        .await;
    let new_id = reply.ok()["keyId"].as_str().unwrap().to_owned();
    assert_eq!(expires_of(&app, &new_id).await, soon);
}

#[tokio::test]
async fn policies_are_validated_and_can_be_cleared() {
    let app = spawn_app().await;
    app.call(
        "apis.createApi",
        json!({ "name": "bad", "defaultKeyLifetimeMs": DAY, "maxKeyLifetimeMs": HOUR }),
    )
    .await
    .invalid_at("body.defaultKeyLifetimeMs");
    app.call(
        "apis.createApi",
        json!({ "name": "bad", "maxKeyLifetimeMs": 1_000 }),
    )
    .await
    .invalid_at("body.maxKeyLifetimeMs");

    let api = api_with(
        &app,
        json!({ "defaultKeyLifetimeMs": HOUR, "maxKeyLifetimeMs": DAY }),
    )
    .await;
    // A new maximum below the current default is refused as a whole.
    app.call(
        "apis.updateApi",
        json!({ "apiId": api, "maxKeyLifetimeMs": HOUR / 2 }),
    )
    .await
    .invalid_at("body.defaultKeyLifetimeMs");
    let cleared = app
        .call(
            "apis.updateApi",
            json!({ "apiId": api, "defaultKeyLifetimeMs": null, "maxKeyLifetimeMs": null }),
        )
        .await;
    assert!(cleared.ok().get("maxKeyLifetimeMs").is_none());
    let (key_id, _) = app.create_key(&api, json!({})).await;
    assert_eq!(expires_of(&app, &key_id).await, Value::Null);
}
