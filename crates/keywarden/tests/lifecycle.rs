//! The process as an operator sees it: first-start bootstrap, shutdown on SIGTERM, secrets
//! kept out of logs, and the root-key CLI working beside a running server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Launch, ROOT_KEY, ServerProcess, binary, call, poll_status};
use serde_json::json;

#[tokio::test]
async fn first_start_prints_a_generated_root_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(Launch {
        dir: dir.path(),
        bootstrap_key: None,
        extra_args: &[],
        envs: &[],
    });
    let stderr = server.stderr_text();
    let key = stderr
        .split_whitespace()
        .find(|w| w.starts_with("kw_root_"))
        .unwrap_or_else(|| panic!("no root key printed:\n{stderr}"))
        .to_owned();
    assert!(stderr.contains("will not be shown again"), "{stderr}");
    assert!(keywarden_core::key_format::has_valid_checksum(&key));

    let client = common::http_client();
    let (status, _) = call(
        &client,
        &server,
        &key,
        "apis.createApi",
        json!({ "name": "first" }),
    )
    .await;
    assert_eq!(status, 200, "the printed key is a working root key");
    assert_eq!(server.terminate().code(), Some(0));

    // Second start: nothing printed, and the environment variable is ignored.
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    assert!(
        !server.stderr_text().contains("kw_root_"),
        "{}",
        server.stderr_text()
    );
    let (status, _) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "x-api" }),
    )
    .await;
    assert_eq!(
        status, 401,
        "a bootstrap key given after the first start must not work"
    );
    let (status, _) = call(
        &client,
        &server,
        &key,
        "apis.createApi",
        json!({ "name": "again" }),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bootstrap_key_from_the_environment_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    let client = common::http_client();
    let (status, _) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "env" }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!server.stderr_text().contains(ROOT_KEY));
}

#[test]
fn a_short_bootstrap_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEYWARDEN_BOOTSTRAP_ROOT_KEY", "too-short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 24 characters"), "{stderr}");
}

#[test]
fn unknown_settings_in_the_config_file_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keywarden.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ndatabse_url = \"typo.db\"\n",
    )
    .unwrap();
    let output = Command::new(binary())
        .current_dir(dir.path())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("databse_url"), "{stderr}");
}

#[test]
fn bad_cluster_settings_stop_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let serve_with = |args: &[&str], envs: &[(&str, &str)]| {
        let output = Command::new(binary())
            .current_dir(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("KEYWARDEN_REDIS_URL")
            .env_remove("KEYWARDEN_DATABASE_URL")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let serve = |args: &[&str]| serve_with(args, &[]);
    // A brace would replace the workspace as the Redis Cluster hash tag.
    let stderr = serve_with(
        &["--redis", "redis://127.0.0.1:6379"],
        &[("KEYWARDEN_REDIS_PREFIX", "kw{x}")],
    );
    assert!(stderr.contains("redis_prefix"), "{stderr}");
    let stderr = serve(&[
        "--redis",
        "redis://127.0.0.1:6379",
        "--redis-fault-mode",
        "sometimes",
    ]);
    assert!(stderr.contains("redis_fault_mode"), "{stderr}");
    let stderr = serve(&["--redis", "http://not-redis"]);
    assert!(stderr.contains("Redis URL"), "{stderr}");
    // A PostgreSQL that does not answer is an error at start, naming neither URL nor password.
    let stderr = serve(&["--database", "postgres://kw:hunter2@127.0.0.1:1/kw"]);
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    // Usage recording that could never write, or never take an event.
    let stderr = serve_with(&[], &[("KEYWARDEN_USAGE_QUEUE_CAPACITY", "0")]);
    assert!(stderr.contains("usage_queue_capacity"), "{stderr}");
    let stderr = serve_with(&[], &[("KEYWARDEN_USAGE_FLUSH_INTERVAL_MS", "0")]);
    assert!(stderr.contains("usage_flush_interval_ms"), "{stderr}");
    let stderr = serve_with(&[], &[("KEYWARDEN_RECORD_VERIFICATIONS", "sometimes")]);
    // Figment names environment keys in capitals.
    assert!(
        stderr.to_lowercase().contains("record_verifications"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_finishes_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(Launch::in_dir(dir.path()));
    let client = common::http_client();
    let (_, api) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "term" }),
    )
    .await;
    let api_id = api["data"]["apiId"].as_str().unwrap().to_owned();

    // Requests in flight when the signal arrives either complete with 200 or were never
    // accepted (connection refused); none fails half-way.
    let url = server.url("/v2/keys.createKey");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let (client, url, api_id) = (client.clone(), url.clone(), api_id.clone());
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(ROOT_KEY)
                    .json(&json!({ "apiId": api_id }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    for task in tasks {
        if let Ok(status) = task.await.unwrap() {
            assert_eq!(status, 200);
        }
    }
    assert!(
        server.stderr_text().contains("\"stopped\""),
        "{}",
        server.stderr_text()
    );
}

#[tokio::test]
async fn logs_never_contain_keys() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch {
        dir: dir.path(),
        bootstrap_key: Some(ROOT_KEY),
        extra_args: &[],
        envs: &[],
    });
    let client = common::http_client();
    let (_, api) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "logs" }),
    )
    .await;
    let api_id = api["data"]["apiId"].as_str().unwrap().to_owned();
    let (_, created) = call(
        &client,
        &server,
        ROOT_KEY,
        "keys.createKey",
        json!({ "apiId": api_id }),
    )
    .await;
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    let key_id = created["data"]["keyId"].as_str().unwrap().to_owned();
    call(
        &client,
        &server,
        ROOT_KEY,
        "keys.verifyKey",
        json!({ "key": key }),
    )
    .await;
    call(
        &client,
        &server,
        ROOT_KEY,
        "keys.whoami",
        json!({ "key": key }),
    )
    .await;
    let (_, rerolled) = call(
        &client,
        &server,
        ROOT_KEY,
        "keys.rerollKey",
        json!({ "keyId": key_id, "expiration": 0 }),
    )
    .await;
    let new_key = rerolled["data"]["key"].as_str().unwrap().to_owned();
    call(
        &client,
        &server,
        "kw_root_wrong_key_for_the_log_test",
        "keys.verifyKey",
        json!({ "key": key }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = server.stderr_text();
    assert!(logs.contains(&key_id), "ids are logged: {logs}");
    for secret in [
        key.as_str(),
        new_key.as_str(),
        ROOT_KEY,
        "kw_root_wrong_key_for_the_log_test",
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
}

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    keywarden(dir, "root-key", args)
}

fn keywarden(dir: &std::path::Path, group: &str, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .current_dir(dir)
        .arg(group)
        .args(args)
        .env_remove("KEYWARDEN_DATABASE_URL")
        .output()
        .unwrap()
}

#[tokio::test]
async fn root_key_cli_creates_lists_and_revokes_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    let client = common::http_client();

    let created = cli(
        dir.path(),
        &[
            "create",
            "--permission",
            "api.*.create_api",
            "--permission",
            "api.*.read_api",
            "--name",
            "deployer",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("kw_root_"), "{token}");

    // The server picks the new key up by itself.
    let status = poll_status(
        &client,
        &server,
        &token,
        "apis.createApi",
        json!({ "name": "by-cli" }),
        |s| s == 200,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &client,
        &server,
        &token,
        "keys.verifyKey",
        json!({ "key": "x" }),
    )
    .await;
    assert_eq!(status, 403, "only the permissions given");

    let listed = cli(dir.path(), &["list"]);
    assert!(listed.status.success());
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains("deployer") && listing.contains("api.*.create_api"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "list shows no secrets");
    assert!(!listing.contains(ROOT_KEY));
    let id = listing
        .lines()
        .find(|l| l.contains("deployer"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();

    let revoked = cli(dir.path(), &["revoke", &id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let status = poll_status(
        &client,
        &server,
        &token,
        "apis.createApi",
        json!({ "name": "after" }),
        |s| s == 401,
    )
    .await;
    assert_eq!(
        status, 401,
        "a revoked root key stops working within seconds"
    );
    assert!(
        !cli(dir.path(), &["revoke", &id]).status.success(),
        "revoking twice fails"
    );
    assert!(
        !cli(dir.path(), &["create", "--permission", "api.*.fly"])
            .status
            .success(),
        "unknown permissions are refused"
    );
}

#[tokio::test]
async fn workspace_cli_creates_a_tenant_whose_root_key_sees_only_its_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    let client = common::http_client();
    // An API in the bootstrap workspace.
    let (status, body) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "first-tenant" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let first_api = body["data"]["apiId"].as_str().unwrap().to_owned();

    let created = keywarden(dir.path(), "workspace", &["create", "--name", "acme"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("kw_root_"), "{token}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("printed below once"));

    // The new tenant's key works once the server has picked it up, and holds everything there.
    let status = poll_status(
        &client,
        &server,
        &token,
        "apis.createApi",
        json!({ "name": "acme-api" }),
        |s| s == 200,
    )
    .await;
    assert_eq!(status, 200);
    // The other tenant's API behaves as if it did not exist.
    let (status, body) = call(
        &client,
        &server,
        &token,
        "apis.getApi",
        json!({ "apiId": first_api }),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let listed = keywarden(dir.path(), "workspace", &["list"]);
    assert!(listed.status.success());
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(listing.contains("\tacme\t"), "{listing}");
    assert!(!listing.contains(&token));
    drop(server);
}
