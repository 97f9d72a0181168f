//! `keys.rerollKey`: rotation with a grace period that never lengthens a key's life.

use serde_json::json;

use crate::helpers::{TestClock, spawn_app};

#[tokio::test]
async fn reroll_copies_configuration_and_keeps_the_old_key_for_the_grace_period() {
    let app = spawn_app().await;
    let api_id = app.create_api("reroll").await;
    let (old_id, old_key) = app
        .create_key(
            &api_id,
            json!({
                "prefix": "rot",
                "name": "rotating",
                "meta": { "k": "v" },
                "credits": { "remaining": 9, "refill": { "interval": "daily", "amount": 9 } },
            }),
        )
        .await;
    app.verify(&old_key).await;

    let reply = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": old_id, "expiration": 60_000 }),
        )
        .await;
    let data = reply.ok();
    let new_id = data["keyId"].as_str().unwrap().to_owned();
    let new_key = data["key"].as_str().unwrap().to_owned();
    assert_ne!(new_id, old_id);
    assert!(new_key.starts_with("rot_"), "{new_key}");

    let new = app.call("keys.getKey", json!({ "keyId": new_id })).await;
    let new = new.ok();
    assert_eq!(new["name"], "rotating");
    assert_eq!(new["meta"], json!({ "k": "v" }));
    assert_eq!(
        new["credits"],
        json!({ "remaining": 8, "refill": { "interval": "daily", "amount": 9 } })
    );
    assert!(new.get("expires").is_none());

    let old = app.call("keys.getKey", json!({ "keyId": old_id })).await;
    assert_eq!(old.ok()["expires"], TestClock::START + 60_000);

    assert_eq!(app.verify(&new_key).await["code"], "VALID");
    assert_eq!(
        app.verify(&old_key).await["code"],
        "VALID",
        "within the grace period"
    );
    app.clock.advance(60_001);
    assert_eq!(app.verify(&old_key).await["code"], "EXPIRED");
    assert_eq!(app.verify(&new_key).await["code"], "VALID");
}

#[tokio::test]
async fn rotation_never_extends_a_keys_life() {
    let app = spawn_app().await;
    let api_id = app.create_api("no-extension").await;
    let expires = TestClock::START + 5_000;
    let (old_id, old_key) = app.create_key(&api_id, json!({ "expires": expires })).await;

    let reply = app
        .call(
            "keys.rerollKey",
            json!({ "keyId": old_id, "expiration": 86_400_000 }),
        )
        .await;
    let new_id = reply.ok()["keyId"].as_str().unwrap().to_owned();

    let old = app.call("keys.getKey", json!({ "keyId": old_id })).await;
    assert_eq!(
        old.ok()["expires"],
        expires,
        "a day of grace does not outlive the old expiry"
    );
    let new = app.call("keys.getKey", json!({ "keyId": new_id })).await;
    assert_eq!(
        new.ok()["expires"],
        expires,
        "the new key inherits the expiry"
    );

    app.clock.set(expires + 1);
    assert_eq!(app.verify(&old_key).await["code"], "EXPIRED");
}

#[tokio::test]
async fn zero_grace_ends_the_old_key_now() {
    let app = spawn_app().await;
    let api_id = app.create_api("zero-grace").await;
    let (old_id, old_key) = app.create_key(&api_id, json!({})).await;
    app.call(
        "keys.rerollKey",
        json!({ "keyId": old_id, "expiration": 0 }),
    )
    .await
    .ok();
    app.clock.advance(1);
    assert_eq!(app.verify(&old_key).await["code"], "EXPIRED");
}

#[tokio::test]
async fn reroll_of_unknown_or_deleted_key_is_404() {
    let app = spawn_app().await;
    let api_id = app.create_api("reroll-404").await;
    app.call(
        "keys.rerollKey",
        json!({ "keyId": "key_missing", "expiration": 0 }),
    )
    .await
    .err(404);
    let (id, _) = app.create_key(&api_id, json!({})).await;
    app.call("keys.deleteKey", json!({ "keyId": id }))
        .await
        .ok();
    app.call("keys.rerollKey", json!({ "keyId": id, "expiration": 0 }))
        .await
        .err(404);
    app.call("keys.rerollKey", json!({ "keyId": id }))
        .await
        .invalid_at("body.expiration");
}
