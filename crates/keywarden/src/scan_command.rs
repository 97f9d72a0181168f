//! `keywarden scan PATH…`: finds Keywarden keys in files and git history, prints where with
//! the key masked, optionally asks a server which are live and reports those as leaked.
//!
//! Exit codes make it usable as a pre-commit hook and in CI: 0 nothing found, 1 keys found,
//! 2 the scan (or a server call) failed.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use keywarden_core::key_scan::mask;
use keywarden_core::leak::MAX_CHECK_KEYS;
use serde_json::{Value, json};

use crate::cli::ScanArgs;
use crate::scan_sources::{Finding, is_git_repository, scan_history, scan_path};

const ROOT_KEY_ENV: &str = "KEYWARDEN_ROOT_KEY";

/// What the server said about one key.
#[derive(Debug, Clone, Default)]
struct Status {
    live: bool,
    /// What `leaks.reportKey` did (`revoked`, `disabled`, `flagged`), with `--revoke`.
    action: Option<String>,
}

pub async fn run(args: ScanArgs) -> ExitCode {
    match scan(&args).await {
        Ok(found) if found => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Scans, prints the findings and returns whether there were any.
async fn scan(args: &ScanArgs) -> anyhow::Result<bool> {
    let mut findings = Vec::new();
    for path in &args.paths {
        scan_path(path, &mut findings)?;
        if !args.no_history && path.is_dir() && is_git_repository(path) {
            scan_history(path, &mut findings)?;
        }
    }
    let statuses = match &args.check {
        Some(url) => {
            let server = Server::new(url, &root_key(args)?);
            let mut statuses = server.check(&findings).await?;
            if args.revoke {
                server.report(&mut statuses).await?;
            }
            Some(statuses)
        }
        None => None,
    };
    for finding in &findings {
        let status = statuses.as_ref().and_then(|s| s.get(&finding.key));
        let note = match status {
            None => String::new(),
            Some(Status {
                action: Some(action),
                ..
            }) => format!(" [live, {action}]"),
            Some(Status { live: true, .. }) => " [live]".into(),
            Some(Status { live: false, .. }) => " [not live]".into(),
        };
        println!("{}: {}{note}", finding.location, mask(&finding.key));
    }
    if !findings.is_empty() {
        let live = statuses
            .as_ref()
            .map(|s| s.values().filter(|s| s.live).count());
        let live = live.map_or(String::new(), |n| format!(", {n} live"));
        eprintln!(
            "keywarden scan: {} Keywarden key(s) found{live}",
            findings.len()
        );
    }
    Ok(!findings.is_empty())
}

/// The root key from `--root-key-file` or `KEYWARDEN_ROOT_KEY`.
fn root_key(args: &ScanArgs) -> anyhow::Result<String> {
    let key = match &args.root_key_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        None => std::env::var(ROOT_KEY_ENV).unwrap_or_default(),
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        anyhow::bail!("--check needs a root key: set {ROOT_KEY_ENV} or pass --root-key-file");
    }
    Ok(key)
}

/// A Keywarden server, called with a root key.
struct Server {
    client: reqwest::Client,
    base: String,
    root_key: String,
}

impl Server {
    fn new(url: &str, root_key: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_owned(),
            root_key: root_key.to_owned(),
        }
    }

    async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}/v2/{operation}", self.base))
            .bearer_auth(&self.root_key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{operation}: the answer is not JSON"))?;
        if !status.is_success() {
            let detail = body["error"]["detail"].as_str().unwrap_or("no detail");
            anyhow::bail!("{operation} answered {status}: {detail}");
        }
        Ok(body["data"].clone())
    }

    /// Liveness of each distinct key found.
    async fn check(&self, findings: &[Finding]) -> anyhow::Result<HashMap<String, Status>> {
        let mut keys: Vec<&str> = findings.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut statuses = HashMap::new();
        for chunk in keys.chunks(MAX_CHECK_KEYS) {
            let data = self
                .call("leaks.checkKeys", json!({ "keys": chunk }))
                .await?;
            let answers = data
                .as_array()
                .filter(|a| a.len() == chunk.len())
                .context("leaks.checkKeys answered with the wrong number of items")?;
            for (key, answer) in chunk.iter().zip(answers) {
                let status = Status {
                    live: answer["live"].as_bool().unwrap_or(false),
                    action: None,
                };
                statuses.insert((*key).to_owned(), status);
            }
        }
        Ok(statuses)
    }

    /// Reports every live key as leaked; the workspace's policy decides what happens.
    async fn report(&self, statuses: &mut HashMap<String, Status>) -> anyhow::Result<()> {
        for (key, status) in statuses.iter_mut().filter(|(_, s)| s.live) {
            let data = self
                .call(
                    "leaks.reportKey",
                    json!({ "key": key, "source": "keywarden scan" }),
                )
                .await?;
            status.action = data["action"].as_str().map(str::to_owned);
        }
        Ok(())
    }
}
