//! `apis.*`.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn create_then_get_returns_the_name() {
    let app = spawn_app().await;
    let api_id = app.create_api("payments-prod").await;
    assert!(api_id.starts_with("api_"));
    let reply = app.call("apis.getApi", json!({ "apiId": api_id })).await;
    let data = reply.ok();
    assert_eq!(data["id"], api_id);
    assert_eq!(data["name"], "payments-prod");
    assert_eq!(data["deleteProtection"], false);
}

#[tokio::test]
async fn get_unknown_api_is_404() {
    let app = spawn_app().await;
    let reply = app
        .call("apis.getApi", json!({ "apiId": "api_doesnotexist" }))
        .await;
    let error = reply.err(404);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/data/api_not_found"
    );
}

#[tokio::test]
async fn delete_api_removes_it_and_its_keys() {
    let app = spawn_app().await;
    let api_id = app.create_api("short-lived").await;
    let (key_id, key) = app.create_key(&api_id, json!({})).await;
    assert_eq!(app.verify(&key).await["code"], "VALID");

    app.call("apis.deleteApi", json!({ "apiId": api_id }))
        .await
        .ok();

    app.call("apis.getApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    assert_eq!(app.verify(&key).await["code"], "NOT_FOUND");
    app.call("keys.getKey", json!({ "keyId": key_id }))
        .await
        .err(404);
    app.call("apis.deleteApi", json!({ "apiId": api_id }))
        .await
        .err(404);
    app.call("keys.createKey", json!({ "apiId": api_id }))
        .await
        .err(404);
}

#[tokio::test]
async fn delete_protected_api_is_412_and_keeps_it() {
    let app = spawn_app().await;
    let reply = app
        .call(
            "apis.createApi",
            json!({ "name": "protected", "deleteProtection": true }),
        )
        .await;
    let api_id = reply.ok()["apiId"].as_str().unwrap().to_owned();
    let (_, key) = app.create_key(&api_id, json!({})).await;

    let error = app.call("apis.deleteApi", json!({ "apiId": api_id })).await;
    let error = error.err(412);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/application/protected_resource"
    );
    app.call("apis.getApi", json!({ "apiId": api_id }))
        .await
        .ok();
    assert_eq!(app.verify(&key).await["code"], "VALID");
}

#[tokio::test]
async fn api_defaults_shape_new_keys() {
    let app = spawn_app().await;
    let reply = app
        .call(
            "apis.createApi",
            json!({ "name": "with-defaults", "defaultPrefix": "pay", "defaultByteLength": 32 }),
        )
        .await;
    let api_id = reply.ok()["apiId"].as_str().unwrap().to_owned();
    let (_, key) = app.create_key(&api_id, json!({})).await;
    assert!(key.starts_with("pay_"), "{key}");
    // 32 random bytes are 43 or 44 base58 characters, plus the 6-character checksum.
    let body = &key["pay_".len()..];
    assert!((49..=50).contains(&body.len()), "{key}");
    let (_, explicit) = app.create_key(&api_id, json!({ "prefix": "own" })).await;
    assert!(explicit.starts_with("own_"), "{explicit}");
}

#[tokio::test]
async fn list_keys_shows_live_keys_with_their_data() {
    let app = spawn_app().await;
    let api_id = app.create_api("listing").await;
    let other_api = app.create_api("elsewhere").await;
    let (first, _) = app
        .create_key(
            &api_id,
            json!({ "name": "first", "meta": { "plan": "pro" } }),
        )
        .await;
    let (second, _) = app.create_key(&api_id, json!({ "name": "second" })).await;
    let (deleted, _) = app.create_key(&api_id, json!({})).await;
    app.create_key(&other_api, json!({})).await;
    app.call("keys.deleteKey", json!({ "keyId": deleted }))
        .await
        .ok();

    let reply = app.call("apis.listKeys", json!({ "apiId": api_id })).await;
    let keys = reply.ok().as_array().unwrap().clone();
    let ids: Vec<&str> = keys.iter().map(|k| k["keyId"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);
    assert_eq!(keys[0]["name"], "first");
    assert_eq!(keys[0]["meta"]["plan"], "pro");
    assert_eq!(keys[0]["enabled"], true);
    assert!(keys[0]["start"].as_str().unwrap().len() >= 4);
    assert_eq!(reply.body["pagination"]["hasMore"], false);
    assert!(reply.body["pagination"].get("cursor").is_none());
}

#[tokio::test]
async fn list_keys_of_unknown_api_is_404() {
    let app = spawn_app().await;
    app.call("apis.listKeys", json!({ "apiId": "api_missing" }))
        .await
        .err(404);
}
