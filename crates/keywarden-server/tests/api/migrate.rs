//! `keys.migrateKeys`: importing keys by hash.

use serde_json::json;

use crate::helpers::{hash_of, spawn_app};

#[tokio::test]
async fn imported_hashes_verify_with_their_plaintext() {
    let app = spawn_app().await;
    let api_id = app.create_api("migrated").await;
    let legacy = "legacy_key_from_another_system_1";
    let hex_legacy = "legacy_key_given_as_hex_hash_2";
    let hex_hash: String = keywarden_core::digest::KeyDigest::of(hex_legacy)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let reply = app
        .call(
            "keys.migrateKeys",
            json!({
                "migrationId": "from_vendor_x",
                "apiId": api_id,
                "keys": [
                    { "hash": hash_of(legacy), "name": "imported", "credits": { "remaining": 2 }, "meta": { "from": "x" } },
                    { "hash": hex_hash, "enabled": false },
                    { "hash": "not-a-sha256" },
                    { "hash": hash_of(legacy) },
                ],
            }),
        )
        .await;
    let data = reply.ok();
    let migrated = data["migrated"].as_array().unwrap();
    assert_eq!(migrated.len(), 2);
    assert_eq!(migrated[0]["hash"], hash_of(legacy));
    assert!(migrated[0]["keyId"].as_str().unwrap().starts_with("key_"));
    assert_eq!(data["failed"], json!(["not-a-sha256", hash_of(legacy)]));

    let verified = app.verify(legacy).await;
    assert_eq!(verified["code"], "VALID");
    assert_eq!(verified["name"], "imported");
    assert_eq!(verified["credits"], 1);
    assert_eq!(verified["meta"], json!({ "from": "x" }));
    assert_eq!(verified["keyId"], migrated[0]["keyId"]);
    assert_eq!(app.verify(hex_legacy).await["code"], "DISABLED");

    // Importing the same hash again fails: one key per hash.
    let again = app
        .call(
            "keys.migrateKeys",
            json!({ "migrationId": "again", "apiId": api_id, "keys": [{ "hash": hash_of(legacy) }] }),
        )
        .await;
    assert_eq!(again.ok()["failed"], json!([hash_of(legacy)]));
}

#[tokio::test]
async fn migrate_validates_the_request() {
    let app = spawn_app().await;
    let api_id = app.create_api("migrate-validation").await;
    app.call(
        "keys.migrateKeys",
        json!({ "migrationId": "m_1", "apiId": api_id, "keys": [] }),
    )
    .await
    .invalid_at("body.keys");
    app.call(
        "keys.migrateKeys",
        json!({ "apiId": api_id, "keys": [{ "hash": "abc" }] }),
    )
    .await
    .invalid_at("body.migrationId");
    app.call(
        "keys.migrateKeys",
        json!({ "migrationId": "m_1", "apiId": api_id, "keys": [{ "name": "no hash" }] }),
    )
    .await
    .invalid_at("body.keys[0].hash");
    app.call(
        "keys.migrateKeys",
        json!({ "migrationId": "m_1", "apiId": "api_missing", "keys": [{ "hash": hash_of("x") }] }),
    )
    .await
    .err(404);
}
