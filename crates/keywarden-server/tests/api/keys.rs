//! `keys.createKey`, `getKey`, `whoami`, `updateKey`, `deleteKey`.

use keywarden_core::key_format::has_valid_checksum;
use keywarden_core::store::Store;
use serde_json::json;

use crate::helpers::{TestClock, spawn_app};

#[tokio::test]
async fn created_key_has_the_documented_format_and_is_stored_hashed() {
    let app = spawn_app().await;
    let api_id = app.create_api("format").await;
    let (key_id, key) = app
        .create_key(&api_id, json!({ "prefix": "sk_live" }))
        .await;
    assert!(key_id.starts_with("key_"));
    assert!(key.starts_with("sk_live_"), "{key}");
    assert!(has_valid_checksum(&key), "{key}");

    // The plaintext is nowhere in the store.
    app.store.flush().await.unwrap();
    let bytes = app.storage.raw_contents().await;
    let needle = key.as_bytes();
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "the plaintext key was found in the store"
    );
}

#[tokio::test]
async fn key_without_prefix_is_the_body_alone() {
    let app = spawn_app().await;
    let api_id = app.create_api("no-prefix").await;
    let (_, key) = app.create_key(&api_id, json!({ "byteLength": 64 })).await;
    assert!(!key.contains('_'));
    assert!(has_valid_checksum(&key));
    assert!(key.len() >= 80, "64 random bytes make a long key: {key}");
}

#[tokio::test]
async fn get_key_and_whoami_return_the_configuration() {
    let app = spawn_app().await;
    let api_id = app.create_api("read").await;
    let expires = TestClock::START + 86_400_000;
    let (key_id, key) = app
        .create_key(
            &api_id,
            json!({
                "prefix": "rd",
                "name": "reader",
                "meta": { "tier": "gold", "seats": 3 },
                "expires": expires,
                "credits": { "remaining": 50, "refill": { "interval": "monthly", "amount": 100, "refillDay": 15 } },
                "enabled": true,
            }),
        )
        .await;
    let by_id = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    let by_key = app.call("keys.whoami", json!({ "key": key })).await;
    for data in [by_id.ok(), by_key.ok()] {
        assert_eq!(data["keyId"], key_id);
        assert_eq!(data["start"], &key[..7]);
        assert_eq!(data["name"], "reader");
        assert_eq!(data["meta"], json!({ "tier": "gold", "seats": 3 }));
        assert_eq!(data["expires"], expires);
        assert_eq!(data["enabled"], true);
        assert_eq!(data["createdAt"], TestClock::START);
        assert_eq!(
            data["credits"],
            json!({ "remaining": 50, "refill": { "interval": "monthly", "amount": 100, "refillDay": 15 } })
        );
        assert_eq!(data["permissions"], json!([]));
        assert_eq!(data["roles"], json!([]));
    }
}

#[tokio::test]
async fn whoami_of_unknown_or_deleted_key_is_404() {
    let app = spawn_app().await;
    let api_id = app.create_api("whoami").await;
    app.call("keys.whoami", json!({ "key": "sk_nothing_like_a_key" }))
        .await
        .err(404);
    let (key_id, key) = app.create_key(&api_id, json!({})).await;
    app.call("keys.deleteKey", json!({ "keyId": key_id }))
        .await
        .ok();
    app.call("keys.whoami", json!({ "key": key }))
        .await
        .err(404);
}

#[tokio::test]
async fn whoami_shows_the_current_balance_after_spending() {
    let app = spawn_app().await;
    let api_id = app.create_api("balance").await;
    let (_, key) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 3 } }))
        .await;
    app.verify(&key).await;
    app.verify(&key).await;
    let reply = app.call("keys.whoami", json!({ "key": key })).await;
    assert_eq!(reply.ok()["credits"]["remaining"], 1);
}

#[tokio::test]
async fn update_key_sets_clears_and_keeps_fields() {
    let app = spawn_app().await;
    let api_id = app.create_api("update").await;
    let (key_id, key) = app
        .create_key(
            &api_id,
            json!({ "name": "before", "meta": { "a": 1 }, "expires": TestClock::START + 10_000 }),
        )
        .await;
    app.clock.advance(5);
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "name": null, "meta": { "b": 2 }, "credits": { "remaining": 7 } }),
    )
    .await
    .ok();
    let data = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    let data = data.ok();
    assert!(data.get("name").is_none(), "null clears the name: {data}");
    assert_eq!(data["meta"], json!({ "b": 2 }), "meta is replaced whole");
    assert_eq!(
        data["expires"],
        TestClock::START + 10_000,
        "omitted fields stay"
    );
    assert_eq!(data["credits"]["remaining"], 7);
    assert_eq!(data["updatedAt"], TestClock::START + 5);

    // The change is visible to verification at once (the cached record was invalidated).
    let verified = app.verify(&key).await;
    assert_eq!(verified["credits"], 6);
    assert!(verified.get("name").is_none());

    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "expires": null, "credits": null, "enabled": false }),
    )
    .await
    .ok();
    let data = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    let data = data.ok();
    assert!(data.get("expires").is_none());
    assert!(data.get("credits").is_none());
    assert_eq!(data["enabled"], false);
    assert_eq!(app.verify(&key).await["code"], "DISABLED");
}

#[tokio::test]
async fn update_key_refill_rules() {
    let app = spawn_app().await;
    let api_id = app.create_api("refill-rules").await;
    let (key_id, _) = app.create_key(&api_id, json!({})).await;
    // A refill needs a balance.
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "credits": { "refill": { "interval": "daily", "amount": 5 } } }),
    )
    .await
    .invalid_at("body.credits");
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "credits": { "remaining": 1, "refill": { "interval": "daily", "amount": 5 } } }),
    )
    .await
    .ok();
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "credits": { "refill": null } }),
    )
    .await
    .ok();
    let data = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(data.ok()["credits"], json!({ "remaining": 1 }));
}

#[tokio::test]
async fn update_unknown_key_is_404() {
    let app = spawn_app().await;
    app.call(
        "keys.updateKey",
        json!({ "keyId": "key_missing", "name": "x" }),
    )
    .await
    .err(404);
}

#[tokio::test]
async fn soft_delete_then_permanent_delete() {
    let app = spawn_app().await;
    let api_id = app.create_api("delete").await;
    let (soft_id, soft) = app.create_key(&api_id, json!({})).await;
    let (hard_id, hard) = app.create_key(&api_id, json!({})).await;

    app.call("keys.deleteKey", json!({ "keyId": soft_id }))
        .await
        .ok();
    app.call(
        "keys.deleteKey",
        json!({ "keyId": hard_id, "permanent": true }),
    )
    .await
    .ok();

    for (id, key) in [(&soft_id, &soft), (&hard_id, &hard)] {
        let verified = app.verify(key).await;
        assert_eq!(verified, json!({ "valid": false, "code": "NOT_FOUND" }));
        app.call("keys.getKey", json!({ "keyId": id }))
            .await
            .err(404);
        app.call("keys.deleteKey", json!({ "keyId": id }))
            .await
            .err(404);
    }
}

#[tokio::test]
async fn recoverable_keys_are_a_precondition_failure() {
    let app = spawn_app().await;
    let api_id = app.create_api("recoverable").await;
    let reply = app
        .call(
            "keys.createKey",
            json!({ "apiId": api_id, "recoverable": true }),
        )
        .await;
    let error = reply.err(412);
    assert!(error["detail"].as_str().unwrap().contains("Recoverable"));
    app.create_key(&api_id, json!({ "recoverable": false }))
        .await;
}
