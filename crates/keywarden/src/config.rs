//! Layered configuration: defaults, then the TOML file given with `--config`, then
//! `KEYWARDEN_*` environment variables, then command-line flags. Unknown settings in the file
//! are an error, so a typo does not silently fall back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use keywarden_core::anomaly::AnomalySettings;
use keywarden_core::leak::PartnerKeys;
use keywarden_core::restriction::IpNetwork;
use keywarden_core::token::TokenPolicy;
use keywarden_server::service::{AnomalyDetection, TokenSettings, UsageSettings};
use serde::{Deserialize, Serialize};

use crate::cli::LogFormat;

/// Every setting, with its default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub log_format: LogFormat,
    pub key_cache_capacity: u64,
    /// Redis for rate limits shared by every node; unset keeps limits in each process.
    pub redis_url: Option<String>,
    /// What decides limits while Redis is unreachable: `local`, `fail-open` or `fail-closed`.
    pub redis_fault_mode: String,
    /// The first part of every Redis key Keywarden writes.
    pub redis_prefix: String,
    /// Longest one Redis call may take before the fault mode answers instead.
    pub redis_timeout_ms: u64,
    /// How long cached keys keep answering once a node no longer hears other nodes' changes.
    pub max_stale_secs: u64,
    /// Most connections this node opens to PostgreSQL (ignored for SQLite).
    pub database_max_connections: u32,
    /// Whether every verification of a known key is recorded (usage, `lastUsedAt`).
    pub record_verifications: bool,
    /// Most verification events waiting to be written; more are dropped and counted.
    pub usage_queue_capacity: usize,
    /// Longest a verification event waits before it is written (and shows in `lastUsedAt`).
    pub usage_flush_interval_ms: u64,
    /// Most verification events written in one store transaction; a full batch is written
    /// before the flush interval ends.
    pub usage_batch_size: usize,
    /// How often what written events add to the per-minute to per-month counts and to keys'
    /// `lastUsedAt` is folded in (analytics queries on the counts fold first).
    pub usage_rollup_interval_ms: u64,
    /// How long raw verification events are kept; per-minute to per-month counts stay.
    pub usage_retention_days: u64,
    /// Whether this node sends webhook deliveries (any number of nodes may).
    pub webhooks_enabled: bool,
    /// How often the webhook worker looks for due deliveries, in milliseconds (≥ 10).
    pub webhook_poll_ms: u64,
    /// How far ahead `key.expiring_soon` is announced, in seconds (≥ 60).
    pub webhook_expiring_horizon_secs: u64,
    /// Whether verifications are watched for anomalies.
    pub anomaly_detection: bool,
    /// Most verification outcomes waiting for the detector; more are dropped and counted.
    pub anomaly_queue_capacity: usize,
    /// Minutes of history a key needs before the rate and address rules apply to it.
    pub anomaly_warmup_minutes: u32,
    /// A minute with more than this many times a key's learned rate is a spike (> 1)…
    pub anomaly_rate_factor: f64,
    /// …if it also has at least this many calls.
    pub anomaly_rate_min_calls: u64,
    /// New client addresses of one key within the window that raise an anomaly.
    pub anomaly_new_ip_threshold: u32,
    pub anomaly_new_ip_window_ms: i64,
    /// Unknown keys from one client address within the window that raise an anomaly.
    pub anomaly_probe_threshold: u32,
    pub anomaly_probe_window_ms: i64,
    /// Credits are low at or below this fraction of the refill amount (0 < f < 1)…
    pub anomaly_credits_low_fraction: f64,
    /// …or, for keys without a refill, at or below this many credits.
    pub anomaly_credits_low_absolute: i64,
    /// Quiet time after an anomaly of one kind for one key or address.
    pub anomaly_cooldown_ms: i64,
    /// Baselines of keys unused for this long are forgotten.
    pub anomaly_idle_ms: i64,
    /// GitHub's secret scanning public keys, in the JSON form GitHub publishes them
    /// (`{"public_keys": [{"key_identifier", "key"}]}`); unset refuses every partner report.
    pub secret_scanning_keys_file: Option<std::path::PathBuf>,
    /// A file of master keys for recoverable keys (`<id>:<base64 of 32 bytes>` per line, the
    /// current one first). The keys themselves can instead be given in
    /// `KEYWARDEN_MASTER_KEYS`; never in this file's settings.
    pub master_key_file: Option<PathBuf>,
    /// PEM certificate chain to serve HTTPS with (needs `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// How often the certificate files are checked for changes, in seconds (≥ 1).
    pub tls_reload_secs: u64,
    /// Allow plain HTTP on a non-loopback `listen` address.
    pub insecure_http: bool,
    /// PEM file of extra root certificates trusted for `https://` webhook endpoints.
    pub webhook_ca_file: Option<PathBuf>,
    /// Lifetime of a short-lived token when the request names none, in seconds.
    pub token_default_ttl_secs: u64,
    /// The longest lifetime a short-lived token gets, in seconds.
    pub token_max_ttl_secs: u64,
    /// How long one token signing key signs before the next takes over, in seconds (≥ 60).
    pub token_rotation_secs: u64,
    /// The `iss` claim of short-lived tokens.
    pub token_issuer: String,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client;
    /// from any other peer the header is ignored. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        let a = AnomalySettings::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            database_url: "sqlite://keywarden.db".into(),
            log_format: LogFormat::Text,
            key_cache_capacity: 100_000,
            redis_url: None,
            redis_fault_mode: "local".into(),
            redis_prefix: "kw".into(),
            redis_timeout_ms: 100,
            max_stale_secs: 600,
            database_max_connections: 16,
            record_verifications: true,
            usage_queue_capacity: 100_000,
            usage_flush_interval_ms: 1_000,
            usage_batch_size: UsageSettings::default().batch_size,
            usage_rollup_interval_ms: 10_000,
            usage_retention_days: 30,
            webhooks_enabled: true,
            webhook_poll_ms: 1000,
            webhook_expiring_horizon_secs: 24 * 60 * 60,
            anomaly_detection: true,
            anomaly_queue_capacity: AnomalyDetection::default().queue_capacity,
            anomaly_warmup_minutes: a.warmup_minutes,
            anomaly_rate_factor: a.rate_factor,
            anomaly_rate_min_calls: a.rate_min_calls,
            anomaly_new_ip_threshold: a.new_ip_threshold,
            anomaly_new_ip_window_ms: a.new_ip_window_ms,
            anomaly_probe_threshold: a.probe_threshold,
            anomaly_probe_window_ms: a.probe_window_ms,
            anomaly_credits_low_fraction: a.credits_low_fraction,
            anomaly_credits_low_absolute: a.credits_low_absolute,
            anomaly_cooldown_ms: a.cooldown_ms,
            anomaly_idle_ms: a.idle_ms,
            secret_scanning_keys_file: None,
            master_key_file: None,
            tls_cert: None,
            tls_key: None,
            tls_reload_secs: 5,
            insecure_http: false,
            webhook_ca_file: None,
            token_default_ttl_secs: 300,
            token_max_ttl_secs: 3600,
            token_rotation_secs: 24 * 60 * 60,
            token_issuer: "keywarden".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Config {
    /// The trusted proxies as networks, refusing entries that are not addresses or networks.
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<IpNetwork>> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                IpNetwork::parse(entry.trim())
                    .map_err(|e| anyhow::anyhow!("trusted_proxies: {entry:?} {e}"))
            })
            .collect()
    }

    /// The anomaly detection settings, refusing thresholds that cannot work.
    pub fn anomalies(&self) -> anyhow::Result<AnomalyDetection> {
        if self.anomaly_queue_capacity == 0 {
            anyhow::bail!("anomaly_queue_capacity must be at least 1");
        }
        let thresholds = AnomalySettings {
            warmup_minutes: self.anomaly_warmup_minutes,
            rate_factor: self.anomaly_rate_factor,
            rate_min_calls: self.anomaly_rate_min_calls,
            new_ip_threshold: self.anomaly_new_ip_threshold,
            new_ip_window_ms: self.anomaly_new_ip_window_ms,
            probe_threshold: self.anomaly_probe_threshold,
            probe_window_ms: self.anomaly_probe_window_ms,
            credits_low_fraction: self.anomaly_credits_low_fraction,
            credits_low_absolute: self.anomaly_credits_low_absolute,
            cooldown_ms: self.anomaly_cooldown_ms,
            idle_ms: self.anomaly_idle_ms,
        };
        // The core names its fields; the settings carry an `anomaly_` prefix.
        thresholds.validate().map_err(|e| {
            anyhow::anyhow!("invalid configuration: anomaly_{} is out of range", e.0)
        })?;
        Ok(AnomalyDetection {
            enabled: self.anomaly_detection,
            queue_capacity: self.anomaly_queue_capacity,
            thresholds,
        })
    }

    /// The secret scanning partner keys from `secret_scanning_keys_file`; none when unset.
    pub fn partner_keys(&self) -> anyhow::Result<PartnerKeys> {
        let Some(path) = &self.secret_scanning_keys_file else {
            return Ok(PartnerKeys::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secret_scanning_keys_file {}", path.display()))?;
        PartnerKeys::from_github_json(&text).map_err(|e| {
            anyhow::anyhow!(
                "invalid configuration: secret_scanning_keys_file {}: {e}",
                path.display()
            )
        })
    }

    /// The usage recording settings, refusing values that cannot work.
    pub fn usage(&self) -> anyhow::Result<UsageSettings> {
        if self.usage_queue_capacity == 0 {
            anyhow::bail!("usage_queue_capacity must be at least 1");
        }
        if self.usage_flush_interval_ms == 0 {
            anyhow::bail!("usage_flush_interval_ms must be at least 1");
        }
        if self.usage_batch_size == 0 {
            anyhow::bail!("usage_batch_size must be at least 1");
        }
        if self.usage_rollup_interval_ms == 0 {
            anyhow::bail!("usage_rollup_interval_ms must be at least 1");
        }
        if self.usage_retention_days == 0 {
            anyhow::bail!("usage_retention_days must be at least 1");
        }
        Ok(UsageSettings {
            record: self.record_verifications,
            queue_capacity: self.usage_queue_capacity,
            flush_interval: Duration::from_millis(self.usage_flush_interval_ms),
            batch_size: self.usage_batch_size,
            rollup_interval: Duration::from_millis(self.usage_rollup_interval_ms),
            retention: Duration::from_secs(self.usage_retention_days.saturating_mul(86_400)),
        })
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_fault_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_http: Option<bool>,
}

/// The environment variables that map to settings. Others with the prefix (such as
/// `KEYWARDEN_BOOTSTRAP_ROOT_KEY` and `KEYWARDEN_MASTER_KEYS`, secrets read separately) are
/// not settings.
const ENV_SETTINGS: &[&str] = &[
    "listen",
    "database_url",
    "log_format",
    "key_cache_capacity",
    "redis_url",
    "redis_fault_mode",
    "redis_prefix",
    "redis_timeout_ms",
    "max_stale_secs",
    "database_max_connections",
    "record_verifications",
    "usage_queue_capacity",
    "usage_flush_interval_ms",
    "usage_batch_size",
    "usage_rollup_interval_ms",
    "usage_retention_days",
    "webhooks_enabled",
    "webhook_poll_ms",
    "webhook_expiring_horizon_secs",
    "anomaly_detection",
    "anomaly_queue_capacity",
    "anomaly_warmup_minutes",
    "anomaly_rate_factor",
    "anomaly_rate_min_calls",
    "anomaly_new_ip_threshold",
    "anomaly_new_ip_window_ms",
    "anomaly_probe_threshold",
    "anomaly_probe_window_ms",
    "anomaly_credits_low_fraction",
    "anomaly_credits_low_absolute",
    "anomaly_cooldown_ms",
    "anomaly_idle_ms",
    "secret_scanning_keys_file",
    "master_key_file",
    "tls_cert",
    "tls_key",
    "tls_reload_secs",
    "insecure_http",
    "webhook_ca_file",
    "token_default_ttl_secs",
    "token_max_ttl_secs",
    "token_rotation_secs",
    "token_issuer",
    "trusted_proxies",
];

pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Config> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(file) = file {
        if !file.is_file() {
            anyhow::bail!("config file {} does not exist", file.display());
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    let config: Config = figment
        .merge(Env::prefixed("KEYWARDEN_").only(ENV_SETTINGS))
        .merge(Serialized::defaults(overrides))
        .extract()
        .context("invalid configuration")?;
    if config.webhook_poll_ms < 10 {
        anyhow::bail!("invalid configuration: webhook_poll_ms must be at least 10");
    }
    if config.webhook_expiring_horizon_secs < 60 {
        anyhow::bail!("invalid configuration: webhook_expiring_horizon_secs must be at least 60");
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        anyhow::bail!("invalid configuration: give both tls_cert and tls_key, or neither");
    }
    if config.tls_reload_secs == 0 {
        anyhow::bail!("invalid configuration: tls_reload_secs must be at least 1");
    }
    Ok(config)
}

impl Config {
    /// The TLS settings, when a certificate is configured.
    pub fn tls(&self) -> Option<keywarden_server::TlsSettings> {
        let (cert, key) = self.tls_cert.clone().zip(self.tls_key.clone())?;
        Some(keywarden_server::TlsSettings {
            cert,
            key,
            reload_interval: Duration::from_secs(self.tls_reload_secs),
        })
    }

    /// The short-lived token settings, refusing lifetimes that cannot work.
    pub fn tokens(&self) -> anyhow::Result<TokenSettings> {
        let millis = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let policy = TokenPolicy {
            default_ttl_ms: millis(self.token_default_ttl_secs),
            max_ttl_ms: millis(self.token_max_ttl_secs),
            rotate_every_ms: millis(self.token_rotation_secs),
            ..TokenPolicy::default()
        };
        policy.validate().map_err(|e| {
            let setting = match e.0 {
                "default_ttl" => "token_default_ttl_secs (between 1 and token_max_ttl_secs)",
                "max_ttl" => "token_max_ttl_secs (at least 1)",
                _ => "token_rotation_secs (at least 60)",
            };
            anyhow::anyhow!("invalid configuration: {setting} is out of range")
        })?;
        if self.token_issuer.is_empty() {
            anyhow::bail!("invalid configuration: token_issuer must not be empty");
        }
        Ok(TokenSettings {
            policy,
            issuer: self.token_issuer.clone(),
        })
    }

    /// The extra roots trusted for webhook endpoints, as DER.
    pub fn webhook_roots(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let Some(file) = &self.webhook_ca_file else {
            return Ok(Vec::new());
        };
        keywarden_server::tls::read_pem_certificates(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_settings_in_the_file_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kw.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1\"\nlisten_adress = \"x\"\n").unwrap();
        let err = load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("listen_adress"), "{err:#}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kw.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\ndatabase_url = \"a.db\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let config = load(
            Some(&file),
            Overrides {
                database_url: Some("b.db".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(config.database_url, "b.db");
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn usage_settings_come_from_the_file_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kw.toml");
        std::fs::write(
            &file,
            "record_verifications = false\nusage_queue_capacity = 5\n\
             usage_flush_interval_ms = 250\nusage_retention_days = 7\n\
             usage_rollup_interval_ms = 2500\n",
        )
        .unwrap();
        let usage = load(Some(&file), Overrides::default())
            .unwrap()
            .usage()
            .unwrap();
        assert!(!usage.record);
        assert_eq!(usage.queue_capacity, 5);
        assert_eq!(usage.flush_interval, Duration::from_millis(250));
        assert_eq!(usage.rollup_interval, Duration::from_millis(2_500));
        assert_eq!(usage.retention, Duration::from_secs(7 * 86_400));

        std::fs::write(&file, "usage_queue_capacity = 0\n").unwrap();
        let err = load(Some(&file), Overrides::default())
            .unwrap()
            .usage()
            .unwrap_err();
        assert!(err.to_string().contains("usage_queue_capacity"), "{err:#}");
        std::fs::write(&file, "usage_flush_interval_ms = 0\n").unwrap();
        let err = load(Some(&file), Overrides::default())
            .unwrap()
            .usage()
            .unwrap_err();
        assert!(
            err.to_string().contains("usage_flush_interval_ms"),
            "{err:#}"
        );
    }

    #[test]
    fn secret_scanning_keys_come_from_githubs_published_json() {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};

        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("kw.toml");
        let keys_file = dir.path().join("github-keys.json");
        let none = load(None, Overrides::default()).unwrap();
        assert!(none.partner_keys().unwrap().is_empty());

        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let doc = serde_json::json!({"public_keys": [{"key_identifier": "abc", "key": pem}]});
        std::fs::write(&keys_file, doc.to_string()).unwrap();
        std::fs::write(
            &config_file,
            format!(
                "secret_scanning_keys_file = {:?}\n",
                keys_file.display().to_string()
            ),
        )
        .unwrap();
        let config = load(Some(&config_file), Overrides::default()).unwrap();
        assert!(!config.partner_keys().unwrap().is_empty());

        std::fs::write(
            &keys_file,
            "{\"public_keys\": [{\"key_identifier\": \"abc\", \"key\": \"x\"}]}",
        )
        .unwrap();
        let err = config.partner_keys().unwrap_err();
        assert!(
            format!("{err:#}").contains("secret_scanning_keys_file"),
            "{err:#}"
        );
    }

    #[test]
    fn webhook_settings_out_of_range_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keywarden.toml");
        std::fs::write(&file, "webhook_poll_ms = 0\n").unwrap();
        let err = load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("webhook_poll_ms"), "{err:#}");
        std::fs::write(&file, "webhook_expiring_horizon_secs = 5\n").unwrap();
        let err = load(Some(&file), Overrides::default()).unwrap_err();
        assert!(
            format!("{err:#}").contains("webhook_expiring_horizon_secs"),
            "{err:#}"
        );
    }

    #[test]
    fn anomaly_settings_come_from_the_file_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keywarden.toml");
        std::fs::write(
            &file,
            "anomaly_probe_threshold = 7\nanomaly_rate_factor = 3.5\nanomaly_detection = false\n",
        )
        .unwrap();
        let detection = load(Some(&file), Overrides::default())
            .unwrap()
            .anomalies()
            .unwrap();
        assert!(!detection.enabled);
        assert_eq!(detection.thresholds.probe_threshold, 7);
        assert!((detection.thresholds.rate_factor - 3.5).abs() < f64::EPSILON);
        for (bad, name) in [
            ("anomaly_rate_factor = 0.5", "anomaly_rate_factor"),
            ("anomaly_probe_window_ms = 0", "anomaly_probe_window_ms"),
            (
                "anomaly_credits_low_fraction = 1.5",
                "anomaly_credits_low_fraction",
            ),
            ("anomaly_queue_capacity = 0", "anomaly_queue_capacity"),
        ] {
            std::fs::write(&file, format!("{bad}\n")).unwrap();
            let err = load(Some(&file), Overrides::default())
                .and_then(|c| c.anomalies())
                .unwrap_err();
            assert!(format!("{err:#}").contains(name), "{bad}: {err:#}");
        }
    }

    #[test]
    fn the_master_key_file_comes_from_the_file_or_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keywarden.toml");
        std::fs::write(&file, "master_key_file = \"/etc/keywarden/keys\"\n").unwrap();
        let config = load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(
            config.master_key_file.as_deref(),
            Some(Path::new("/etc/keywarden/keys"))
        );
        let config = load(
            Some(&file),
            Overrides {
                master_key_file: Some("/run/keys".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.master_key_file.as_deref(),
            Some(Path::new("/run/keys"))
        );
    }

    #[test]
    fn tls_settings_need_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keywarden.toml");
        std::fs::write(&file, "tls_cert = \"a.pem\"\n").unwrap();
        let err = load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("tls_key"), "{err:#}");
        std::fs::write(
            &file,
            "tls_cert = \"a.pem\"\ntls_key = \"k.pem\"\ntls_reload_secs = 2\n",
        )
        .unwrap();
        let tls = load(Some(&file), Overrides::default())
            .unwrap()
            .tls()
            .unwrap();
        assert_eq!(tls.cert, PathBuf::from("a.pem"));
        assert_eq!(tls.key, PathBuf::from("k.pem"));
        assert_eq!(tls.reload_interval, Duration::from_secs(2));
        assert!(
            load(None, Overrides::default()).unwrap().tls().is_none(),
            "no TLS by default"
        );
    }

    #[test]
    fn token_settings_come_from_the_file_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keywarden.toml");
        std::fs::write(
            &file,
            "token_default_ttl_secs = 60\ntoken_max_ttl_secs = 600\n\
             token_rotation_secs = 3600\ntoken_issuer = \"https://auth.example\"\n",
        )
        .unwrap();
        let tokens = load(Some(&file), Overrides::default())
            .unwrap()
            .tokens()
            .unwrap();
        assert_eq!(tokens.policy.default_ttl_ms, 60_000);
        assert_eq!(tokens.policy.max_ttl_ms, 600_000);
        assert_eq!(tokens.policy.rotate_every_ms, 3_600_000);
        assert_eq!(tokens.issuer, "https://auth.example");
        for (bad, name) in [
            ("token_default_ttl_secs = 7200", "token_default_ttl_secs"),
            ("token_max_ttl_secs = 0", "token_max_ttl_secs"),
            ("token_rotation_secs = 5", "token_rotation_secs"),
        ] {
            std::fs::write(&file, format!("{bad}\n")).unwrap();
            let err = load(Some(&file), Overrides::default())
                .and_then(|c| c.tokens())
                .unwrap_err();
            assert!(format!("{err:#}").contains(name), "{bad}: {err:#}");
        }
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = load(
            Some(Path::new("/nonexistent/kw.toml")),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }

    #[test]
    fn trusted_proxies_are_networks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kw.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        let config = load(Some(&file), Overrides::default()).unwrap();
        let proxies = config.trusted_proxies().unwrap();
        assert_eq!(
            proxies,
            [
                IpNetwork::parse("10.0.0.0/8").unwrap(),
                IpNetwork::parse("::1").unwrap()
            ]
        );
        assert!(Config::default().trusted_proxies().unwrap().is_empty());
        let bad = Config {
            trusted_proxies: vec!["10.0.0.1/8".into()],
            ..Config::default()
        };
        let err = bad.trusted_proxies().unwrap_err().to_string();
        assert!(err.contains("10.0.0.0/8"), "{err}");
    }
}
