//! `keys.verifyKey`: every outcome reachable without identities, permissions and limits, and
//! what stays in memory.

use serde_json::json;

use crate::helpers::{TestClock, spawn_app};

#[tokio::test]
async fn valid_key_shows_its_details() {
    let app = spawn_app().await;
    let api_id = app.create_api("verify").await;
    let expires = TestClock::START + 60_000;
    let (key_id, key) = app
        .create_key(
            &api_id,
            json!({ "name": "svc", "meta": { "team": "a" }, "expires": expires }),
        )
        .await;
    let data = app.verify(&key).await;
    assert_eq!(
        data,
        json!({
            "valid": true,
            "code": "VALID",
            "keyId": key_id,
            "keyspaceId": api_id,
            "name": "svc",
            "meta": { "team": "a" },
            "expires": expires,
            "enabled": true,
            "permissions": [],
            "roles": [],
        })
    );
}

#[tokio::test]
async fn unknown_keys_are_not_found_without_details() {
    let app = spawn_app().await;
    for key in ["x", "sk_3ZjX9uN2qLp8sF7tYvWb4cKe1hGdRm", &"a".repeat(512)] {
        assert_eq!(
            app.verify(key).await,
            json!({ "valid": false, "code": "NOT_FOUND" })
        );
    }
}

#[tokio::test]
async fn unknown_keys_never_reach_the_store() {
    let app = spawn_app().await;
    let api_id = app.create_api("probing").await;
    app.create_key(&api_id, json!({})).await;
    let before = app.store.key_reads();
    for i in 0..200 {
        let data = app.verify(&format!("sk_random_guess_{i}")).await;
        assert_eq!(data["code"], "NOT_FOUND");
    }
    assert_eq!(
        app.store.key_reads(),
        before,
        "guesses were looked up in the store"
    );
}

#[tokio::test]
async fn a_cached_key_is_verified_without_store_reads() {
    let app = spawn_app().await;
    let api_id = app.create_api("cached").await;
    let (_, key) = app.create_key(&api_id, json!({})).await;
    app.verify(&key).await;
    let after_first = app.store.key_reads();
    for _ in 0..50 {
        assert_eq!(app.verify(&key).await["code"], "VALID");
    }
    assert_eq!(app.store.key_reads(), after_first);
}

#[tokio::test]
async fn disabled_keys_are_disabled_and_can_be_enabled_again() {
    let app = spawn_app().await;
    let api_id = app.create_api("disabled").await;
    let (key_id, key) = app.create_key(&api_id, json!({ "enabled": false })).await;
    let data = app.verify(&key).await;
    assert_eq!(data["valid"], false);
    assert_eq!(data["code"], "DISABLED");
    assert_eq!(data["keyId"], key_id);
    assert_eq!(data["enabled"], false);

    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "enabled": true }),
    )
    .await
    .ok();
    assert_eq!(app.verify(&key).await["code"], "VALID");
}

#[tokio::test]
async fn keys_expire_after_their_expiry_time() {
    let app = spawn_app().await;
    let api_id = app.create_api("expiry").await;
    let expires = TestClock::START + 1_000;
    let (_, key) = app.create_key(&api_id, json!({ "expires": expires })).await;
    assert_eq!(app.verify(&key).await["code"], "VALID");
    app.clock.set(expires);
    assert_eq!(
        app.verify(&key).await["code"],
        "VALID",
        "valid up to its expiry"
    );
    app.clock.set(expires + 1);
    let data = app.verify(&key).await;
    assert_eq!(data["code"], "EXPIRED");
    assert_eq!(data["valid"], false);
    assert_eq!(data["expires"], expires);
}

#[tokio::test]
async fn disabled_wins_over_expired() {
    let app = spawn_app().await;
    let api_id = app.create_api("order").await;
    let (_, key) = app
        .create_key(
            &api_id,
            json!({ "enabled": false, "expires": TestClock::START - 1 }),
        )
        .await;
    assert_eq!(app.verify(&key).await["code"], "DISABLED");
}

#[tokio::test]
async fn keyspaces_restrict_the_apis_a_key_may_belong_to() {
    let app = spawn_app().await;
    let api_a = app.create_api("space-a").await;
    let api_b = app.create_api("space-b").await;
    let (_, key) = app.create_key(&api_a, json!({})).await;
    let inside = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "keyspaces": [api_a, api_b] }),
        )
        .await;
    assert_eq!(inside.ok()["code"], "VALID");
    let outside = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "keyspaces": [api_b] }),
        )
        .await;
    assert_eq!(
        outside.ok(),
        &json!({ "valid": false, "code": "NOT_FOUND" })
    );
}

#[tokio::test]
async fn tags_and_migration_id_are_accepted() {
    let app = spawn_app().await;
    let api_id = app.create_api("tags").await;
    let (_, key) = app.create_key(&api_id, json!({})).await;
    let reply = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "tags": ["path=/v1/x", "region=eu"], "migrationId": "m1" }),
        )
        .await;
    assert_eq!(reply.ok()["code"], "VALID");
}

#[tokio::test]
async fn expired_key_with_credits_reports_its_current_balance() {
    let app = spawn_app().await;
    let api_id = app.create_api("expired-balance").await;
    let (_, key) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 5 }, "expires": TestClock::START + 10 }),
        )
        .await;
    assert_eq!(app.verify(&key).await["credits"], 4);
    app.clock.advance(11);
    let data = app.verify(&key).await;
    assert_eq!(data["code"], "EXPIRED");
    assert_eq!(data["credits"], 4, "nothing spent, current balance shown");
}
