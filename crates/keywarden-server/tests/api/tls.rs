//! HTTPS: certificates generated here with rcgen, each signed by its own test CA, so a
//! client trusting one CA tells which certificate the server presents. Covers HTTP/1.1 and
//! HTTP/2 over TLS, reloading the certificate files (and keeping the old certificate when
//! the new files are bad), the plain-HTTP rule for non-loopback addresses, and webhooks to
//! an `https://` receiver.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keywarden_server::service::WebhookSettings;
use keywarden_server::{Application, ServerSettings, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::json;

use crate::backend::TestStorage;
use crate::helpers::{TestClock, spawn_app_with};
use crate::webhooks::{Inbox, Shared, create_endpoint_at, wait_for};

/// A test CA and a server certificate it signed for 127.0.0.1, as PEM.
struct TestCertificate {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TestCertificate {
    fn new(ca_name: &str) -> Self {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn write(&self, dir: &Path) {
        // The key first: the watcher reacts to either file, and a half-written pair is what
        // the "bad files keep the old certificate" rule is for.
        std::fs::write(dir.join("key.pem"), &self.key_pem).unwrap();
        std::fs::write(dir.join("cert.pem"), &self.cert_pem).unwrap();
    }

    /// A client that trusts only this certificate's CA.
    fn client(&self, http2: bool) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()]);
        let builder = if http2 { builder } else { builder.http1_only() };
        builder.build().unwrap()
    }
}

fn tls_settings(dir: &Path) -> TlsSettings {
    TlsSettings {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        reload_interval: Duration::from_millis(50),
    }
}

async fn liveness(client: &reqwest::Client, base: &str) -> Result<reqwest::Version, String> {
    let response = client
        .get(format!("{base}/v2/liveness"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(response.status(), 200);
    Ok(response.version())
}

/// Polls until `client` gets an answer (the watcher picks up changes within a few polls).
async fn until_served(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if liveness(client, base).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server never presented the expected certificate");
}

#[tokio::test]
async fn https_serves_http1_and_http2_and_reloads_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestCertificate::new("first CA");
    first.write(dir.path());
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let settings = tls_settings(dir.path());
    let app = spawn_app_with(storage, TestClock::START, |s| s.tls = Some(settings)).await;
    assert!(app.base_url.starts_with("https://"), "{}", app.base_url);
    let base = app.base_url.clone();

    let http1 = first.client(false);
    assert_eq!(liveness(&http1, &base).await, Ok(reqwest::Version::HTTP_11));
    let http2 = first.client(true);
    assert_eq!(liveness(&http2, &base).await, Ok(reqwest::Version::HTTP_2));
    // The API itself over HTTP/2.
    let reply = http2
        .post(format!("{base}/v2/apis.createApi"))
        .bearer_auth(crate::helpers::ROOT_KEY)
        .json(&json!({ "name": "over-h2" }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);

    let second = TestCertificate::new("second CA");
    second.write(dir.path());
    until_served(&second.client(false), &base).await;
    assert!(
        liveness(&first.client(false), &base).await.is_err(),
        "new connections must get the new certificate"
    );
    // The HTTP/2 connection made before the reload is still open and still answers.
    assert_eq!(liveness(&http2, &base).await, Ok(reqwest::Version::HTTP_2));

    // A broken certificate file is refused; the server keeps presenting the second one.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        liveness(&second.client(false), &base).await,
        Ok(reqwest::Version::HTTP_11)
    );
    // A key that does not fit the certificate is refused too.
    let third = TestCertificate::new("third CA");
    std::fs::write(dir.path().join("cert.pem"), &third.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(liveness(&third.client(false), &base).await.is_err());
    assert!(liveness(&second.client(false), &base).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn a_server_does_not_start_with_unreadable_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
    let err = build("127.0.0.1:0", Some(tls_settings(dir.path())), false)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("cert.pem"), "{err:#}");
}

async fn build(
    listen: &str,
    tls: Option<TlsSettings>,
    insecure_http: bool,
) -> anyhow::Result<Application> {
    let storage = TestStorage::create(crate::BACKEND).await;
    let (_store, backends) = storage
        .open(Arc::new(TestClock::at(TestClock::START)))
        .await;
    let settings = ServerSettings {
        listen: listen.parse().unwrap(),
        tls,
        insecure_http,
        ..ServerSettings::default()
    };
    Application::build(
        settings,
        backends,
        Arc::new(TestClock::at(TestClock::START)),
    )
    .await
}

#[tokio::test]
async fn plain_http_on_a_non_loopback_address_needs_insecure_http() {
    let err = build("0.0.0.0:0", None, false)
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("--insecure-http") && message.contains("--tls-cert"),
        "{message}"
    );
    assert!(build("0.0.0.0:0", None, true).await.is_ok());
    assert!(build("127.0.0.1:0", None, false).await.is_ok());
    let dir = tempfile::tempdir().unwrap();
    TestCertificate::new("CA").write(dir.path());
    assert!(
        build("0.0.0.0:0", Some(tls_settings(dir.path())), false)
            .await
            .is_ok(),
        "with TLS any address is fine"
    );
}

/// An HTTPS receiver for webhooks, with `certificate`.
async fn https_receiver(certificate: &TestCertificate) -> (Shared, SocketAddr) {
    let inbox = Shared::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = listener.local_addr().unwrap();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        certificate.cert_pem.clone().into_bytes(),
        certificate.key_pem.clone().into_bytes(),
    )
    .await
    .unwrap();
    let app = crate::webhooks::receiver_routes(Arc::clone(&inbox));
    let server = axum_server::from_tcp_rustls(listener, config).unwrap();
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    (inbox, bound)
}

#[tokio::test]
async fn webhooks_are_delivered_to_https_endpoints_with_a_configured_root() {
    let certificate = TestCertificate::new("receiver CA");
    let (inbox, addr) = https_receiver(&certificate).await;
    let root = rustls_root(&certificate.ca_pem);
    let storage = Arc::new(TestStorage::create(crate::BACKEND).await);
    let app = spawn_app_with(storage, TestClock::START, |s| {
        s.webhooks = WebhookSettings {
            extra_roots: vec![root],
            ..s.webhooks.clone()
        };
    })
    .await;
    let (_, secret) =
        create_endpoint_at(&app, &format!("https://{addr}/hook"), &["key.created"]).await;
    inbox.lock().unwrap().secret = Some(secret);
    let api = app.create_api("tls-hooks").await;
    app.create_key(&api, json!({})).await;
    wait_for(&inbox, |i: &Inbox| i.received.len() == 1).await;
    assert_eq!(inbox.lock().unwrap().received[0]["type"], "key.created");
    app.stop().await;
}

fn rustls_root(pem: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, pem).unwrap();
    keywarden_server::tls::read_pem_certificates(&file)
        .unwrap()
        .remove(0)
}
