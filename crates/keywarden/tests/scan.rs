//! `keywarden scan`, run as a user would: real keys among near misses in a file tree, a key
//! that only survives in git history, and `--check` / `--revoke` against a running server.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Launch, ROOT_KEY, ServerProcess};
use keywarden_core::key_format::{ByteLength, KeyPrefix, generate};
use keywarden_core::key_scan::mask;
use serde_json::json;

fn new_key(prefix: Option<&str>) -> String {
    let prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap());
    generate(prefix.as_ref(), ByteLength::DEFAULT)
        .plaintext
        .expose()
        .to_owned()
}

fn scan(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keywarden"))
        .current_dir(dir)
        .arg("scan")
        .args(args)
        .env_remove("KEYWARDEN_ROOT_KEY")
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A copy of `key` with its last character changed: right shape, wrong checksum.
fn broken_checksum(key: &str) -> String {
    let mut broken = key.to_owned();
    let last = broken.pop().unwrap();
    broken.push(if last == 'z' { 'y' } else { 'z' });
    broken
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

#[test]
fn finds_exactly_the_real_keys_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let real_a = new_key(Some("sk_live"));
    let real_b = new_key(None);
    let real_c = new_key(Some("acme"));
    let lookalike = {
        // Base58 excludes 0, O, I and l: swap one in and the shape is gone.
        let mut k = new_key(Some("sk"));
        k.replace_range(5..6, "0");
        k
    };
    let wrong_prefix = new_key(Some("sk_live")).replacen("sk_live", "sk-live", 1);
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::write(
        root.join("app.env"),
        format!(
            "# settings\nDEBUG=1\nAPI_KEY={real_a}\nOLD_KEY={}\n",
            broken_checksum(&real_a)
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("src/deep/client.rs"),
        format!(
            "fn main() {{\n    let k = \"{real_b}\"; let bad = \"{lookalike}\";\n    \
             let w = \"{wrong_prefix}\";\n    let c = \"{}\";\n    let env = \"MY_VAR_{real_c}\";\n}}\n",
            broken_checksum(&new_key(Some("sk")))
        ),
    )
    .unwrap();
    // Not scanned: binary files and anything under .git.
    let mut binary = vec![0u8, 1, 2];
    binary.extend_from_slice(new_key(None).as_bytes());
    std::fs::write(root.join("image.bin"), binary).unwrap();
    let mut big = new_key(None).into_bytes();
    big.resize(11 * 1024 * 1024, b'\n');
    std::fs::write(root.join("dump.sql"), big).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), new_key(None)).unwrap();

    let output = scan(root, &[".", "--no-history"], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(
        lines,
        [
            format!("./app.env:3: {}", mask(&real_a)),
            format!("./src/deep/client.rs:2: {}", mask(&real_b)),
            format!("./src/deep/client.rs:5: {}", mask(&real_c)),
        ]
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("skipped ./dump.sql"),
        "{output:?}"
    );
    let all = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    for key in [&real_a, &real_b, &real_c] {
        assert!(!all.contains(key.as_str()), "a key was printed in full");
    }
    assert!(mask(&real_a).starts_with("sk_live_") && mask(&real_a).ends_with('…'));
}

#[test]
fn a_clean_tree_exits_zero_and_a_missing_path_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("README"),
        format!("nothing here but {}", broken_checksum(&new_key(None))),
    )
    .unwrap();
    let clean = scan(dir.path(), &["."], &[]);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    assert!(clean.stdout.is_empty());
    let missing = scan(dir.path(), &["no-such-dir"], &[]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
}

#[test]
fn a_key_removed_from_the_tree_is_found_in_git_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    let key = new_key(Some("sk_test"));
    std::fs::write(repo.join("config.env"), format!("A=1\nKEY={key}\n")).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "add config"]);
    let added = String::from_utf8(
        Command::new("git")
            .current_dir(repo)
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    std::fs::write(repo.join("config.env"), "A=1\n").unwrap();
    git(repo, &["commit", "-q", "-am", "remove the key"]);

    let files_only = scan(repo, &[".", "--no-history"], &[]);
    assert_eq!(files_only.status.code(), Some(0), "{files_only:?}");
    let output = scan(repo, &["."], &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        stdout_lines(&output),
        [format!("{added}:config.env:2: {}", mask(&key))]
    );
}

#[tokio::test]
async fn check_marks_live_keys_and_revoke_reports_them() {
    let server_dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(server_dir.path()));
    let client = common::http_client();
    let (_, api) = common::call(
        &client,
        &server,
        ROOT_KEY,
        "apis.createApi",
        json!({"name": "scanned"}),
    )
    .await;
    let api_id = api["data"]["apiId"].as_str().unwrap().to_owned();
    let (_, created) = common::call(
        &client,
        &server,
        ROOT_KEY,
        "keys.createKey",
        json!({"apiId": api_id, "prefix": "sk"}),
    )
    .await;
    let live = created["data"]["key"].as_str().unwrap().to_owned();
    let offline = new_key(Some("sk"));

    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("a.txt"), format!("{live}\n{offline}\n")).unwrap();
    let root_key_file = tree.path().join("root.key");
    std::fs::write(&root_key_file, format!("{ROOT_KEY}\n")).unwrap();

    let checked = scan(
        tree.path(),
        &["a.txt", "--check", &server.base_url],
        &[("KEYWARDEN_ROOT_KEY", ROOT_KEY)],
    );
    assert_eq!(checked.status.code(), Some(1), "{checked:?}");
    assert_eq!(
        stdout_lines(&checked),
        [
            format!("a.txt:1: {} [live]", mask(&live)),
            format!("a.txt:2: {} [not live]", mask(&offline)),
        ]
    );
    // Checking is not a verification and changes nothing.
    let (_, verified) = common::call(
        &client,
        &server,
        ROOT_KEY,
        "keys.verifyKey",
        json!({"key": live}),
    )
    .await;
    assert_eq!(verified["data"]["valid"], true);

    let no_key = scan(tree.path(), &["a.txt", "--check", &server.base_url], &[]);
    assert_eq!(no_key.status.code(), Some(2), "{no_key:?}");

    let revoked = scan(
        tree.path(),
        &[
            "a.txt",
            "--check",
            &server.base_url,
            "--revoke",
            "--root-key-file",
            root_key_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(revoked.status.code(), Some(1), "{revoked:?}");
    assert_eq!(
        stdout_lines(&revoked)[0],
        format!("a.txt:1: {} [live, revoked]", mask(&live))
    );
    let (_, verified) = common::call(
        &client,
        &server,
        ROOT_KEY,
        "keys.verifyKey",
        json!({"key": live}),
    )
    .await;
    assert_eq!(verified["data"]["valid"], false);
    let again = scan(
        tree.path(),
        &["a.txt", "--check", &server.base_url],
        &[("KEYWARDEN_ROOT_KEY", ROOT_KEY)],
    );
    assert_eq!(
        stdout_lines(&again)[0],
        format!("a.txt:1: {} [not live]", mask(&live))
    );
}
