//! Redis servers that a test starts for itself, on free ports and in a temporary directory, and
//! stops when it ends, whether it passed or not: a three-node Redis Cluster, or one standalone
//! server to compare it with. They never touch the shared Redis on 6379.
//!
//! `redis-server` (7.0 or later, for `cluster-port`) and `redis-cli` must be on `PATH`; without
//! them the tests that need them fail, like the other tests without a Redis.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How many sets of ports a server is tried on: another process may take a free port between
/// the moment it is found and the moment the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// One `redis-server` process, killed when dropped.
pub struct RedisServer {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl RedisServer {
    /// Starts a server in a directory of its own under `parent`, on ports nobody uses, and
    /// waits until it answers.
    fn start(parent: &Path, cluster: bool) -> Self {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let dir = parent.join(format!("node-{port}"));
            std::fs::create_dir_all(&dir).expect("create a node directory");
            let log = dir.join("redis.log");
            let mut command = Command::new("redis-server");
            command
                .arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log)
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
            if cluster {
                // The cluster bus gets a free port of its own rather than port + 10000, which
                // may be taken or past 65535.
                command
                    .args(["--cluster-enabled", "yes"])
                    .arg("--cluster-config-file")
                    .arg(parent.join(format!("nodes-{port}.conf")))
                    .arg("--cluster-port")
                    .arg(free_port().to_string());
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(dir.join("stderr")).expect("create a stderr file"))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("could not run redis-server ({e}): these tests need it on PATH")
                });
            let mut server = Self { port, child, log };
            if server.wait_until_up(Duration::from_secs(10)) {
                return server;
            }
            failures.push(format!("port {port}: {}", server.log_tail()));
        }
        panic!("redis-server did not come up: {failures:#?}");
    }

    /// A plain connection to this server alone.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("redis-server on {} unreachable: {e}", self.port))
    }

    /// Stops the process (SIGSTOP) with its connections open: a hung node.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether it answers PING before `timeout`; false as soon as the process has exited
    /// (its port was taken, say).
    fn wait_until_up(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).expect("valid URL");
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
            if pong.is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// A Redis Cluster of three primaries, no replicas, each node owning a third of the slots.
pub struct LocalCluster {
    // Declared before the directory, so the servers are stopped before it is removed.
    nodes: Vec<RedisServer>,
    _dir: TempDir,
}

impl LocalCluster {
    /// Starts the nodes, joins them into a cluster and waits until every node reports it ok.
    /// Blocks: call it from `spawn_blocking` in async code, as [`LocalCluster::start`] does.
    fn start_blocking() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keywarden-redis-cluster-")
            .tempdir()
            .expect("create a temporary directory");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::start(dir.path(), true))
            .collect();
        let cluster = Self { nodes, _dir: dir };

        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|node| format!("127.0.0.1:{}", node.port)),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run redis-cli ({e}): these tests need it"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let info = Command::new("redis-cli")
                    .arg("-p")
                    .arg(node.port.to_string())
                    .args(["cluster", "info"])
                    .output()
                    .expect("run redis-cli cluster info");
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never reported cluster_state:ok",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    pub async fn start() -> Self {
        match tokio::task::spawn_blocking(Self::start_blocking).await {
            Ok(cluster) => cluster,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// The limiter's URL for this cluster, naming two of its three nodes: the client learns
    /// the third from them.
    pub fn url(&self) -> String {
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port
        )
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The keys each node holds under `prefix`, node by node, each list sorted.
    pub fn keys_by_node(&self, prefix: &str) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|node| {
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}:*"))
                    .query(&mut node.connection())
                    .expect("KEYS");
                keys.sort();
                keys
            })
            .collect()
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("CLUSTER KEYSLOT")
    }
}

/// One standalone server, not in cluster mode.
pub struct StandaloneRedis {
    server: RedisServer,
    _dir: TempDir,
}

impl StandaloneRedis {
    pub async fn start() -> Self {
        let started = tokio::task::spawn_blocking(|| {
            let dir = tempfile::Builder::new()
                .prefix("keywarden-redis-standalone-")
                .tempdir()
                .expect("create a temporary directory");
            let server = RedisServer::start(dir.path(), false);
            Self { server, _dir: dir }
        })
        .await;
        match started {
            Ok(redis) => redis,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.server.port)
    }
}
