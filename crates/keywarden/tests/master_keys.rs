//! Master keys as an operator uses them: generated with the CLI, given in
//! `KEYWARDEN_MASTER_KEYS`, rotated with `keywarden master-key rotate`, and refused at startup
//! when they do not open the store's data keys.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Launch, ROOT_KEY, ServerProcess, binary, call};
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
        &common::http_client(),
        server,
        ROOT_KEY,
        "keys.getKey",
        json!({ "keyId": key_id, "decrypt": true }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["plaintext"].as_str().unwrap().to_owned()
}

/// Runs `keywarden serve` expecting it to refuse to start; returns its stderr.
fn refused_start(dir: &Path, master_keys: &str) -> String {
    let mut child = Command::new(binary())
        .current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEYWARDEN_DATABASE_URL")
        .env("KEYWARDEN_BOOTSTRAP_ROOT_KEY", ROOT_KEY)
        .env("KEYWARDEN_MASTER_KEYS", master_keys)
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
    let client = common::http_client();
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
    for material in [&old, &new] {
        let secret = material.split_once(':').unwrap().1;
        assert!(!printed.contains(secret));
    }

    let mut server = start(dir.path(), &new);
    assert_eq!(plaintext_of(&server, &key_id).await, key);
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
