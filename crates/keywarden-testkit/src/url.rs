//! Service URLs taken apart just enough to point them somewhere else: the tests' URLs are
//! `scheme://[user[:password]@]host[:port][/path][?query]`, nothing fancier.

use std::net::{SocketAddr, ToSocketAddrs};

/// The pieces of a service URL.
struct Parts<'a> {
    scheme: &'a str,
    /// `user` or `user:password`, without the `@`.
    credentials: Option<&'a str>,
    host_port: &'a str,
    /// The path and query, as written.
    tail: &'a str,
}

fn parts(url: &str) -> Parts<'_> {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("not a URL with a scheme: {}", redacted(url)));
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    Parts {
        scheme,
        credentials,
        host_port,
        tail,
    }
}

/// `url` with one more query parameter (`name=value`, already encoded).
pub fn with_param(url: &str, param: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{param}")
}

/// The socket address of the service `url` names, for a [`crate::TcpProxy`] to forward to.
/// Without a port, the scheme's default (6379 for Redis, 5432 otherwise); a name that resolves
/// to several addresses gives its first IPv4 one, as the services listen on 127.0.0.1.
pub fn socket_of(url: &str) -> SocketAddr {
    let parts = parts(url);
    // A port is what follows the last colon, unless that colon is inside an IPv6 `[…]`.
    let has_port = parts
        .host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.contains(']'));
    let host_port = if has_port {
        parts.host_port.to_owned()
    } else if parts.scheme.starts_with("redis") {
        format!("{}:6379", parts.host_port)
    } else {
        format!("{}:5432", parts.host_port)
    };
    let addresses: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("cannot resolve {host_port} of {}: {e}", redacted(url)))
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .unwrap_or_else(|| panic!("{host_port} of {} has no address", redacted(url)))
}

/// `url` with its host and port replaced by `127.0.0.1:port`, keeping credentials, path and
/// query: the same service, reached through a proxy on that port.
pub fn via_port(url: &str, port: u16) -> String {
    let parts = parts(url);
    let credentials = parts
        .credentials
        .map(|credentials| format!("{credentials}@"))
        .unwrap_or_default();
    format!(
        "{}://{credentials}127.0.0.1:{port}{}",
        parts.scheme, parts.tail
    )
}

/// `url` fit for a panic message: a password in it is replaced by `***`.
pub(crate) fn redacted(url: &str) -> String {
    if !url.contains("://") {
        return url.to_owned();
    }
    let parts = parts(url);
    match parts.credentials.and_then(|c| c.split_once(':')) {
        Some((user, _password)) => format!(
            "{}://{user}:***@{}{}",
            parts.scheme, parts.host_port, parts.tail
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_port_keeps_everything_but_the_host_and_port() {
        assert_eq!(
            via_port("postgres://u:p@db.internal:6543/test?sslmode=disable", 4000),
            "postgres://u:p@127.0.0.1:4000/test?sslmode=disable"
        );
        assert_eq!(
            via_port("redis://127.0.0.1:6379", 4000),
            "redis://127.0.0.1:4000"
        );
    }

    #[test]
    fn socket_of_fills_in_the_default_port_of_the_scheme() {
        assert_eq!(
            socket_of("postgres://postgres@127.0.0.1/test"),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert_eq!(
            socket_of("redis://127.0.0.1"),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(
            socket_of("redis://:secret@127.0.0.1:7000/0"),
            "127.0.0.1:7000".parse().unwrap()
        );
        assert_eq!(
            socket_of("postgres://[::1]/test"),
            "[::1]:5432".parse().unwrap()
        );
    }

    #[test]
    fn parameters_are_appended_to_an_existing_query() {
        assert_eq!(with_param("postgres://h/db", "a=1"), "postgres://h/db?a=1");
        assert_eq!(
            with_param("postgres://h/db?a=1", "b=2"),
            "postgres://h/db?a=1&b=2"
        );
    }

    #[test]
    fn panic_messages_show_no_password() {
        assert_eq!(
            redacted("postgres://user:secret@h:5432/db"),
            "postgres://user:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://user@h/db"), "postgres://user@h/db");
    }
}
