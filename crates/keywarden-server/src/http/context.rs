//! Per-request context that responses and records need: the request id, how errors should be
//! typed, and the client's address.
//!
//! A middleware sets it for the whole handling of a request (task-local), so every response,
//! including extractor rejections and the 404 fallback, carries the same `requestId`.

use std::net::{IpAddr, SocketAddr};

use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::ACCEPT;
use axum::middleware::Next;
use axum::response::Response;
use keywarden_core::id::RequestId;
use keywarden_core::restriction::{IpNetwork, canonical};
use keywarden_core::time::{Clock, SystemClock};

use crate::state::AppState;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: RequestId,
    /// Whether error bodies go out as `application/problem+json` (the client accepts it).
    pub problem_json: bool,
    /// The client's address: the peer address of the connection or, when the peer is a
    /// trusted proxy, what its `X-Forwarded-For` says (see [`client_address`]); absent when
    /// the server was not served with connection info (some tests build the router alone).
    pub client_ip: Option<IpAddr>,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

/// The current request's context; outside a request, a fresh id.
pub fn current() -> RequestContext {
    CONTEXT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| RequestContext {
            request_id: RequestId::generate(SystemClock.now()),
            problem_json: false,
            client_ip: None,
        })
}

/// The current request's id (outside a request, a fresh one), without copying the rest of
/// the context.
pub fn request_id() -> RequestId {
    CONTEXT
        .try_with(|c| c.request_id.clone())
        .unwrap_or_else(|_| RequestId::generate(SystemClock.now()))
}

/// The current request's client address, without copying the rest of the context.
pub fn client_ip() -> Option<IpAddr> {
    CONTEXT.try_with(|c| c.client_ip).ok().flatten()
}

/// The client address of a request from `peer`. Only a trusted proxy's `X-Forwarded-For` is
/// believed, and only as far as the chain of trusted proxies goes: reading from the right
/// (each proxy appends the address it saw), the first entry that is not itself a trusted
/// proxy is the client. Anything left of it could have been written by the client. A
/// malformed entry ends the walk at the last address known good.
pub fn client_address<'a>(
    peer: IpAddr,
    trusted: &[IpNetwork],
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for entry in forwarded_for.rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !is_trusted(client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Errors are `application/problem+json` only when the client's `Accept` allows it, as Unkey
/// does; the SDKs send `Accept: application/json` and get plain JSON.
fn wants_problem_json(accept: &str) -> bool {
    accept.contains("application/problem+json")
        || accept.contains("application/*")
        || accept.contains("*/*")
}

/// Runs a request inside its context, and counts and times it for `/metrics` (one middleware
/// for both: every layer costs the hot path a boxed future).
pub async fn with_request_context(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = state.requests.endpoint_of(&request);
    let started = Instant::now();
    let problem_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_problem_json);
    let client_ip =
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                if state.trusted_proxies.is_empty() {
                    return canonical(peer.ip());
                }
                let forwarded = request
                    .headers()
                    .get_all(X_FORWARDED_FOR)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .collect::<Vec<_>>();
                client_address(peer.ip(), &state.trusted_proxies, forwarded.into_iter())
            });
    let context = RequestContext {
        request_id: RequestId::generate(SystemClock.now()),
        problem_json,
        client_ip,
    };
    let response = CONTEXT.scope(context, next.run(request)).await;
    endpoint.record(response.status(), started.elapsed());
    state.requests.record_failure(&response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|s| IpNetwork::parse(s).unwrap()).collect()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = nets(&["10.0.0.0/8"]);
        let client = client_address(ip("203.0.113.5"), &trusted, ["198.51.100.1"].into_iter());
        assert_eq!(client, ip("203.0.113.5"));
        let client = client_address(ip("10.0.0.1"), &[], ["198.51.100.1"].into_iter());
        assert_eq!(client, ip("10.0.0.1"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let chain = ["6.6.6.6", " 198.51.100.1", "10.1.1.1 "];
        assert_eq!(
            client_address(ip("10.0.0.1"), &trusted, chain.into_iter()),
            ip("198.51.100.1")
        );
        // Only trusted hops: the left-most is the best knowledge.
        assert_eq!(
            client_address(ip("10.0.0.1"), &trusted, ["10.2.2.2"].into_iter()),
            ip("10.2.2.2")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.1"), &trusted, std::iter::empty()),
            ip("10.0.0.1")
        );
        // Garbage stops the walk at the last good address.
        assert_eq!(
            client_address(ip("10.0.0.1"), &trusted, ["1.1.1.1", "junk"].into_iter()),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), &trusted, ["2001:db8::1"].into_iter()),
            ip("2001:db8::1")
        );
    }
}
