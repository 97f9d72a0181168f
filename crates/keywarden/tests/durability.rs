//! An acknowledged write survives `kill -9`: keys, spent credits and changes are on disk
//! before their response is sent.

mod common;

use common::{Launch, ROOT_KEY, ServerProcess, call};
use serde_json::json;

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let client = common::http_client();
    let mut server = ServerProcess::start(Launch::in_dir(dir.path()));

    let (_, api) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "durable" }),
    )
    .await;
    let api_id = api["data"]["apiId"].as_str().unwrap().to_owned();
    let mut keys = Vec::new();
    for i in 0..20 {
        let (status, created) = call(
            &client,
            &server,
            ROOT_KEY,
            "keys.createKey",
            json!({ "apiId": api_id, "name": format!("k{i}"), "credits": { "remaining": 10 } }),
        )
        .await;
        assert_eq!(status, 200);
        keys.push((
            created["data"]["keyId"].as_str().unwrap().to_owned(),
            created["data"]["key"].as_str().unwrap().to_owned(),
        ));
    }
    // Spend 3 credits on the first key, disable the second, delete the third.
    for _ in 0..3 {
        let (_, v) = call(
            &client,
            &server,
            ROOT_KEY,
            "keys.verifyKey",
            json!({ "key": keys[0].1 }),
        )
        .await;
        assert_eq!(v["data"]["code"], "VALID");
    }
    call(
        &client,
        &server,
        ROOT_KEY,
        "keys.updateKey",
        json!({ "keyId": keys[1].0, "enabled": false }),
    )
    .await;
    call(
        &client,
        &server,
        ROOT_KEY,
        "keys.deleteKey",
        json!({ "keyId": keys[2].0 }),
    )
    .await;

    server.kill_hard();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));

    let verify = |key: String| {
        let (client, server) = (&client, &server);
        async move {
            let (status, body) = call(
                client,
                server,
                ROOT_KEY,
                "keys.verifyKey",
                json!({ "key": key }),
            )
            .await;
            assert_eq!(status, 200);
            body["data"].clone()
        }
    };
    let first = verify(keys[0].1.clone()).await;
    assert_eq!(first["code"], "VALID");
    assert_eq!(
        first["credits"], 6,
        "the three acknowledged spends were kept"
    );
    assert_eq!(verify(keys[1].1.clone()).await["code"], "DISABLED");
    assert_eq!(verify(keys[2].1.clone()).await["code"], "NOT_FOUND");
    for (i, (_, key)) in keys.iter().enumerate().skip(3) {
        let data = verify(key.clone()).await;
        assert_eq!(data["code"], "VALID", "key {i} was lost");
        assert_eq!(data["name"], format!("k{i}"));
    }
}
