//! Pagination: cursors to the last page, which has no cursor.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn listing_pages_through_every_key_and_stops() {
    let app = spawn_app().await;
    let api_id = app.create_api("paged").await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(app.create_key(&api_id, json!({})).await.0);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut body = json!({ "apiId": api_id, "limit": 3 });
        if let Some(cursor) = &cursor {
            body["cursor"] = json!(cursor);
        }
        let reply = app.call("apis.listKeys", body).await;
        let items = reply.ok().as_array().unwrap().clone();
        pages += 1;
        seen.extend(
            items
                .iter()
                .map(|k| k["keyId"].as_str().unwrap().to_owned()),
        );
        let pagination = &reply.body["pagination"];
        match pagination.get("cursor") {
            Some(next) => {
                assert_eq!(pagination["hasMore"], true);
                assert_eq!(items.len(), 3);
                cursor = Some(next.as_str().unwrap().to_owned());
            }
            None => {
                assert_eq!(pagination["hasMore"], false);
                break;
            }
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created, "every key once, in creation order");
}

#[tokio::test]
async fn an_exactly_full_last_page_has_no_cursor() {
    let app = spawn_app().await;
    let api_id = app.create_api("exact").await;
    for _ in 0..4 {
        app.create_key(&api_id, json!({})).await;
    }
    let first = app
        .call("apis.listKeys", json!({ "apiId": api_id, "limit": 2 }))
        .await;
    let cursor = first.body["pagination"]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let last = app
        .call(
            "apis.listKeys",
            json!({ "apiId": api_id, "limit": 2, "cursor": cursor }),
        )
        .await;
    assert_eq!(last.ok().as_array().unwrap().len(), 2);
    assert_eq!(last.body["pagination"], json!({ "hasMore": false }));
}

#[tokio::test]
async fn limits_are_bounded() {
    let app = spawn_app().await;
    let api_id = app.create_api("bounds").await;
    for limit in [0, 101, -1] {
        app.call("apis.listKeys", json!({ "apiId": api_id, "limit": limit }))
            .await
            .invalid_at("body.limit");
    }
    app.call("apis.listKeys", json!({ "apiId": api_id, "cursor": "" }))
        .await
        .invalid_at("body.cursor");
}
