//! One keep-alive HTTP/1.1 connection per worker, driven by hyper's low-level client.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Request bodies are either empty (GET) or a whole JSON document.
pub type Body = http_body_util::Either<Empty<Bytes>, Full<Bytes>>;

/// Where requests go and how they authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`, for connecting and for the `Host` header.
    authority: String,
    host_header: HeaderValue,
    bearer: HeaderValue,
}

impl Target {
    /// `base_url` is `http://host:port` (a trailing `/` is allowed; paths are not).
    pub fn new(base_url: &str, root_key: &str) -> anyhow::Result<Self> {
        let uri: Uri = base_url
            .parse()
            .with_context(|| format!("invalid base URL {base_url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("only http:// base URLs are supported, got {base_url:?}");
        }
        if !matches!(uri.path(), "" | "/") {
            bail!("the base URL must not have a path, got {base_url:?}");
        }
        let authority = uri
            .authority()
            .context("the base URL has no host")?
            .as_str()
            .to_owned();
        let authority = if uri.port().is_some() {
            authority
        } else {
            format!("{authority}:80")
        };
        Ok(Self {
            host_header: HeaderValue::from_str(&authority)?,
            bearer: HeaderValue::from_str(&format!("Bearer {root_key}"))
                .context("the root key is not a valid header value")?,
            authority,
        })
    }

    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Opens a keep-alive connection (Nagle off: requests are small and latency matters).
    pub async fn connect(&self) -> anyhow::Result<SendRequest<Body>> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("could not connect to {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes the connection; a failure
            // shows up as an error on the next request.
            let _ = connection.await;
        });
        Ok(sender)
    }

    pub fn get(&self, path: &'static str) -> Request<Body> {
        let mut request = Request::new(Body::Left(Empty::new()));
        *request.uri_mut() = Uri::from_static(path);
        request.headers_mut().insert(HOST, self.host_header.clone());
        request
    }

    pub fn post(&self, path: &'static str, json: Bytes) -> Request<Body> {
        let mut request = Request::new(Body::Right(Full::new(json)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = Uri::from_static(path);
        let headers = request.headers_mut();
        headers.insert(HOST, self.host_header.clone());
        headers.insert(AUTHORIZATION, self.bearer.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }
}

/// Sends one request and reads the whole response body.
pub async fn send(
    sender: &mut SendRequest<Body>,
    request: Request<Body>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await.context("the connection is closed")?;
    let response = sender
        .send_request(request)
        .await
        .context("request failed")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("could not read the response body")?
        .to_bytes();
    Ok((status, body))
}
