//! `keywarden serve`.

use std::sync::Arc;
use std::time::Duration;

use keywarden_core::secret::PlaintextKey;
use keywarden_core::time::{Clock, SystemClock};
use keywarden_server::service::{Bootstrap, ServiceSettings, WebhookSettings, bootstrap};
use keywarden_server::{Application, ServerSettings};

use crate::backends;
use crate::cli::ServeArgs;
use crate::config::{self, Overrides};
use crate::logging;
use crate::master_key_command;

const BOOTSTRAP_ENV: &str = "KEYWARDEN_BOOTSTRAP_ROOT_KEY";

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = config::load(
        args.store.config.as_deref(),
        Overrides {
            listen: args.listen,
            database_url: args.store.database,
            log_format: args.log_format,
            redis_url: args.redis,
            redis_fault_mode: args.redis_fault_mode,
            master_key_file: args.master_keys.master_key_file,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            insecure_http: args.insecure_http.then_some(true),
        },
    )?;
    logging::init(config.log_format);
    let master_keys = master_key_command::configured(&config)?;
    match &master_keys {
        Some(ring) => tracing::info!(
            current = %ring.current().id(),
            configured = ring.ids().count(),
            "recoverable keys enabled"
        ),
        None => tracing::info!("recoverable keys disabled: no master key configured"),
    }
    let usage = config.usage()?;
    let anomalies = config.anomalies()?;
    let partner_keys = config.partner_keys()?;
    let tokens = config.tokens()?;
    let trusted_proxies = config.trusted_proxies()?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let backends = backends::open(&config, &clock).await?;
    let store = Arc::clone(&backends.store);

    let from_env = std::env::var(BOOTSTRAP_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map(PlaintextKey::new);
    match bootstrap(store.as_ref(), clock.now(), from_env).await? {
        Bootstrap::AlreadyInitialised => {}
        Bootstrap::FromEnvironment { workspace } => {
            tracing::info!(workspace_id = %workspace, "created the first workspace with the root key from {BOOTSTRAP_ENV}");
        }
        Bootstrap::Generated {
            workspace,
            root_key,
        } => print_root_key(&workspace.to_string(), &root_key),
    }

    let settings = ServerSettings {
        listen: config.listen,
        service: ServiceSettings {
            key_cache_capacity: config.key_cache_capacity,
            max_stale: Duration::from_secs(config.max_stale_secs),
            usage,
            anomalies,
            partner_keys,
            master_keys,
            tokens,
            ..ServiceSettings::default()
        },
        webhooks: WebhookSettings {
            enabled: config.webhooks_enabled,
            poll_interval: Duration::from_millis(config.webhook_poll_ms),
            expiring_horizon: Duration::from_secs(config.webhook_expiring_horizon_secs),
            extra_roots: config.webhook_roots()?,
            ..WebhookSettings::default()
        },
        tls: config.tls(),
        insecure_http: config.insecure_http,
        trusted_proxies,
        ..ServerSettings::default()
    };
    let app = Application::build(settings, backends, clock).await?;
    app.run_until_stopped(shutdown_signal()).await
}

/// The one time a generated root key is shown. Written to stderr directly, never through the
/// logger, so log pipelines do not capture it.
fn print_root_key(workspace: &str, key: &PlaintextKey) {
    eprintln!(
        "\n\
         Keywarden created workspace {workspace} and its first root key, which holds every\n\
         permission:\n\
         \n    {}\n\n\
         Store it now (for example in a secret manager): it will not be shown again.\n",
        key.expose()
    );
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "could not listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
