//! The standalone limiter: window numbers, exactness under concurrency, all-or-nothing
//! batches, overrides and namespaces.

use serde_json::{Value, json};

use crate::helpers::{ROOT_KEY, TestApp, TestClock, spawn_app};

const MINUTE: i64 = 60_000;

async fn limit(app: &TestApp, namespace: &str, identifier: &str, limit: i64, cost: i64) -> Value {
    app.call(
        "ratelimit.limit",
        json!({
            "namespace": namespace, "identifier": identifier,
            "limit": limit, "duration": MINUTE, "cost": cost
        }),
    )
    .await
    .ok()
    .clone()
}

#[tokio::test]
async fn the_sliding_window_gives_unkeys_numbers() {
    let app = spawn_app().await;
    // The test clock starts on a minute boundary.
    assert_eq!(TestClock::START % MINUTE, 0);
    let window_end = TestClock::START + MINUTE;
    for remaining in [2, 1, 0] {
        let r = limit(&app, "api", "user_1", 3, 1).await;
        assert_eq!(r["success"], true);
        assert_eq!(r["limit"], 3);
        assert_eq!(r["remaining"], remaining);
        assert_eq!(r["reset"], window_end);
        assert!(r.get("overrideId").is_none());
    }
    let denied = limit(&app, "api", "user_1", 3, 1).await;
    assert_eq!(denied["success"], false);
    assert_eq!(denied["remaining"], 0);

    // At the start of the next window the previous one still counts in full: 3 of 3.
    app.clock.advance(MINUTE);
    let r = limit(&app, "api", "user_1", 3, 1).await;
    assert_eq!(r["success"], false);
    assert_eq!(r["reset"], window_end + MINUTE);
    // Half-way through, it counts half: floor(3 × 0.5) = 1, so two more calls fit.
    app.clock.advance(MINUTE / 2);
    assert_eq!(limit(&app, "api", "user_1", 3, 1).await["remaining"], 1);
    assert_eq!(limit(&app, "api", "user_1", 3, 1).await["remaining"], 0);
    assert_eq!(limit(&app, "api", "user_1", 3, 1).await["success"], false);
    // Two windows later nothing of the past counts.
    app.clock.advance(2 * MINUTE);
    assert_eq!(limit(&app, "api", "user_1", 3, 1).await["remaining"], 2);
    // Identifiers and namespaces are counted separately.
    assert_eq!(limit(&app, "api", "user_2", 3, 1).await["remaining"], 2);
    assert_eq!(limit(&app, "other", "user_1", 3, 1).await["remaining"], 2);
}

#[tokio::test]
async fn cost_weighs_a_call_and_denials_consume_nothing() {
    let app = spawn_app().await;
    assert_eq!(limit(&app, "api", "u", 10, 4).await["remaining"], 6);
    // More than is left: denied, and nothing is taken.
    let denied = limit(&app, "api", "u", 10, 7).await;
    assert_eq!(denied["success"], false);
    assert_eq!(denied["remaining"], 6);
    // Cost 0 checks without spending.
    let peek = limit(&app, "api", "u", 10, 0).await;
    assert_eq!(
        (peek["success"].clone(), peek["remaining"].clone()),
        (json!(true), json!(6))
    );
    assert_eq!(limit(&app, "api", "u", 10, 6).await["remaining"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_calls_on_a_limit_of_fifty_admit_exactly_fifty() {
    let app = spawn_app().await;
    let url = format!("{}/v2/ratelimit.limit", app.base_url);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (app.client.clone(), url.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(ROOT_KEY)
                    .json(&json!({
                        "namespace": "burst", "identifier": "user_1",
                        "limit": 50, "duration": MINUTE
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let body: Value = response.json().await.unwrap();
                body["data"]["success"].as_bool().unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.unwrap());
    }
    assert_eq!(admitted, 50);
}

#[tokio::test]
async fn multi_limit_counts_all_or_nothing() {
    let app = spawn_app().await;
    // Use up "tight" so the batch below fails on it.
    limit(&app, "api", "tight", 1, 1).await;
    let batch = app
        .call(
            "ratelimit.multiLimit",
            json!([
                { "namespace": "api", "identifier": "roomy", "limit": 10, "duration": MINUTE },
                { "namespace": "api", "identifier": "tight", "limit": 1, "duration": MINUTE },
                { "namespace": "uploads", "identifier": "roomy", "limit": 5, "duration": MINUTE, "cost": 2 }
            ]),
        )
        .await;
    let data = batch.ok();
    assert_eq!(data["passed"], false);
    let limits = data["limits"].as_array().unwrap();
    assert_eq!(limits.len(), 3);
    assert_eq!(limits[0]["namespace"], "api");
    assert_eq!(limits[0]["identifier"], "roomy");
    assert_eq!(limits[0]["passed"], true);
    assert_eq!(limits[1]["passed"], false);
    assert_eq!(limits[2]["namespace"], "uploads");
    // The limits that passed were not counted.
    assert_eq!(limit(&app, "api", "roomy", 10, 0).await["remaining"], 10);
    assert_eq!(limit(&app, "uploads", "roomy", 5, 0).await["remaining"], 5);

    // A batch that passes counts every limit.
    let batch = app
        .call(
            "ratelimit.multiLimit",
            json!([
                { "namespace": "api", "identifier": "roomy", "limit": 10, "duration": MINUTE },
                { "namespace": "uploads", "identifier": "roomy", "limit": 5, "duration": MINUTE, "cost": 2 }
            ]),
        )
        .await;
    assert_eq!(batch.ok()["passed"], true);
    assert_eq!(batch.ok()["limits"][0]["remaining"], 9);
    assert_eq!(batch.ok()["limits"][1]["remaining"], 3);
    assert_eq!(limit(&app, "uploads", "roomy", 5, 0).await["remaining"], 3);
}

#[tokio::test]
async fn overrides_replace_the_limit_exact_before_wildcard() {
    let app = spawn_app().await;
    let set = |identifier: &'static str, limit: i64| {
        app.call(
            "ratelimit.setOverride",
            json!({ "namespace": "api", "identifier": identifier, "limit": limit, "duration": MINUTE }),
        )
    };
    let wildcard = set("premium_*", 100).await.ok()["overrideId"]
        .as_str()
        .unwrap()
        .to_owned();
    let exact = set("premium_vip", 1000).await.ok()["overrideId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(wildcard.starts_with("rlor_") && exact.starts_with("rlor_"));
    set("banned_user", 0).await.ok();

    let r = limit(&app, "api", "premium_joe", 5, 1).await;
    assert_eq!(
        (r["limit"].clone(), r["remaining"].clone()),
        (json!(100), json!(99))
    );
    assert_eq!(r["overrideId"], wildcard.as_str());
    let r = limit(&app, "api", "premium_vip", 5, 1).await;
    assert_eq!(r["limit"], 1000);
    assert_eq!(r["overrideId"], exact.as_str());
    let r = limit(&app, "api", "free_user", 5, 1).await;
    assert_eq!(r["limit"], 5);
    assert!(r.get("overrideId").is_none());
    // A limit of 0 blocks.
    let r = limit(&app, "api", "banned_user", 5, 1).await;
    assert_eq!(r["success"], false);
    assert_eq!(r["limit"], 0);

    // Setting again updates in place, keeping the id.
    assert_eq!(
        set("premium_*", 200).await.ok()["overrideId"],
        wildcard.as_str()
    );
    let got = app
        .call(
            "ratelimit.getOverride",
            json!({ "namespace": "api", "identifier": "premium_*" }),
        )
        .await;
    assert_eq!(
        got.ok(),
        &json!({ "overrideId": wildcard, "duration": MINUTE, "identifier": "premium_*", "limit": 200 })
    );
    assert_eq!(limit(&app, "api", "premium_ann", 5, 1).await["limit"], 200);

    // Deleting the exact override lets the wildcard apply.
    app.call(
        "ratelimit.deleteOverride",
        json!({ "namespace": "api", "identifier": "premium_vip" }),
    )
    .await
    .ok();
    assert_eq!(limit(&app, "api", "premium_vip", 5, 1).await["limit"], 200);
    app.call(
        "ratelimit.getOverride",
        json!({ "namespace": "api", "identifier": "premium_vip" }),
    )
    .await
    .err(404);
    app.call(
        "ratelimit.deleteOverride",
        json!({ "namespace": "api", "identifier": "premium_vip" }),
    )
    .await
    .err(404);
}

#[tokio::test]
async fn overrides_are_listed_ten_to_a_page_by_default() {
    let app = spawn_app().await;
    for i in 0..12 {
        app.call(
            "ratelimit.setOverride",
            json!({ "namespace": "many", "identifier": format!("user_{i}"), "limit": i, "duration": MINUTE }),
        )
        .await
        .ok();
    }
    let first = app
        .call("ratelimit.listOverrides", json!({ "namespace": "many" }))
        .await;
    assert_eq!(first.ok().as_array().unwrap().len(), 10);
    let cursor = first.body["pagination"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.body["pagination"]["hasMore"], true);
    let rest = app
        .call(
            "ratelimit.listOverrides",
            json!({ "namespace": "many", "cursor": cursor }),
        )
        .await;
    assert_eq!(rest.ok().as_array().unwrap().len(), 2);
    assert!(rest.body["pagination"].get("cursor").is_none());
    let mut identifiers: Vec<String> = first
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .chain(rest.ok().as_array().unwrap())
        .map(|o| o["identifier"].as_str().unwrap().to_owned())
        .collect();
    identifiers.sort();
    identifiers.dedup();
    assert_eq!(identifiers.len(), 12);
}

#[tokio::test]
async fn namespaces_are_created_on_first_use_by_those_who_may() {
    let app = spawn_app().await;
    // Reads of a namespace that does not exist are 404s and create nothing.
    app.call("ratelimit.listOverrides", json!({ "namespace": "nowhere" }))
        .await
        .err(404);
    app.call(
        "ratelimit.getOverride",
        json!({ "namespace": "nowhere", "identifier": "x" }),
    )
    .await
    .err(404);

    let limiter = app.root_key_with(&["ratelimit.*.limit"]).await;
    let body = json!({ "namespace": "fresh", "identifier": "u", "limit": 1, "duration": MINUTE });
    let denied = app.call_as(&limiter, "ratelimit.limit", body.clone()).await;
    let error = denied.err(403);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("ratelimit.*.create_namespace"),
        "{}",
        denied.body
    );
    // Once it exists, limiting is enough.
    app.call("ratelimit.limit", body.clone()).await.ok();
    let r = app.call_as(&limiter, "ratelimit.limit", body).await;
    assert_eq!(
        r.ok()["success"],
        false,
        "the first call used the only slot"
    );

    // Another workspace's namespace of the same name is its own.
    let (_, other) = app.other_workspace().await;
    let r = app
        .call_as(
            &other,
            "ratelimit.limit",
            json!({ "namespace": "fresh", "identifier": "u", "limit": 1, "duration": MINUTE }),
        )
        .await;
    assert_eq!(r.ok()["success"], true);
}

#[tokio::test]
async fn limiter_input_is_checked() {
    let app = spawn_app().await;
    let good = json!({ "namespace": "n", "identifier": "i", "limit": 1, "duration": MINUTE });
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (operation, body, location) in [
        (
            "ratelimit.limit",
            with("duration", json!(999)),
            "body.duration",
        ),
        (
            "ratelimit.limit",
            with("duration", json!(2_592_000_001_i64)),
            "body.duration",
        ),
        ("ratelimit.limit", with("limit", json!(0)), "body.limit"),
        ("ratelimit.limit", with("cost", json!(-1)), "body.cost"),
        (
            "ratelimit.limit",
            with("namespace", json!("")),
            "body.namespace",
        ),
        (
            "ratelimit.limit",
            with("identifier", json!("x".repeat(513))),
            "body.identifier",
        ),
        ("ratelimit.limit", json!({}), "body.namespace"),
        ("ratelimit.multiLimit", json!([]), "body"),
        (
            "ratelimit.multiLimit",
            json!([good.clone(), with("limit", json!(0))]),
            "body[1].limit",
        ),
        (
            "ratelimit.setOverride",
            with("limit", json!(-1)),
            "body.limit",
        ),
        (
            "ratelimit.listOverrides",
            json!({ "namespace": "n", "limit": 0 }),
            "body.limit",
        ),
    ] {
        app.call(operation, body).await.invalid_at(location);
    }
    let too_many: Vec<Value> = (0..101).map(|_| good.clone()).collect();
    app.call("ratelimit.multiLimit", json!(too_many))
        .await
        .invalid_at("body");
    // An object where an array belongs is a 400 too.
    assert_eq!(app.call("ratelimit.multiLimit", good).await.status, 400);
}
