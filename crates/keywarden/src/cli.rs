//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "keywarden",
    version,
    about = "A self-hosted API key service speaking the Unkey v2 API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage root keys directly in the store.
    #[command(subcommand)]
    RootKey(RootKeyCommand),
    /// Manage workspaces (tenants) directly in the store.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Copy a whole installation into an empty store (SQLite to PostgreSQL or back), checking
    /// row counts. Stop the servers writing to the source first.
    MigrateStore(MigrateStoreArgs),
    /// Show a workspace's audit log (admin changes), newest first.
    Audit(AuditArgs),
    /// Find Keywarden keys in files and git history (exit 0: none, 1: found, 2: error).
    Scan(ScanArgs),
    /// Master keys for recoverable keys: generate one, or re-wrap every data key under the
    /// current one.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Print a new random master key as `<id>:<base64>`, for the master key file or
    /// KEYWARDEN_MASTER_KEYS.
    Generate {
        /// The key's id, stored next to every data key it wraps [default: mk-<unix time>]
        #[arg(long)]
        id: Option<String>,
    },
    /// Re-wrap every workspace's data key under the current (first) master key. Afterwards
    /// the other master keys can be removed from the configuration. Safe to repeat, and to
    /// run while servers are up.
    Rotate {
        #[command(flatten)]
        keys: MasterKeyArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the master keys come from.
#[derive(Debug, Args, Default)]
pub struct MasterKeyArgs {
    /// File of master keys, one `<id>:<base64 of 32 bytes>` per line, the current one first
    /// [env: KEYWARDEN_MASTER_KEY_FILE]. The keys may instead be given, comma-separated, in
    /// KEYWARDEN_MASTER_KEYS. Without either, recoverable keys are off (412).
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Files and directories to scan; directories are walked (skipping `.git`), and one that
    /// holds a git repository also has its whole history scanned.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Do not scan git history, only the files as they are.
    #[arg(long)]
    pub no_history: bool,
    /// Ask the server at this URL which found keys are live (`leaks.checkKeys`). Needs a root
    /// key with `leak.*.check_keys`, from KEYWARDEN_ROOT_KEY or --root-key-file.
    #[arg(long, value_name = "URL")]
    pub check: Option<String>,
    /// Report every live key found to the server as leaked (`leaks.reportKey`), which applies
    /// the workspace's leak policy (revoke by default). Needs --check and `leak.*.report_key`.
    #[arg(long, requires = "check")]
    pub revoke: bool,
    /// A file holding the root key (instead of KEYWARDEN_ROOT_KEY).
    #[arg(long, value_name = "FILE")]
    pub root_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The workspace whose log to show; needed only when the store has several.
    #[arg(long, value_name = "WORKSPACE_ID")]
    pub workspace: Option<String>,
    /// Entries at or after this time, in Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Entries at or before this time, in Unix milliseconds.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this action, e.g. key.create or root_key.revoke.
    #[arg(long)]
    pub action: Option<String>,
    /// Only changes by this actor: a root key id, cli or system.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes to this object (an id such as key_… or api_…).
    #[arg(long, value_name = "ID")]
    pub target: Option<String>,
    /// Most entries to show.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The store to copy from: a SQLite file path, sqlite://PATH or postgres://…
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// The empty store to copy into (its schema is created if needed).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Settings every command that opens the store shares. Each flag overrides the config file
/// and the environment.
#[derive(Debug, Args, Default)]
pub struct StoreArgs {
    /// Database URL: a SQLite file path, sqlite://PATH or postgres://… [env:
    /// KEYWARDEN_DATABASE_URL] [default: sqlite://keywarden.db]
    #[arg(long = "database", value_name = "URL")]
    pub database: Option<String>,
    /// TOML file with settings (listen, database_url, log_format, key_cache_capacity,
    /// redis_url, redis_fault_mode, redis_prefix, redis_timeout_ms, max_stale_secs,
    /// database_max_connections, record_verifications, usage_queue_capacity,
    /// usage_flush_interval_ms, usage_batch_size, usage_rollup_interval_ms,
    /// usage_retention_days, tls_cert, tls_key, tls_reload_secs, insecure_http, token_*; see
    /// the README for all).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [env: KEYWARDEN_LISTEN] [default: 127.0.0.1:7070]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Log format [env: KEYWARDEN_LOG_FORMAT] [default: text]
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Redis URL for rate limits shared by every node [env: KEYWARDEN_REDIS_URL] [default:
    /// none: limits are kept in this process]
    #[arg(long = "redis", value_name = "URL")]
    pub redis: Option<String>,
    /// What decides limits while Redis is unreachable: local (per-node limits), fail-open or
    /// fail-closed [env: KEYWARDEN_REDIS_FAULT_MODE] [default: local]
    #[arg(long, value_name = "MODE")]
    pub redis_fault_mode: Option<String>,
    /// PEM certificate chain: serve HTTPS (HTTP/1.1 and HTTP/2) with it, reloading it when
    /// the file changes [env: KEYWARDEN_TLS_CERT]
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [env: KEYWARDEN_TLS_KEY]
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback, e.g. behind a TLS-terminating
    /// proxy [env: KEYWARDEN_INSECURE_HTTP]
    #[arg(long)]
    pub insecure_http: bool,
    #[command(flatten)]
    pub master_keys: MasterKeyArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace and its first root key (holding every permission), printed once on
    /// stdout.
    Create {
        /// The workspace's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List workspaces.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum RootKeyCommand {
    /// Create a root key and print it once on stdout.
    Create {
        /// A permission such as api.*.create_key or api.<apiId>.verify_key; repeatable.
        #[arg(long = "permission", value_name = "PERMISSION", required = true)]
        permissions: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// The workspace the key administers; needed only when the store has several.
        #[arg(long, value_name = "WORKSPACE_ID")]
        workspace: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List root keys (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a root key by id; running servers stop accepting it within about a second.
    Revoke {
        /// The root key's id (rootkey_…).
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}
