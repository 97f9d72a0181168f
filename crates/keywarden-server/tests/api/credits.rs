//! Credits: spending on verify and `keys.updateCredits`.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn spending_follows_the_reference_cases() {
    let app = spawn_app().await;
    let api_id = app.create_api("spend").await;
    let spend = |key: String, cost: Option<i64>| {
        let app = &app;
        async move {
            let mut body = json!({ "key": key });
            if let Some(cost) = cost {
                body["credits"] = json!({ "cost": cost });
            }
            app.call("keys.verifyKey", body).await.ok().clone()
        }
    };
    // remaining 5 + cost 5 → VALID, 0 left.
    let (_, a) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 5 } }))
        .await;
    let r = spend(a.clone(), Some(5)).await;
    assert_eq!(
        (r["code"].clone(), r["credits"].clone()),
        (json!("VALID"), json!(0))
    );
    // remaining 5 + cost 15 → USAGE_EXCEEDED, 5 left, nothing deducted.
    let (_, b) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 5 } }))
        .await;
    let r = spend(b.clone(), Some(15)).await;
    assert_eq!(
        (r["code"].clone(), r["credits"].clone()),
        (json!("USAGE_EXCEEDED"), json!(5))
    );
    assert_eq!(r["valid"], false);
    // remaining 0 + default cost → USAGE_EXCEEDED; cost 0 still VALID.
    let r = spend(a.clone(), None).await;
    assert_eq!(
        (r["code"].clone(), r["credits"].clone()),
        (json!("USAGE_EXCEEDED"), json!(0))
    );
    let r = spend(a.clone(), Some(0)).await;
    assert_eq!(
        (r["code"].clone(), r["credits"].clone()),
        (json!("VALID"), json!(0))
    );
    // Default cost is 1.
    let r = spend(b.clone(), None).await;
    assert_eq!(r["credits"], 4);
}

#[tokio::test]
async fn unlimited_keys_ignore_cost_and_show_no_credits() {
    let app = spawn_app().await;
    let api_id = app.create_api("unlimited").await;
    let (_, key) = app
        .create_key(&api_id, json!({ "credits": { "remaining": null } }))
        .await;
    let reply = app
        .call(
            "keys.verifyKey",
            json!({ "key": key, "credits": { "cost": 1000 } }),
        )
        .await;
    let data = reply.ok();
    assert_eq!(data["code"], "VALID");
    assert!(data.get("credits").is_none());
}

#[tokio::test]
async fn update_credits_set_increment_decrement() {
    let app = spawn_app().await;
    let api_id = app.create_api("update-credits").await;
    let (key_id, key) = app
        .create_key(
            &api_id,
            json!({ "credits": { "remaining": 10, "refill": { "interval": "daily", "amount": 10 } } }),
        )
        .await;
    let op = |operation: &str, value: serde_json::Value| json!({ "keyId": key_id, "operation": operation, "value": value });
    let r = app
        .call("keys.updateCredits", op("increment", json!(5)))
        .await;
    assert_eq!(
        r.ok(),
        &json!({ "remaining": 15, "refill": { "interval": "daily", "amount": 10 } })
    );
    let r = app
        .call("keys.updateCredits", op("decrement", json!(20)))
        .await;
    assert_eq!(r.ok()["remaining"], 0, "decrement clamps at zero");
    assert_eq!(app.verify(&key).await["code"], "USAGE_EXCEEDED");
    let r = app.call("keys.updateCredits", op("set", json!(3))).await;
    assert_eq!(r.ok()["remaining"], 3);
    assert_eq!(app.verify(&key).await["credits"], 2);

    let r = app.call("keys.updateCredits", op("set", json!(null))).await;
    assert_eq!(
        r.ok(),
        &json!({ "remaining": null }),
        "remaining is sent as null"
    );
    let data = app.verify(&key).await;
    assert_eq!(data["code"], "VALID");
    assert!(data.get("credits").is_none());
    let get = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert!(get.ok().get("credits").is_none());
}

#[tokio::test]
async fn update_credits_rejects_what_cannot_be_right() {
    let app = spawn_app().await;
    let api_id = app.create_api("credit-errors").await;
    let (unlimited, _) = app.create_key(&api_id, json!({})).await;
    let (limited, _) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 1 } }))
        .await;
    let call = |key: &str, body: serde_json::Value| {
        let mut body = body;
        body["keyId"] = json!(key);
        app.call("keys.updateCredits", body)
    };
    call(&unlimited, json!({ "operation": "increment", "value": 1 }))
        .await
        .invalid_at("body.operation");
    call(&limited, json!({ "operation": "increment" }))
        .await
        .invalid_at("body.value");
    call(&limited, json!({ "operation": "set" }))
        .await
        .invalid_at("body.value");
    call(&limited, json!({ "operation": "multiply", "value": 2 }))
        .await
        .invalid_at("body.operation");
    call(&limited, json!({ "operation": "set", "value": -1 }))
        .await
        .invalid_at("body.value");
    call(
        &limited,
        json!({ "operation": "increment", "value": i64::MAX }),
    )
    .await
    .invalid_at("body.operation");
    app.call(
        "keys.updateCredits",
        json!({ "keyId": "key_missing", "operation": "set", "value": 1 }),
    )
    .await
    .err(404);
}
