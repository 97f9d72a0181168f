//! Root-key authentication and authorisation: 400 without a usable header, 401 for unknown or
//! revoked keys, 403 naming the missing permission, and "not found" where existence must not
//! leak.

use keywarden_core::id::RootKeyId;
use keywarden_core::store::RootKeyStore;
use keywarden_core::time::Clock;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn missing_and_malformed_authorization_are_400() {
    let app = spawn_app().await;
    let url = format!("{}/v2/apis.createApi", app.base_url);
    let body = json!({ "name": "x-api" });
    let missing = app.client.post(&url).json(&body).send().await.unwrap();
    let missing = crate::helpers::reply(missing).await;
    let error = missing.err(400);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/authentication/missing"
    );
    assert_eq!(error["errors"], json!([]));
    for header in ["Basic abc", "Bearer", "Bearer    ", "token"] {
        let response = app
            .client
            .post(&url)
            .header("authorization", header)
            .json(&body)
            .send()
            .await
            .unwrap();
        let reply = crate::helpers::reply(response).await;
        let error = reply.err(400);
        assert_eq!(
            error["type"], "https://unkey.com/docs/errors/unkey/authentication/malformed",
            "{header}"
        );
    }
}

#[tokio::test]
async fn unknown_root_key_is_401() {
    let app = spawn_app().await;
    let reply = app
        .call_as(
            "kw_root_not_a_real_key_at_all_000000",
            "apis.createApi",
            json!({ "name": "abc" }),
        )
        .await;
    let error = reply.err(401);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/authentication/key_not_found"
    );
}

#[tokio::test]
async fn revoked_root_key_is_401_soon_after_revocation() {
    let app = spawn_app().await;
    let token = app.root_key_with(&["api.*.create_api"]).await;
    app.call_as(&token, "apis.createApi", json!({ "name": "before" }))
        .await
        .ok();
    let id = app
        .store
        .root_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.digest == keywarden_core::digest::KeyDigest::of(&token))
        .unwrap()
        .id;
    let id: RootKeyId = id;
    assert!(
        app.store
            .revoke_root_key(
                &id,
                app.clock.now(),
                &keywarden_core::audit::AuditContext::cli().entry(
                    &app.workspace,
                    app.clock.now(),
                    keywarden_core::audit::AuditAction::RootKeyRevoke,
                ),
            )
            .await
            .unwrap()
    );
    let mut status = 0;
    for _ in 0..100 {
        status = app
            .call_as(&token, "apis.createApi", json!({ "name": "after" }))
            .await
            .status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401);
}

#[tokio::test]
async fn missing_permission_is_403_naming_it() {
    let app = spawn_app().await;
    let api_id = app.create_api("guarded").await;
    let reader = app.root_key_with(&["api.*.read_api"]).await;
    let reply = app
        .call_as(&reader, "keys.createKey", json!({ "apiId": api_id }))
        .await;
    let error = reply.err(403);
    assert_eq!(
        error["type"],
        "https://unkey.com/docs/errors/unkey/authorization/insufficient_permissions"
    );
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("api.*.create_key"),
        "{}",
        reply.body
    );
    app.call_as(&reader, "apis.getApi", json!({ "apiId": api_id }))
        .await
        .ok();
    app.call_as(&reader, "apis.createApi", json!({ "name": "nope" }))
        .await
        .err(403);
    app.call_as(&reader, "keys.verifyKey", json!({ "key": "x" }))
        .await
        .err(403);
}

#[tokio::test]
async fn permissions_scoped_to_one_api_hide_the_others() {
    let app = spawn_app().await;
    let mine = app.create_api("mine").await;
    let theirs = app.create_api("theirs").await;
    let (my_key_id, my_key) = app.create_key(&mine, json!({})).await;
    let (their_key_id, their_key) = app.create_key(&theirs, json!({})).await;
    let scoped = app
        .root_key_with(&[
            &format!("api.{mine}.create_key"),
            &format!("api.{mine}.read_key"),
            &format!("api.{mine}.read_api"),
            &format!("api.{mine}.verify_key"),
            &format!("api.{mine}.update_key"),
            &format!("api.{mine}.delete_key"),
        ])
        .await;
    let call = |op: &'static str, body: serde_json::Value| app.call_as(&scoped, op, body);

    // Its own API works.
    call("apis.getApi", json!({ "apiId": mine })).await.ok();
    call("keys.createKey", json!({ "apiId": mine })).await.ok();
    call("keys.getKey", json!({ "keyId": my_key_id }))
        .await
        .ok();
    call("keys.whoami", json!({ "key": my_key })).await.ok();
    let verified = call("keys.verifyKey", json!({ "key": my_key })).await;
    assert_eq!(verified.ok()["code"], "VALID");

    // The other API's objects look like they do not exist.
    call("apis.getApi", json!({ "apiId": theirs }))
        .await
        .err(404);
    let create = call("keys.createKey", json!({ "apiId": theirs })).await;
    assert_eq!(
        create.err(404)["detail"],
        "The specified API was not found."
    );
    call("keys.getKey", json!({ "keyId": their_key_id }))
        .await
        .err(404);
    call("keys.whoami", json!({ "key": their_key }))
        .await
        .err(404);
    call(
        "keys.updateKey",
        json!({ "keyId": their_key_id, "name": "x" }),
    )
    .await
    .err(404);
    call("keys.deleteKey", json!({ "keyId": their_key_id }))
        .await
        .err(404);
    call("apis.listKeys", json!({ "apiId": theirs }))
        .await
        .err(404);
    let verified = call("keys.verifyKey", json!({ "key": their_key })).await;
    assert_eq!(
        verified.ok(),
        &json!({ "valid": false, "code": "NOT_FOUND" })
    );
    // Operations it holds nowhere are 403 even on its own API.
    call("apis.deleteApi", json!({ "apiId": mine }))
        .await
        .err(403);
    call(
        "keys.rerollKey",
        json!({ "keyId": my_key_id, "expiration": 0 }),
    )
    .await
    .ok();

    // Nothing was changed through the hidden paths.
    assert_eq!(app.verify(&their_key).await["code"], "VALID");
}

/// For every endpoint that works on one API's objects: a root key without its permission is
/// refused with a 403 naming it; one holding only the API-scoped form works on that API and,
/// for another API, gets the answer for something that does not exist.
#[tokio::test]
async fn every_api_endpoint_honours_api_scoped_permissions() {
    let app = spawn_app().await;
    let mine = app.create_api("scoped-mine").await;
    let theirs = app.create_api("scoped-theirs").await;
    let unrelated = app.root_key_with(&["identity.*.read_identity"]).await;

    // (operation, action, body for an API's objects); each call gets fresh objects.
    type Body = Box<dyn Fn(&str, &str, &str) -> Value>;
    let cases: Vec<(&str, &str, Body)> = vec![
        (
            "apis.getApi",
            "read_api",
            Box::new(|api, _, _| json!({ "apiId": api })),
        ),
        (
            "apis.listKeys",
            "read_key",
            Box::new(|api, _, _| json!({ "apiId": api })),
        ),
        (
            "keys.createKey",
            "create_key",
            Box::new(|api, _, _| json!({ "apiId": api })),
        ),
        (
            "keys.migrateKeys",
            "create_key",
            Box::new(
                |api, _, _| json!({ "migrationId": "m_1", "apiId": api, "keys": [{ "hash": crate::helpers::hash_of(&format!("{api}-import")) }] }),
            ),
        ),
        (
            "keys.getKey",
            "read_key",
            Box::new(|_, id, _| json!({ "keyId": id })),
        ),
        (
            "keys.whoami",
            "read_key",
            Box::new(|_, _, key| json!({ "key": key })),
        ),
        (
            "keys.updateKey",
            "update_key",
            Box::new(|_, id, _| json!({ "keyId": id, "name": "renamed" })),
        ),
        (
            "keys.updateCredits",
            "update_key",
            Box::new(|_, id, _| json!({ "keyId": id, "operation": "set", "value": 3 })),
        ),
        (
            "keys.rerollKey",
            "create_key",
            Box::new(|_, id, _| json!({ "keyId": id, "expiration": 0 })),
        ),
        (
            "keys.deleteKey",
            "delete_key",
            Box::new(|_, id, _| json!({ "keyId": id })),
        ),
        (
            "keys.verifyKey",
            "verify_key",
            Box::new(|_, _, key| json!({ "key": key })),
        ),
    ];
    for (operation, action, body) in &cases {
        let (mine_id, mine_key) = app.create_key(&mine, json!({})).await;
        let (theirs_id, theirs_key) = app.create_key(&theirs, json!({})).await;
        let scoped = app.root_key_with(&[&format!("api.{mine}.{action}")]).await;

        let denied = app
            .call_as(&unrelated, operation, body(&mine, &mine_id, &mine_key))
            .await;
        let error = denied.err(403);
        assert!(
            error["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("api.*.{action}")),
            "{operation}: {}",
            denied.body
        );

        let allowed = app
            .call_as(&scoped, operation, body(&mine, &mine_id, &mine_key))
            .await;
        assert_eq!(
            allowed.status, 200,
            "{operation} on its API: {}",
            allowed.body
        );
        if *operation == "keys.verifyKey" {
            assert_eq!(allowed.data()["code"], "VALID");
        }

        let hidden = app
            .call_as(&scoped, operation, body(&theirs, &theirs_id, &theirs_key))
            .await;
        if *operation == "keys.verifyKey" {
            assert_eq!(hidden.ok()["code"], "NOT_FOUND", "{}", hidden.body);
            assert!(hidden.data().get("keyId").is_none());
        } else {
            hidden.err(404);
        }
    }
    // apis.deleteApi last: it removes the API.
    let scoped = app
        .root_key_with(&[&format!("api.{mine}.delete_api")])
        .await;
    app.call_as(&unrelated, "apis.deleteApi", json!({ "apiId": mine }))
        .await
        .err(403);
    app.call_as(&scoped, "apis.deleteApi", json!({ "apiId": theirs }))
        .await
        .err(404);
    app.call_as(&scoped, "apis.deleteApi", json!({ "apiId": mine }))
        .await
        .ok();
}
