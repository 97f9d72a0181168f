//! The binary starts on its embedded default store and answers.

mod common;

use common::{Launch, ServerProcess};

#[tokio::test]
async fn binary_starts_and_answers_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    let body: serde_json::Value = reqwest::get(server.url("/v2/liveness"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["message"], "OK");
    assert!(dir.path().join("keywarden.db").exists());
}
