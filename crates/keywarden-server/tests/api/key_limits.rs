//! Rate limits during verification: keys' and identities' named limits, limits named or
//! defined in the request, and how they interact with credits.

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClock, spawn_app};

const MINUTE: i64 = 60_000;

fn limit(name: &str, limit: i64, auto_apply: bool) -> Value {
    json!({ "name": name, "limit": limit, "duration": MINUTE, "autoApply": auto_apply })
}

async fn verify(app: &TestApp, key: &str, extra: Value) -> Value {
    let mut body = json!({ "key": key });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.call("keys.verifyKey", body).await.ok().clone()
}

#[tokio::test]
async fn an_auto_applied_limit_is_checked_on_every_verification() {
    let app = spawn_app().await;
    let api = app.create_api("limited").await;
    let (key_id, key) = app
        .create_key(&api, json!({ "ratelimits": [limit("requests", 2, true)] }))
        .await;
    let stored = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    let limit_id = stored.ok()["ratelimits"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(limit_id.starts_with("rl_"));

    let first = verify(&app, &key, json!({})).await;
    assert_eq!(first["code"], "VALID");
    assert_eq!(
        first["ratelimits"],
        json!([{
            "exceeded": false, "id": limit_id, "name": "requests", "limit": 2,
            "duration": MINUTE, "reset": TestClock::START + MINUTE, "remaining": 1,
            "autoApply": true
        }])
    );
    assert_eq!(
        verify(&app, &key, json!({})).await["ratelimits"][0]["remaining"],
        0
    );
    let limited = verify(&app, &key, json!({})).await;
    assert_eq!(limited["valid"], false);
    assert_eq!(limited["code"], "RATE_LIMITED");
    assert_eq!(limited["keyId"], key_id.as_str());
    assert_eq!(limited["ratelimits"][0]["exceeded"], true);

    // Two windows later the key may be used again.
    app.clock.advance(2 * MINUTE);
    assert_eq!(verify(&app, &key, json!({})).await["code"], "VALID");
    // A key without limits reports none.
    let (_, free) = app.create_key(&api, json!({})).await;
    assert!(
        verify(&app, &free, json!({}))
            .await
            .get("ratelimits")
            .is_none()
    );
}

#[tokio::test]
async fn keys_of_one_identity_share_its_limits() {
    let app = spawn_app().await;
    let api = app.create_api("shared").await;
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "team_a", "ratelimits": [limit("team", 3, true)] }),
    )
    .await
    .ok();
    let (_, a) = app
        .create_key(&api, json!({ "externalId": "team_a" }))
        .await;
    let (_, b) = app
        .create_key(&api, json!({ "externalId": "team_a" }))
        .await;
    let (_, outsider) = app
        .create_key(&api, json!({ "externalId": "team_b" }))
        .await;

    assert_eq!(verify(&app, &a, json!({})).await["code"], "VALID");
    assert_eq!(verify(&app, &b, json!({})).await["code"], "VALID");
    let third = verify(&app, &a, json!({})).await;
    assert_eq!(third["code"], "VALID");
    assert_eq!(third["ratelimits"][0]["remaining"], 0);
    assert_eq!(third["identity"]["ratelimits"][0]["name"], "team");
    assert_eq!(verify(&app, &b, json!({})).await["code"], "RATE_LIMITED");
    // Raising the identity's limit applies at once to its cached keys, and the count so far
    // (the name and window stay) carries over.
    app.call(
        "identities.updateIdentity",
        json!({ "identity": "team_a", "ratelimits": [limit("team", 4, true)] }),
    )
    .await
    .ok();
    let raised = verify(&app, &b, json!({})).await;
    assert_eq!(raised["code"], "VALID");
    assert_eq!(raised["ratelimits"][0]["limit"], 4);
    assert_eq!(raised["ratelimits"][0]["remaining"], 0);
    assert_eq!(verify(&app, &a, json!({})).await["code"], "RATE_LIMITED");
    // Another identity's keys are not affected, and have no limit at all.
    let other = verify(&app, &outsider, json!({})).await;
    assert_eq!(other["code"], "VALID");
    assert!(other.get("ratelimits").is_none());
}

#[tokio::test]
async fn a_keys_limit_wins_over_its_identitys_of_the_same_name() {
    let app = spawn_app().await;
    let api = app.create_api("precedence").await;
    app.call(
        "identities.createIdentity",
        json!({ "externalId": "generous", "ratelimits": [limit("requests", 100, true)] }),
    )
    .await
    .ok();
    let (_, key) = app
        .create_key(
            &api,
            json!({ "externalId": "generous", "ratelimits": [limit("requests", 1, true)] }),
        )
        .await;
    let first = verify(&app, &key, json!({})).await;
    assert_eq!(first["ratelimits"].as_array().unwrap().len(), 1);
    assert_eq!(first["ratelimits"][0]["limit"], 1);
    assert_eq!(verify(&app, &key, json!({})).await["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn requests_name_stored_limits_or_define_inline_ones() {
    let app = spawn_app().await;
    let api = app.create_api("named").await;
    let (_, key) = app
        .create_key(
            &api,
            json!({ "ratelimits": [limit("expensive", 10, false)] }),
        )
        .await;
    // Not auto-applied: only checked when named.
    assert!(
        verify(&app, &key, json!({}))
            .await
            .get("ratelimits")
            .is_none()
    );
    let named = verify(
        &app,
        &key,
        json!({ "ratelimits": [{ "name": "expensive", "cost": 4 }] }),
    )
    .await;
    assert_eq!(named["ratelimits"][0]["remaining"], 6);
    assert_eq!(named["ratelimits"][0]["autoApply"], false);

    // A name the key does not have is a 412.
    let missing = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "ratelimits": [{ "name": "nonexistent" }] }),
        )
        .await;
    let error = missing.err(412);
    assert!(
        error["detail"].as_str().unwrap().contains("nonexistent"),
        "{}",
        missing.body
    );

    // Inline limits are checked against the key, and have no id.
    let inline = verify(
        &app,
        &key,
        json!({ "ratelimits": [{ "name": "burst", "limit": 1, "duration": 1000 }] }),
    )
    .await;
    assert_eq!(inline["code"], "VALID");
    assert_eq!(inline["ratelimits"][0]["id"], "");
    assert_eq!(inline["ratelimits"][0]["duration"], 1000);
    let again = verify(
        &app,
        &key,
        json!({ "ratelimits": [{ "name": "burst", "limit": 1, "duration": 1000 }] }),
    )
    .await;
    assert_eq!(again["code"], "RATE_LIMITED");
}

#[tokio::test]
async fn a_rate_limited_call_spends_no_credits_and_a_call_without_credits_uses_no_limit() {
    let app = spawn_app().await;
    let api = app.create_api("limits-and-credits").await;
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "credits": { "remaining": 2 }, "ratelimits": [limit("requests", 3, true)] }),
        )
        .await;
    // Two calls spend both credits and two of three rate-limit slots.
    assert_eq!(verify(&app, &key, json!({})).await["credits"], 1);
    assert_eq!(verify(&app, &key, json!({})).await["credits"], 0);
    // Out of credits: denied, and its rate-limit slot is given back.
    let exceeded = verify(&app, &key, json!({})).await;
    assert_eq!(exceeded["code"], "USAGE_EXCEEDED");
    assert_eq!(exceeded["ratelimits"][0]["remaining"], 1);
    app.call(
        "keys.updateCredits",
        json!({ "keyId": key_id, "operation": "set", "value": 10 }),
    )
    .await
    .ok();
    // The slot is still there: one more call fits.
    let last = verify(&app, &key, json!({})).await;
    assert_eq!(last["code"], "VALID");
    assert_eq!(last["credits"], 9);
    assert_eq!(last["ratelimits"][0]["remaining"], 0);
    // Rate limited: the balance stays at 9.
    let limited = verify(&app, &key, json!({})).await;
    assert_eq!(limited["code"], "RATE_LIMITED");
    assert_eq!(limited["credits"], 9);
    let stored = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(stored.ok()["credits"]["remaining"], 9);
}

#[tokio::test]
async fn updating_a_keys_limits_replaces_them_by_name() {
    let app = spawn_app().await;
    let api = app.create_api("update-limits").await;
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "ratelimits": [limit("requests", 1, true), limit("tokens", 5, false)] }),
        )
        .await;
    let before = app
        .call("keys.getKey", json!({ "keyId": key_id }))
        .await
        .ok()
        .clone();
    assert_eq!(verify(&app, &key, json!({})).await["code"], "VALID");
    assert_eq!(verify(&app, &key, json!({})).await["code"], "RATE_LIMITED");
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "ratelimits": [limit("requests", 5, true), limit("uploads", 2, true)] }),
    )
    .await
    .ok();
    let after = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    let limits = after.ok()["ratelimits"].as_array().unwrap().clone();
    let names: Vec<&str> = limits.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["requests", "uploads"]);
    assert_eq!(limits[0]["id"], before["ratelimits"][0]["id"]);
    // The new numbers apply at once (the cached key was replaced); the count so far stays.
    let now = verify(&app, &key, json!({})).await;
    assert_eq!(now["code"], "VALID");
    assert_eq!(now["ratelimits"][0]["remaining"], 3);
    assert_eq!(now["ratelimits"][1]["remaining"], 1);
    // `[]` removes them all.
    app.call(
        "keys.updateKey",
        json!({ "keyId": key_id, "ratelimits": [] }),
    )
    .await
    .ok();
    let none = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(none.ok()["ratelimits"], json!([]));
    assert!(
        verify(&app, &key, json!({}))
            .await
            .get("ratelimits")
            .is_none()
    );
}
