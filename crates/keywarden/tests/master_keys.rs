//! Master keys as an operator uses them: generated with the CLI, given in
//! `KEYWARDEN_MASTER_KEYS`, rotated with `keywarden master-key rotate` (data keys and server
//! secrets alike), and refused at startup when they do not open the store's data keys or
//! sealed server secrets.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Launch, ROOT_KEY, ServerProcess, binary, call, http_client};
use serde_json::json;

fn generate(id: &str) -> String {
    let output = Command::new(binary())
        .args(["master-key", "generate", "--id", id])
        .output()
        .expect("run keywarden master-key generate");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn start(dir: &Path, master_keys: &str) -> ServerProcess {
    ServerProcess::start(Launch {
        dir,
        bootstrap_key: Some(ROOT_KEY),
        extra_args: &[],
        envs: &[("KEYWARDEN_MASTER_KEYS", master_keys)],
    })
}

async fn plaintext_of(server: &ServerProcess, key_id: &str) -> String {
    let (status, body) = call(
        &http_client(),
        server,
        ROOT_KEY,
        "keys.getKey",
        json!({ "keyId": key_id, "decrypt": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["plaintext"].as_str().unwrap().to_owned()
}

/// The key ids the server publishes for its tokens.
async fn published_kids(server: &ServerProcess) -> Vec<String> {
    let jwks: serde_json::Value = http_client()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Exchanges `key` for a token; returns the token.
async fn token_for(server: &ServerProcess, key: &str) -> String {
    let (status, body) = call(
        &http_client(),
        server,
        ROOT_KEY,
        "keys.exchangeToken",
        json!({ "key": key }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().unwrap().to_owned()
}

/// Runs `keywarden serve` expecting it to refuse to start; returns its stderr. An empty
/// `master_keys` means none.
fn refused_start(dir: &Path, master_keys: &str) -> String {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEYWARDEN_DATABASE_URL")
        .env_remove("KEYWARDEN_MASTER_KEYS")
        .env("KEYWARDEN_BOOTSTRAP_ROOT_KEY", ROOT_KEY);
    if !master_keys.is_empty() {
        command.env("KEYWARDEN_MASTER_KEYS", master_keys);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start keywarden");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keywarden started with master keys that do not fit the store");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_with_the_cli_retires_the_old_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (generate("old"), generate("new"));

    let mut server = start(dir.path(), &old);
    let client = http_client();
    let (_, api) = call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({ "name": "master-keys" }),
    )
    .await;
    let api = api["data"]["apiId"].as_str().unwrap().to_owned();
    let (status, created) = call(
        &client,
        &server,
        ROOT_KEY,
        "keys.createKey",
        json!({ "apiId": api, "recoverable": true }),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let key_id = created["data"]["keyId"].as_str().unwrap().to_owned();
    let key = created["data"]["key"].as_str().unwrap().to_owned();
    // Server secrets: the token signing key made at startup, and a webhook endpoint's secret.
    let (status, endpoint) = call(
        &client,
        &server,
        ROOT_KEY,
        "webhooks.createEndpoint",
        json!({ "url": "http://127.0.0.1:9/hook", "eventTypes": ["key.deleted"] }),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    token_for(&server, &key).await;
    let kids = published_kids(&server).await;
    assert!(server.terminate().success());

    let rotate = Command::new(binary())
        .current_dir(dir.path())
        .args(["master-key", "rotate"])
        .env_remove("KEYWARDEN_DATABASE_URL")
        .env("KEYWARDEN_MASTER_KEYS", format!("{new},{old}"))
        .output()
        .expect("run keywarden master-key rotate");
    let printed = String::from_utf8_lossy(&rotate.stdout);
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(
        printed.contains("1 data key(s) re-wrapped under master key 'new'"),
        "{printed}"
    );
    assert!(
        printed.contains(
            "2 server secret(s) (token signing keys, webhook secrets) sealed under master key \
             'new'"
        ),
        "{printed}"
    );
    for material in [&old, &new] {
        let secret = material.split_once(':').unwrap().1;
        assert!(!printed.contains(secret));
    }

    let mut server = start(dir.path(), &new);
    assert_eq!(plaintext_of(&server, &key_id).await, key);
    // The same signing key, opened with the new master key alone, still signs.
    assert_eq!(published_kids(&server).await, kids);
    token_for(&server, &key).await;
    assert!(server.terminate().success());

    // The retired key alone, or another key under the current id: refused at startup, with
    // the reason and without the key material.
    for wrong in [old.clone(), generate("new")] {
        let stderr = refused_start(dir.path(), &wrong);
        assert!(stderr.contains("master key"), "{stderr}");
        assert!(
            !stderr.contains(wrong.split_once(':').unwrap().1),
            "{stderr}"
        );
    }
}

#[test]
fn malformed_master_keys_are_refused_without_being_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let secretish = "c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
    let stderr = refused_start(dir.path(), &format!("mk1:{secretish}"));
    assert!(
        stderr.contains("invalid master key configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("mk1"), "{stderr}");
    assert!(!stderr.contains(secretish), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_server_secrets_are_announced_and_sealed_once_master_keys_come() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(Launch {
        dir: dir.path(),
        bootstrap_key: Some(ROOT_KEY),
        extra_args: &[],
        envs: &[],
    });
    let (status, endpoint) = call(
        &http_client(),
        &server,
        ROOT_KEY,
        "webhooks.createEndpoint",
        json!({ "url": "http://127.0.0.1:9/hook", "eventTypes": ["key.deleted"] }),
    )
    .await;
    assert_eq!(status, 200, "{endpoint}");
    let secret = endpoint["data"]["secret"].as_str().unwrap().to_owned();
    assert!(server.terminate().success());
    let output = format!(
        "{}\n{}",
        server.stderr_text(),
        server.stdout.lock().unwrap().join("\n")
    );
    assert!(output.contains("stored in plaintext"), "{output}");
    let db = || {
        let mut bytes = std::fs::read(dir.path().join("keywarden.db")).unwrap();
        bytes.extend(std::fs::read(dir.path().join("keywarden.db-wal")).unwrap_or_default());
        bytes
    };
    let holds = |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(
        holds(&db(), &secret),
        "without master keys the secret is plaintext"
    );

    // Master keys configured: the startup seals what was plaintext.
    let key = generate("mk1");
    let mut server = start(dir.path(), &key);
    // Serving, with the signing key it made before (a request also lets the server finish
    // installing its signal handler before the SIGTERM below).
    assert_eq!(published_kids(&server).await.len(), 1);
    let output = server.stderr_text() + &server.stdout.lock().unwrap().join("\n");
    assert!(!output.contains("stored in plaintext"), "{output}");
    assert!(server.terminate().success());

    // Now sealed: a server without master keys refuses to start, naming the one it needs.
    let stderr = refused_start(dir.path(), "");
    assert!(stderr.contains("master key 'mk1'"), "{stderr}");
    assert!(!stderr.contains(key.split_once(':').unwrap().1), "{stderr}");
}
