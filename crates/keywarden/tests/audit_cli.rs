//! `keywarden audit`: the log of changes made with the command line, read back from the store
//! as text lines or JSON lines, filtered and limited.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn keywarden(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .current_dir(dir)
        .args(args)
        .env_remove("KEYWARDEN_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "keywarden {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn audit_shows_cli_changes_newest_first_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let created = keywarden(dir.path(), &["workspace", "create", "--name", "acme"]);
    let first_secret = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let listed = keywarden(dir.path(), &["workspace", "list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    let workspace = listed.split('\t').next().unwrap().to_owned();

    let ci = keywarden(
        dir.path(),
        &[
            "root-key",
            "create",
            "--permission",
            "api.*.read_api",
            "--name",
            "ci",
        ],
    );
    let ci_secret = String::from_utf8(ci.stdout).unwrap().trim().to_owned();
    let entries = json_lines(&keywarden(dir.path(), &["audit", "--json"]));
    let ci_id = entries[0]["targets"][0]["id"].as_str().unwrap().to_owned();
    keywarden(dir.path(), &["root-key", "revoke", &ci_id]);

    let entries = json_lines(&keywarden(dir.path(), &["audit", "--json"]));
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["root_key.revoke", "root_key.create", "root_key.create"]
    );
    for entry in &entries {
        assert_eq!(entry["actor"]["type"], "cli");
        assert_eq!(entry["workspaceId"], workspace.as_str());
        assert!(entry["requestId"].is_null());
    }
    assert_eq!(entries[0]["targets"][0]["id"], ci_id.as_str());
    assert_eq!(entries[1]["targets"][0]["name"], "ci");
    assert_eq!(entries[1]["changes"]["permissions"][0], "api.*.read_api");

    let text = keywarden(
        dir.path(),
        &[
            "audit",
            "--workspace",
            &workspace,
            "--action",
            "root_key.revoke",
        ],
    );
    let text = String::from_utf8(text.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let fields: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(
        fields[1..],
        ["cli", "root_key.revoke", &format!("root_key:{ci_id} (ci)")]
    );

    let limited = keywarden(dir.path(), &["audit", "--json", "--limit", "1"]);
    assert_eq!(json_lines(&limited).len(), 1);
    let later = keywarden(
        dir.path(),
        &["audit", "--json", "--since", "99999999999999"],
    );
    assert!(json_lines(&later).is_empty());

    let everything = keywarden(dir.path(), &["audit", "--json"]);
    let everything = String::from_utf8(everything.stdout).unwrap();
    assert!(!everything.contains(&first_secret) && !everything.contains(&ci_secret));
}

#[test]
fn audit_refuses_unknown_actions_and_times() {
    let dir = tempfile::tempdir().unwrap();
    keywarden(dir.path(), &["workspace", "create", "--name", "acme"]);
    for args in [
        &["audit", "--action", "key.explode"][..],
        &["audit", "--since", "yesterday"][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_keywarden"))
            .current_dir(dir.path())
            .args(args)
            .env_remove("KEYWARDEN_DATABASE_URL")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} succeeded");
    }
}
