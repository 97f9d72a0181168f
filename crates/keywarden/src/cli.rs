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
    /// usage_flush_interval_ms, usage_batch_size, usage_retention_days, tls_cert, tls_key,
    /// tls_reload_secs, insecure_http, token_*; see the README for all).
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
