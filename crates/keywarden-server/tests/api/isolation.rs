//! Workspaces are isolated: another workspace's ids behave exactly like ids that do not exist.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn another_workspace_sees_nothing_of_this_one() {
    let app = spawn_app().await;
    let api_id = app.create_api("tenant-a").await;
    let (key_id, key) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 3 } }))
        .await;
    let (_, other) = app.other_workspace().await;
    let call = |op: &'static str, body: serde_json::Value| app.call_as(&other, op, body);

    call("apis.getApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("apis.listKeys", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("apis.deleteApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("keys.createKey", json!({ "apiId": api_id }))
        .await
        .err(404);
    call("keys.getKey", json!({ "keyId": key_id }))
        .await
        .err(404);
    call("keys.whoami", json!({ "key": key })).await.err(404);
    call(
        "keys.updateKey",
        json!({ "keyId": key_id, "enabled": false }),
    )
    .await
    .err(404);
    call(
        "keys.updateCredits",
        json!({ "keyId": key_id, "operation": "set", "value": 99 }),
    )
    .await
    .err(404);
    call(
        "keys.rerollKey",
        json!({ "keyId": key_id, "expiration": 0 }),
    )
    .await
    .err(404);
    call("keys.deleteKey", json!({ "keyId": key_id }))
        .await
        .err(404);
    call(
        "keys.migrateKeys",
        json!({ "migrationId": "m_1", "apiId": api_id, "keys": [{ "hash": crate::helpers::hash_of("z") }] }),
    )
    .await
    .err(404);
    let verified = call("keys.verifyKey", json!({ "key": key })).await;
    assert_eq!(
        verified.ok(),
        &json!({ "valid": false, "code": "NOT_FOUND" })
    );

    // The key is untouched: same balance (the foreign verify spent nothing), still enabled.
    let data = app.verify(&key).await;
    assert_eq!(data["code"], "VALID");
    assert_eq!(data["credits"], 2);

    // The other workspace's own objects work and stay invisible here.
    let reply = call("apis.createApi", json!({ "name": "tenant-b" })).await;
    let their_api = reply.ok()["apiId"].as_str().unwrap().to_owned();
    app.call("apis.getApi", json!({ "apiId": their_api }))
        .await
        .err(404);
}
