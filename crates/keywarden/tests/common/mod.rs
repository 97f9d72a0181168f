//! Runs the built `keywarden` binary as a user would: a child process with its own store
//! directory, listening on an OS-chosen port read back from its JSON log.

#![allow(dead_code)]

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A root key long enough for `KEYWARDEN_BOOTSTRAP_ROOT_KEY`.
pub const ROOT_KEY: &str = "kw_root_test_bootstrap_key_0123456789";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keywarden"))
}

/// A running server process.
pub struct ServerProcess {
    child: Child,
    pub base_url: String,
    /// Every line the process wrote to stderr so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// Every line the process wrote to stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

/// How to start a server.
pub struct Launch<'a> {
    pub dir: &'a Path,
    /// `Some` sets `KEYWARDEN_BOOTSTRAP_ROOT_KEY`.
    pub bootstrap_key: Option<&'a str>,
    pub extra_args: &'a [&'a str],
    /// Environment variables set for the process.
    pub envs: &'a [(&'a str, &'a str)],
}

impl<'a> Launch<'a> {
    pub fn in_dir(dir: &'a Path) -> Self {
        Self {
            dir,
            bootstrap_key: Some(ROOT_KEY),
            extra_args: &[],
            envs: &[],
        }
    }
}

impl ServerProcess {
    /// Starts `keywarden serve` on port 0 with the store `keywarden.db` in `launch.dir`.
    pub fn start(launch: Launch<'_>) -> Self {
        let mut command = Command::new(binary());
        command
            .current_dir(launch.dir)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        // JSON logs unless the test picks a format (the address is read from either).
        if !launch.extra_args.contains(&"--log-format") {
            command.args(["--log-format", "json"]);
        }
        command
            .args(launch.extra_args)
            .env_remove("KEYWARDEN_LISTEN")
            .env_remove("KEYWARDEN_DATABASE_URL")
            .env_remove("KEYWARDEN_BOOTSTRAP_ROOT_KEY")
            .env_remove("KEYWARDEN_REDIS_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.envs(launch.envs.iter().copied());
        if let Some(key) = launch.bootstrap_key {
            command.env("KEYWARDEN_BOOTSTRAP_ROOT_KEY", key);
        }
        let mut child = command.spawn().expect("start keywarden");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stdout_sink = Arc::clone(&stdout_lines);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                stdout_sink.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = listening_address(&line) {
                    let _ = address_tx.send(address);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "keywarden did not report its address; stderr:\n{}",
                    lines.lock().unwrap().join("\n")
                );
            }
        };
        Self {
            child,
            base_url: format!("http://{address}"),
            stderr: lines,
            stdout: stdout_lines,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Kills the process without warning (SIGKILL), as a crash would.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reap");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "keywarden did not exit after SIGTERM"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_address(line: &str) -> Option<String> {
    // Text format: `… listening address=127.0.0.1:1234`.
    if let Some((_, rest)) = line.split_once(" listening address=") {
        return rest.split_whitespace().next().map(str::to_owned);
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    Some(value.get("address")?.as_str()?.to_owned())
}

/// POSTs `body` to `/v2/<operation>` with the root key; returns status and JSON body.
pub async fn call(
    client: &reqwest::Client,
    server: &ServerProcess,
    root_key: &str,
    operation: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client
        .post(server.url(&format!("/v2/{operation}")))
        .bearer_auth(root_key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let json = response.json().await.expect("json body");
    (status, json)
}

/// Repeats a call until its status satisfies `done`, for up to 15 s, and returns the last
/// status. Root keys created or revoked by the CLI reach a running server by polling, so
/// tests wait for the change rather than sleeping a fixed time.
pub async fn poll_status(
    client: &reqwest::Client,
    server: &ServerProcess,
    root_key: &str,
    operation: &str,
    body: serde_json::Value,
    done: impl Fn(u16) -> bool,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = call(client, server, root_key, operation, body.clone()).await;
        if done(status) || Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An HTTP client for talking to the server. reqwest uses rustls without a built-in crypto
/// provider, so the process-wide one is installed first.
pub fn http_client() -> reqwest::Client {
    keywarden_server::tls::install_crypto_provider();
    reqwest::Client::new()
}
