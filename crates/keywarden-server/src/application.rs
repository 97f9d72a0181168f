//! The server as a value: built from settings and a store, bound to its listener (port 0
//! allowed), then run until a shutdown signal. Tests build the same thing as `main`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use keywarden_core::change::FeedEvent;
use keywarden_core::restriction::IpNetwork;
use keywarden_core::time::Clock;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http;
use crate::service::{
    Backends, ChannelSink, Keywarden, ServiceSettings, WebhookSettings, WebhookStats,
    run_webhook_worker,
};
use crate::state::{AppState, Shared};
use crate::tls::{Tls, TlsSettings, install_crypto_provider};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub service: ServiceSettings,
    /// How often to look for root keys created or revoked by other processes.
    pub root_key_poll: Duration,
    /// The webhook delivery worker.
    pub webhooks: WebhookSettings,
    /// Serve HTTPS with this certificate; `None` serves plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Allow plain HTTP on an address other than loopback.
    pub insecure_http: bool,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies, load balancers); from
    /// any other peer the header is ignored.
    pub trusted_proxies: Vec<IpNetwork>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            service: ServiceSettings::default(),
            root_key_poll: Duration::from_secs(1),
            webhooks: WebhookSettings::default(),
            tls: None,
            insecure_http: false,
            trusted_proxies: Vec::new(),
        }
    }
}

pub struct Application {
    listener: TcpListener,
    tls: Option<Tls>,
    service: Arc<Keywarden>,
    settings: ServerSettings,
}

impl Application {
    /// Loads the in-memory views from the store and binds the listener.
    pub async fn build(
        settings: ServerSettings,
        backends: Backends,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        install_crypto_provider();
        let tls = match &settings.tls {
            Some(tls) => Some(Tls::load(tls.clone())?),
            None => {
                check_plain_http(settings.listen, settings.insecure_http)?;
                None
            }
        };
        let service = Keywarden::start(backends, clock, &settings.service)
            .await
            .context("could not load keys and root keys from the store")?;
        service
            .check_master_keys()
            .await
            .context("the master keys do not fit the store")?;
        service
            .seal_server_secrets()
            .await
            .context("the master keys do not fit the server secrets in the store")?;
        // Tokens can be issued and their keys published from the first request on.
        service
            .refresh_signing_keys()
            .await
            .context("could not load the token signing keys")?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("could not listen on {}", settings.listen))?;
        Ok(Self {
            listener,
            tls,
            service: Arc::new(service),
            settings,
        })
    }

    /// The address actually bound (the port is chosen by the OS when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.settings.listen)
    }

    pub fn service(&self) -> Arc<Keywarden> {
        Arc::clone(&self.service)
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests
    /// finish, stops background work and waits until every write is durable.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Subscribed before serving, so no change another node makes while this one serves
        // goes unheard.
        let (sink, events) = ChannelSink::new();
        self.service.feed().subscribe(sink);
        let (stop_usage, usage_stopped) = tokio::sync::watch::channel(false);
        let usage_writer = self
            .service
            .take_usage_writer()
            .map(|writer| tokio::spawn(writer.run(self.service.usage_store(), usage_stopped)));
        let anomaly_watcher = self.service.take_anomaly_watcher().map(|watcher| {
            let (store, clock) = self.service.anomaly_backends();
            tokio::spawn(watcher.run(store, clock))
        });
        let webhooks = Arc::new(WebhookStats::default());
        let mut background = vec![
            tokio::spawn(apply_feed_events(Arc::clone(&self.service), events)),
            tokio::spawn(poll_root_keys(
                Arc::clone(&self.service),
                self.settings.root_key_poll,
            )),
            tokio::spawn(refill_credits(Arc::clone(&self.service))),
            tokio::spawn(sweep_limits(Arc::clone(&self.service))),
            tokio::spawn(prune_usage(Arc::clone(&self.service))),
            tokio::spawn(refresh_signing_keys(Arc::clone(&self.service))),
        ];
        background.extend(anomaly_watcher);
        if self.settings.webhooks.enabled {
            background.push(tokio::spawn(run_webhook_worker(
                Arc::clone(&self.service),
                self.settings.webhooks.clone(),
                Arc::clone(&webhooks),
            )));
        }
        let metrics = Arc::new(http::metrics_recorder());
        background.push(tokio::spawn(http::keep_metrics_up(Arc::clone(&metrics))));
        let router = http::router(AppState::new(Shared {
            service: Arc::clone(&self.service),
            requests: http::RequestMetrics::new(Arc::clone(&metrics)),
            metrics,
            webhooks,
            trusted_proxies: self.settings.trusted_proxies.clone().into(),
        }));
        let address = self.local_addr();
        let served = match self.tls {
            None => {
                tracing::info!(%address, scheme = "http", "listening");
                axum::serve(
                    self.listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .context("the HTTP server failed")
            }
            Some(tls) => {
                tracing::info!(%address, scheme = "https", "listening");
                let config =
                    axum_server::tls_rustls::RustlsConfig::from_config(tls.server_config());
                background.push(tokio::spawn(tls.watch()));
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(None);
                });
                let listener = self
                    .listener
                    .into_std()
                    .context("could not hand the listener to the TLS server")?;
                axum_server::from_tcp_rustls(listener, config)
                    .context("could not start the TLS server")?
                    .handle(handle)
                    .serve(router.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                    .context("the HTTPS server failed")
            }
        };
        stop(background);
        // Requests have finished: write the verifications still queued, then flush.
        let _ = stop_usage.send(true);
        if let Some(writer) = usage_writer
            && let Err(e) = writer.await
        {
            tracing::error!(error = ?e, "the usage writer failed");
        }
        self.service
            .store()
            .flush()
            .await
            .context("could not flush writes to the store")?;
        tracing::info!("stopped");
        served
    }
}

/// Plain HTTP carries root keys and API keys in the clear, so it is only served on loopback
/// unless the operator says otherwise.
fn check_plain_http(listen: SocketAddr, allowed: bool) -> anyhow::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if !allowed {
        anyhow::bail!(
            "refusing to serve plain HTTP on {listen}, which is not a loopback address: \
             give a certificate with --tls-cert and --tls-key, or allow plain HTTP with \
             --insecure-http (for example behind a TLS-terminating proxy)"
        );
    }
    tracing::warn!(
        address = %listen,
        "serving plain HTTP on a non-loopback address (--insecure-http): keys cross the network unencrypted"
    );
    Ok(())
}

/// Stops background work. The webhook worker may be stopped mid-send: its deliveries stay in
/// the outbox and are sent again once their lease runs out.
fn stop(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        task.abort();
    }
}

/// Applies other nodes' changes in the order the feed delivers them; reloads everything when
/// the feed may have lost some.
async fn apply_feed_events(
    service: Arc<Keywarden>,
    mut events: tokio::sync::mpsc::UnboundedReceiver<FeedEvent>,
) {
    while let Some(event) = events.recv().await {
        match event {
            FeedEvent::Changed(change) => service.apply(&change),
            FeedEvent::Disconnected => {
                tracing::warn!(
                    "change feed disconnected; changes on other nodes are not seen until it returns"
                );
            }
            FeedEvent::Resync => {
                // Until the store answers, keep trying: the views may be stale meanwhile,
                // which the staleness bound on cached records limits.
                while let Err(e) = service.resync().await {
                    tracing::warn!(error = ?e, "could not reload views; retrying in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Reloads root keys when a change is announced, and polls as well: the CLI changes root keys
/// from another process without announcing.
async fn poll_root_keys(service: Arc<Keywarden>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = service.root_keys_changed().notified() => {}
        }
        if let Err(e) = service.refresh_root_keys().await {
            tracing::warn!(error = ?e, "could not refresh root keys");
        }
    }
}

/// Drops the state of rate-limit windows that have ended, so memory follows the identifiers
/// in active use.
async fn sweep_limits(service: Arc<Keywarden>) {
    let mut interval = tokio::time::interval(Duration::from_secs(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let service = Arc::clone(&service);
        let swept = tokio::task::spawn_blocking(move || service.sweep_limits())
            .await
            .unwrap_or(0);
        if swept > 0 {
            tracing::debug!(swept, "ended rate-limit windows dropped");
        }
    }
}

/// Deletes raw verification events past their retention, at startup and hourly; rollups
/// stay.
async fn prune_usage(service: Arc<Keywarden>) {
    let mut interval = tokio::time::interval(Duration::from_secs(3_600));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match service.prune_usage().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "verification events past retention deleted"),
            Err(e) => tracing::warn!(error = ?e, "could not delete old verification events"),
        }
    }
}

/// Picks up token signing keys other nodes added, and adds the next one when it is due, so
/// every node publishes a new key soon after it appears.
async fn refresh_signing_keys(service: Arc<Keywarden>) {
    let mut interval = tokio::time::interval(Duration::from_secs(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = service.refresh_signing_keys().await {
            tracing::warn!(error = ?e, "could not refresh token signing keys");
        }
    }
}

/// Applies refills at startup (catching up after downtime) and after every midnight UTC.
async fn refill_credits(service: Arc<Keywarden>) {
    loop {
        let wait = match service.refill_due_credits().await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!(keys = n, "credits refilled");
                }
                // Wake at least hourly, so a clock that jumps does not delay refills long.
                u64::try_from(service.millis_until_next_refill())
                    .unwrap_or(0)
                    .min(3_600_000)
            }
            Err(e) => {
                tracing::warn!(error = ?e, "credit refill failed; retrying in a minute");
                60_000
            }
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}
