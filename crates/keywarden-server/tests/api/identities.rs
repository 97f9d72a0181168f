//! Identities: their endpoints, and keys linked to them.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn limit(name: &str, limit: i64, auto_apply: bool) -> Value {
    json!({ "name": name, "limit": limit, "duration": 60_000, "autoApply": auto_apply })
}

#[tokio::test]
async fn identities_are_created_read_updated_and_deleted() {
    let app = spawn_app().await;
    let created = app
        .call(
            "identities.createIdentity",
            json!({
                "externalId": "customer_1",
                "meta": { "plan": "pro" },
                "ratelimits": [limit("requests", 100, true), limit("tokens", 5000, false)]
            }),
        )
        .await;
    let id = created.ok()["identityId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("id_"), "{id}");

    // By id and by external id alike.
    for reference in [id.as_str(), "customer_1"] {
        let got = app
            .call("identities.getIdentity", json!({ "identity": reference }))
            .await;
        let data = got.ok();
        assert_eq!(data["id"], id.as_str());
        assert_eq!(data["externalId"], "customer_1");
        assert_eq!(data["meta"], json!({ "plan": "pro" }));
        assert_eq!(data["ratelimits"][0]["name"], "requests");
        assert_eq!(data["ratelimits"][0]["limit"], 100);
        assert_eq!(data["ratelimits"][0]["duration"], 60_000);
        assert_eq!(data["ratelimits"][0]["autoApply"], true);
        assert_eq!(data["ratelimits"][1]["autoApply"], false);
        assert!(
            data["ratelimits"][0]["id"]
                .as_str()
                .unwrap()
                .starts_with("rl_")
        );
    }
    let before = app
        .call("identities.getIdentity", json!({ "identity": id }))
        .await
        .ok()
        .clone();

    // Limits are replaced by name; a name that stays keeps its id.
    let updated = app
        .call(
            "identities.updateIdentity",
            json!({
                "identity": "customer_1",
                "meta": { "plan": "enterprise" },
                "ratelimits": [limit("requests", 1000, true), limit("uploads", 3, false)]
            }),
        )
        .await;
    let data = updated.ok();
    assert_eq!(data["meta"], json!({ "plan": "enterprise" }));
    let limits = data["ratelimits"].as_array().unwrap();
    assert_eq!(limits.len(), 2);
    assert_eq!(limits[0]["id"], before["ratelimits"][0]["id"]);
    assert_eq!(limits[0]["limit"], 1000);
    assert_eq!(limits[1]["name"], "uploads");
    assert_ne!(limits[1]["id"], before["ratelimits"][1]["id"]);

    // `{}` clears the metadata, `[]` the limits; an omitted field stays.
    let cleared = app
        .call(
            "identities.updateIdentity",
            json!({ "identity": id, "meta": {} }),
        )
        .await;
    assert!(cleared.ok().get("meta").is_none(), "{}", cleared.body);
    assert_eq!(cleared.ok()["ratelimits"].as_array().unwrap().len(), 2);
    let cleared = app
        .call(
            "identities.updateIdentity",
            json!({ "identity": id, "ratelimits": [] }),
        )
        .await;
    assert_eq!(cleared.ok()["ratelimits"], json!([]));
    // `null` clears as well.
    app.call(
        "identities.updateIdentity",
        json!({ "identity": id, "meta": { "a": 1 }, "ratelimits": [limit("requests", 1, true)] }),
    )
    .await
    .ok();
    let cleared = app
        .call(
            "identities.updateIdentity",
            json!({ "identity": id, "meta": null, "ratelimits": null }),
        )
        .await;
    assert!(cleared.ok().get("meta").is_none(), "{}", cleared.body);
    assert_eq!(cleared.ok()["ratelimits"], json!([]));

    let deleted = app
        .call("identities.deleteIdentity", json!({ "identity": id }))
        .await;
    assert_eq!(deleted.status, 200);
    assert!(deleted.body.get("data").is_none(), "{}", deleted.body);
    assert!(deleted.body["meta"]["requestId"].is_string());
    app.call("identities.getIdentity", json!({ "identity": id }))
        .await
        .err(404);
    app.call("identities.deleteIdentity", json!({ "identity": id }))
        .await
        .err(404);
    // The external id is free again.
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "customer_1" }),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_taken_external_id_is_a_conflict() {
    let app = spawn_app().await;
    app.call("identities.createIdentity", json!({ "externalId": "dup" }))
        .await
        .ok();
    let again = app
        .call("identities.createIdentity", json!({ "externalId": "dup" }))
        .await;
    let error = again.err(409);
    assert!(
        error["type"]
            .as_str()
            .unwrap()
            .ends_with("identity_already_exists"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn identities_are_listed_by_pages_and_searched() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.call(
            "identities.createIdentity",
            json!({ "externalId": format!("{}_{i}", if i % 2 == 0 { "Even" } else { "odd" }) }),
        )
        .await
        .ok();
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({ "limit": 3 });
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let reply = app.call("identities.listIdentities", body).await;
        reply.ok();
        for item in reply.data().as_array().unwrap() {
            seen.push(item["externalId"].as_str().unwrap().to_owned());
        }
        let pagination = &reply.body["pagination"];
        match pagination["cursor"].as_str() {
            Some(c) => {
                assert_eq!(pagination["hasMore"], true);
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(pagination["hasMore"], false);
                break;
            }
        }
    }
    assert_eq!(seen.len(), 7);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "no identity listed twice");

    let found = app
        .call("identities.listIdentities", json!({ "search": "EVEN" }))
        .await;
    let found: Vec<&str> = found
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["Even_0", "Even_2", "Even_4", "Even_6"]);
}

#[tokio::test]
async fn keys_link_to_identities_by_external_id() {
    let app = spawn_app().await;
    let api = app.create_api("identity-keys").await;
    // The identity is created on first use, with the key.
    let (first_id, first) = app.create_key(&api, json!({ "externalId": "acme" })).await;
    let identity = app
        .call("identities.getIdentity", json!({ "identity": "acme" }))
        .await
        .ok()
        .clone();
    // A second key joins the same identity.
    let (second_id, _) = app.create_key(&api, json!({ "externalId": "acme" })).await;
    let (loner_id, _) = app.create_key(&api, json!({})).await;

    let got = app.call("keys.getKey", json!({ "keyId": first_id })).await;
    assert_eq!(got.ok()["identity"]["id"], identity["id"]);
    assert_eq!(got.ok()["identity"]["externalId"], "acme");

    let listed = app
        .call(
            "apis.listKeys",
            json!({ "apiId": api, "externalId": "acme" }),
        )
        .await;
    let mut ids: Vec<&str> = listed
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![first_id.as_str(), second_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // Verify shows the identity; an update to it shows on the next verification, even though
    // the key is cached.
    let verified = app.verify(&first).await;
    assert_eq!(verified["identity"]["externalId"], "acme");
    assert!(verified["identity"].get("meta").is_none());
    app.call(
        "identities.updateIdentity",
        json!({ "identity": "acme", "meta": { "tier": "gold" } }),
    )
    .await
    .ok();
    let verified = app.verify(&first).await;
    assert_eq!(verified["identity"]["meta"], json!({ "tier": "gold" }));

    // updateKey moves a key to another identity (created on the fly) and `null` unlinks it.
    app.call(
        "keys.updateKey",
        json!({ "keyId": loner_id, "externalId": "globex" }),
    )
    .await
    .ok();
    let got = app.call("keys.getKey", json!({ "keyId": loner_id })).await;
    assert_eq!(got.ok()["identity"]["externalId"], "globex");
    app.call(
        "keys.updateKey",
        json!({ "keyId": loner_id, "externalId": null }),
    )
    .await
    .ok();
    let got = app.call("keys.getKey", json!({ "keyId": loner_id })).await;
    assert!(got.ok().get("identity").is_none(), "{}", got.body);

    // Deleting the identity unlinks its keys, which keep working.
    app.call("identities.deleteIdentity", json!({ "identity": "acme" }))
        .await;
    let verified = app.verify(&first).await;
    assert_eq!(verified["code"], "VALID");
    assert!(verified.get("identity").is_none(), "{verified}");
}

#[tokio::test]
async fn identities_of_other_workspaces_are_invisible() {
    let app = spawn_app().await;
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "private" }),
    )
    .await
    .ok();
    let (_, other) = app.other_workspace().await;
    app.call_as(
        &other,
        "identities.getIdentity",
        json!({ "identity": "private" }),
    )
    .await
    .err(404);
    let listed = app
        .call_as(&other, "identities.listIdentities", json!({}))
        .await;
    assert_eq!(listed.ok(), &json!([]));
    // The same external id is free in the other workspace.
    app.call_as(
        &other,
        "identities.createIdentity",
        json!({ "externalId": "private" }),
    )
    .await
    .ok();
}

#[tokio::test]
async fn identity_endpoints_check_their_permissions_and_inputs() {
    let app = spawn_app().await;
    let reader = app.root_key_with(&["identity.*.read_identity"]).await;
    let denied = app
        .call_as(
            &reader,
            "identities.createIdentity",
            json!({ "externalId": "x1" }),
        )
        .await;
    let error = denied.err(403);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("identity.*.create_identity"),
        "{}",
        denied.body
    );
    app.call_as(&reader, "identities.listIdentities", json!({}))
        .await
        .ok();

    for (operation, body, location) in [
        ("identities.createIdentity", json!({}), "body.externalId"),
        (
            "identities.createIdentity",
            json!({ "externalId": "has space" }),
            "body.externalId",
        ),
        (
            "identities.createIdentity",
            json!({ "externalId": "ok", "ratelimits": [{ "name": "rq", "limit": 1, "duration": 1000 }] }),
            "body.ratelimits[0].name",
        ),
        (
            "identities.createIdentity",
            json!({ "externalId": "ok", "ratelimits": [{ "name": "req", "limit": 1, "duration": 500 }] }),
            "body.ratelimits[0].duration",
        ),
        (
            "identities.getIdentity",
            json!({ "identity": "" }),
            "body.identity",
        ),
        (
            "identities.listIdentities",
            json!({ "limit": 101 }),
            "body.limit",
        ),
        ("identities.updateIdentity", json!({}), "body.identity"),
    ] {
        app.call(operation, body).await.invalid_at(location);
    }
}
