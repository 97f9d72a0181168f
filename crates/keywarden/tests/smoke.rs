//! The binary starts on its embedded default store and answers, over plain HTTP on loopback
//! or over TLS with certificate files; plain HTTP elsewhere needs `--insecure-http`.

mod common;

use std::process::{Command, Stdio};

use common::{Launch, ServerProcess};

#[tokio::test]
async fn binary_starts_and_answers_liveness() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Launch::in_dir(dir.path()));
    let body: serde_json::Value = common::http_client()
        .get(server.url("/v2/liveness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["message"], "OK");
    assert!(dir.path().join("keywarden.db").exists());
}

#[tokio::test]
async fn binary_serves_https_with_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let args = [
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ];
    let server = ServerProcess::start(Launch {
        extra_args: &args,
        ..Launch::in_dir(dir.path())
    });
    keywarden_server::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(ca.der()).unwrap()])
        .build()
        .unwrap();
    let url = server
        .url("/v2/liveness")
        .replacen("http://", "https://", 1);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // The same port does not speak plain HTTP.
    assert!(
        common::http_client()
            .get(server.url("/v2/liveness"))
            .send()
            .await
            .is_err()
    );
}

#[test]
fn plain_http_on_a_non_loopback_address_is_refused_without_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(common::binary())
        .current_dir(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("KEYWARDEN_LISTEN")
        .env_remove("KEYWARDEN_INSECURE_HTTP")
        .env_remove("KEYWARDEN_TLS_CERT")
        .env_remove("KEYWARDEN_TLS_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve plain HTTP") && stderr.contains("--insecure-http"),
        "{stderr}"
    );
}
