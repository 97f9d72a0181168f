//! Credits are exact under concurrency: never overspent, never below zero.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_concurrent_verifies_spend_exactly_twenty_credits() {
    let app = spawn_app().await;
    let api_id = app.create_api("concurrent").await;
    let (key_id, key) = app
        .create_key(&api_id, json!({ "credits": { "remaining": 20 } }))
        .await;
    let url = format!("{}/v2/keys.verifyKey", app.base_url);
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (client, url, key) = (app.client.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(crate::helpers::ROOT_KEY)
                    .json(&json!({ "key": key }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let body: serde_json::Value = response.json().await.unwrap();
                body["data"].clone()
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let valid = results.iter().filter(|r| r["code"] == "VALID").count();
    let exceeded = results
        .iter()
        .filter(|r| r["code"] == "USAGE_EXCEEDED")
        .count();
    assert_eq!(valid, 20);
    assert_eq!(exceeded, 40);
    let mut seen: Vec<i64> = results
        .iter()
        .filter(|r| r["code"] == "VALID")
        .map(|r| r["credits"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..20).collect::<Vec<_>>(),
        "each spend saw its own balance"
    );
    let data = app.call("keys.getKey", json!({ "keyId": key_id })).await;
    assert_eq!(data.ok()["credits"]["remaining"], 0);
}
