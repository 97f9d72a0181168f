//! `rootKeys.*`: root keys managed over the API, never stronger than their manager.

use serde_json::json;

use crate::helpers::{ROOT_KEY, TestApp, TestClock, spawn_app};

/// Creates a root key through the API as `by`; returns (id, secret).
async fn create(app: &TestApp, by: &str, body: serde_json::Value) -> (String, String) {
    let reply = app.call_as(by, "rootKeys.createKey", body).await;
    let data = reply.ok();
    (
        data["keyId"].as_str().unwrap().to_owned(),
        data["key"].as_str().unwrap().to_owned(),
    )
}

async fn status(app: &TestApp, token: &str) -> u16 {
    app.call_as(token, "apis.createApi", json!({ "name": "probe" }))
        .await
        .status
}

#[tokio::test]
async fn root_keys_are_created_listed_updated_and_deleted() {
    let app = spawn_app().await;
    let (id, secret) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api", "api.*.read_api"], "name": "deployer" }),
    )
    .await;
    assert!(id.starts_with("rootkey_") && secret.starts_with("kw_root_"));
    // Usable at once, with exactly what it was given.
    assert_eq!(status(&app, &secret).await, 200);
    app.call_as(&secret, "keys.verifyKey", json!({ "key": "x" }))
        .await
        .err(403);

    let listed = app.call("rootKeys.listKeys", json!({})).await;
    let entry = listed
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["name"], "deployer");
    assert_eq!(entry["enabled"], true);
    assert_eq!(entry["expires"], json!(null));
    assert_eq!(
        entry["permissions"],
        json!(["api.*.create_api", "api.*.read_api"])
    );
    assert!(secret.starts_with(entry["start"].as_str().unwrap()));
    assert!(secret.ends_with(entry["end"].as_str().unwrap()));
    assert!(
        !listed.body.to_string().contains(&secret),
        "no secrets in listings"
    );

    // Disabling stops it, enabling brings it back, permissions can be changed.
    app.call(
        "rootKeys.updateKey",
        json!({ "keyId": id, "enabled": false }),
    )
    .await
    .ok();
    assert_eq!(status(&app, &secret).await, 401);
    app.call(
        "rootKeys.updateKey",
        json!({ "keyId": id, "enabled": true, "name": null, "permissions": ["api.*.read_api"] }),
    )
    .await
    .ok();
    assert_eq!(status(&app, &secret).await, 403);

    app.call("rootKeys.deleteKey", json!({ "keyId": id }))
        .await
        .ok();
    assert_eq!(status(&app, &secret).await, 401);
    app.call("rootKeys.deleteKey", json!({ "keyId": id }))
        .await
        .err(404);
}

#[tokio::test]
async fn a_root_key_never_creates_or_manages_a_stronger_one() {
    let app = spawn_app().await;
    let weak = app
        .root_key_with(&["api.*.read_api", "api.*.create_api"])
        .await;
    let denied = app
        .call_as(
            &weak,
            "rootKeys.createKey",
            json!({ "permissions": ["api.*.read_api", "api.*.delete_api"] }),
        )
        .await;
    assert!(
        denied.err(403)["detail"]
            .as_str()
            .unwrap()
            .contains("api.*.delete_api"),
        "{}",
        denied.body
    );
    let (child, _) = create(&app, &weak, json!({ "permissions": ["api.*.read_api"] })).await;

    // It sees only keys it could have made, and the others behave as if missing.
    let listed = app.call_as(&weak, "rootKeys.listKeys", json!({})).await;
    let ids: Vec<&str> = listed
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyId"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&child.as_str()), "{ids:?}");
    assert_eq!(
        ids.len(),
        2,
        "itself and its child, not the bootstrap key: {ids:?}"
    );
    let strong = app
        .call("rootKeys.listKeys", json!({}))
        .await
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bootstrap")
        .map(|k| k["keyId"].as_str().unwrap().to_owned())
        .unwrap();
    for (operation, body) in [
        (
            "rootKeys.updateKey",
            json!({ "keyId": strong, "enabled": false }),
        ),
        ("rootKeys.deleteKey", json!({ "keyId": strong })),
        (
            "rootKeys.rerollKey",
            json!({ "keyId": strong, "expiration": 0 }),
        ),
    ] {
        app.call_as(&weak, operation, body).await.err(404);
    }
    // Nor can it raise a child above itself.
    app.call_as(
        &weak,
        "rootKeys.updateKey",
        json!({ "keyId": child, "permissions": ["api.*.delete_api"] }),
    )
    .await
    .err(403);
    // The bootstrap key still works.
    assert_eq!(status(&app, ROOT_KEY).await, 200);
}

#[tokio::test]
async fn rerolling_keeps_the_old_key_for_the_grace_period_only() {
    let app = spawn_app().await;
    let (id, old) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api"] }),
    )
    .await;
    let rerolled = app
        .call(
            "rootKeys.rerollKey",
            json!({ "keyId": id, "expiration": 60_000 }),
        )
        .await;
    let new = rerolled.ok()["key"].as_str().unwrap().to_owned();
    assert_ne!(rerolled.ok()["keyId"], id.as_str());
    assert_eq!(status(&app, &new).await, 200);
    assert_eq!(status(&app, &old).await, 200, "within the grace period");
    app.clock.advance(60_001);
    assert_eq!(status(&app, &old).await, 401, "after it");
    assert_eq!(status(&app, &new).await, 200);

    // 0 ends the old key at once.
    let (id, old) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api"] }),
    )
    .await;
    app.call(
        "rootKeys.rerollKey",
        json!({ "keyId": id, "expiration": 0 }),
    )
    .await
    .ok();
    app.clock.advance(1);
    assert_eq!(status(&app, &old).await, 401);
    // `expiration` is required (null keeps the old key as it is).
    app.call("rootKeys.rerollKey", json!({ "keyId": id }))
        .await
        .invalid_at("body.expiration");
}

#[tokio::test]
async fn expiring_root_keys_stop_and_bound_their_children() {
    let app = spawn_app().await;
    let in_an_hour = TestClock::START + 3_600_000;
    let (_, expiring) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api"], "expires": in_an_hour }),
    )
    .await;
    assert_eq!(status(&app, &expiring).await, 200);
    // Its children must expire, and no later than it does.
    app.call_as(
        &expiring,
        "rootKeys.createKey",
        json!({ "permissions": ["api.*.create_api"] }),
    )
    .await
    .invalid_at("body.expires");
    app.call_as(
        &expiring,
        "rootKeys.createKey",
        json!({ "permissions": ["api.*.create_api"], "expires": in_an_hour + 1 }),
    )
    .await
    .invalid_at("body.expires");
    create(
        &app,
        &expiring,
        json!({ "permissions": ["api.*.create_api"], "expires": in_an_hour }),
    )
    .await;
    app.call(
        "rootKeys.createKey",
        json!({ "permissions": ["api.*.create_api"], "expires": TestClock::START - 1 }),
    )
    .await
    .invalid_at("body.expires");
    // Nor can it manage, and so reroll, a key that outlives it.
    let (forever, _) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api"] }),
    )
    .await;
    for (operation, body) in [
        (
            "rootKeys.updateKey",
            json!({ "keyId": forever, "name": "x" }),
        ),
        (
            "rootKeys.rerollKey",
            json!({ "keyId": forever, "expiration": null }),
        ),
    ] {
        app.call_as(&expiring, operation, body).await.err(404);
    }
    app.clock.advance(3_600_001);
    assert_eq!(status(&app, &expiring).await, 401);
}

#[tokio::test]
async fn a_rerolled_disabled_key_stays_disabled() {
    let app = spawn_app().await;
    let (id, _) = create(
        &app,
        ROOT_KEY,
        json!({ "permissions": ["api.*.create_api"] }),
    )
    .await;
    app.call(
        "rootKeys.updateKey",
        json!({ "keyId": id, "enabled": false }),
    )
    .await
    .ok();
    let rerolled = app
        .call(
            "rootKeys.rerollKey",
            json!({ "keyId": id, "expiration": null }),
        )
        .await;
    let new = rerolled.ok()["key"].as_str().unwrap().to_owned();
    assert_eq!(status(&app, &new).await, 401);
}

#[tokio::test]
async fn root_key_input_is_checked() {
    let app = spawn_app().await;
    for (operation, body, location) in [
        ("rootKeys.createKey", json!({}), "body.permissions"),
        (
            "rootKeys.createKey",
            json!({ "permissions": [] }),
            "body.permissions",
        ),
        (
            "rootKeys.createKey",
            json!({ "permissions": ["api.*.fly"] }),
            "body.permissions",
        ),
        (
            "rootKeys.createKey",
            json!({ "permissions": ["api.*.read_api"], "name": "" }),
            "body.name",
        ),
        (
            "rootKeys.updateKey",
            json!({ "enabled": true }),
            "body.keyId",
        ),
        (
            "rootKeys.rerollKey",
            json!({ "keyId": "rootkey_x", "expiration": -1 }),
            "body.expiration",
        ),
        ("rootKeys.deleteKey", json!({}), "body.keyId"),
        ("rootKeys.listKeys", json!({ "limit": 0 }), "body.limit"),
    ] {
        app.call(operation, body).await.invalid_at(location);
    }
}
