//! Where the limiter's Redis is, read from its URL: one endpoint, or the seed nodes of a Redis
//! Cluster.
//!
//! A cluster is named by the scheme `redis+cluster://` (`rediss+cluster://` for TLS), then the
//! user info and the path of a plain Redis URL around a comma-separated list of nodes:
//! `redis+cluster://user:password@host1:port1,host2:port2/?protocol=resp3`. The nodes are only
//! where the client starts: it learns the others, and which holds which slot, from them, so two
//! or three of any size of cluster will do. Each node gets the scheme, user info and the rest of
//! the URL as a plain `redis://` URL of its own, so every option a plain URL takes applies to
//! each node alike. Any other URL (`redis://`, `rediss://`, `unix://`…) is one endpoint.

use redis::{ErrorKind, RedisError, RedisResult};

/// A Redis URL, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisAddress<'a> {
    /// One endpoint: a standalone server, a Sentinel-managed primary behind a stable address,
    /// or a cluster proxy.
    Single(&'a str),
    /// A Redis Cluster, by the plain URLs of its seed nodes.
    Cluster { seeds: Vec<String> },
}

/// Schemes that name a cluster, each with the plain scheme its nodes are reached by.
const CLUSTER_SCHEMES: [(&str, &str); 2] =
    [("redis+cluster", "redis"), ("rediss+cluster", "rediss")];

impl<'a> RedisAddress<'a> {
    /// Reads `url`; fails only on a cluster URL without nodes or with an empty one. A node's
    /// own URL is checked later, by the client that connects to it.
    pub fn parse(url: &'a str) -> RedisResult<Self> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(Self::Single(url));
        };
        let Some(&(_, node_scheme)) = CLUSTER_SCHEMES
            .iter()
            .find(|(cluster, _)| scheme.eq_ignore_ascii_case(cluster))
        else {
            return Ok(Self::Single(url));
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, suffix) = rest.split_at(authority_end);
        // User info ends at the last `@` of the authority; a password may hold commas, so the
        // node list is split only after it is taken off.
        let (user_info, nodes) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        if nodes.is_empty() {
            return Err(invalid("a Redis Cluster URL must name at least one node"));
        }
        let seeds = nodes
            .split(',')
            .map(|node| {
                if node.is_empty() {
                    return Err(invalid("a Redis Cluster URL has an empty node in its list"));
                }
                Ok(format!("{node_scheme}://{user_info}{node}{suffix}"))
            })
            .collect::<RedisResult<Vec<String>>>()?;
        Ok(Self::Cluster { seeds })
    }
}

fn invalid(message: &'static str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(url: &str) -> Vec<String> {
        match RedisAddress::parse(url).unwrap() {
            RedisAddress::Cluster { seeds } => seeds,
            RedisAddress::Single(url) => panic!("{url} read as one endpoint"),
        }
    }

    #[test]
    fn plain_urls_are_one_endpoint() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6379/2",
            "rediss://user:pw@cache.internal:6380",
            "unix:///run/redis.sock",
            "redis+unix:///run/redis.sock",
            "127.0.0.1:6379",
        ] {
            assert_eq!(RedisAddress::parse(url).unwrap(), RedisAddress::Single(url));
        }
    }

    #[test]
    fn a_cluster_url_gives_each_node_the_rest_of_the_url() {
        assert_eq!(
            seeds("redis+cluster://10.0.0.1:7000,10.0.0.2:7001"),
            ["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]
        );
        assert_eq!(
            seeds("redis+cluster://user:p%40ss@a:7000,b:7001/?protocol=resp3"),
            [
                "redis://user:p%40ss@a:7000/?protocol=resp3",
                "redis://user:p%40ss@b:7001/?protocol=resp3",
            ]
        );
        assert_eq!(
            seeds("REDISS+CLUSTER://:pw@a:7000"),
            ["rediss://:pw@a:7000"]
        );
        assert_eq!(seeds("redis+cluster://[::1]:7000"), ["redis://[::1]:7000"]);
    }

    #[test]
    fn commas_in_a_password_do_not_split_nodes() {
        assert_eq!(
            seeds("redis+cluster://u:a,b@h1:1,h2:2"),
            ["redis://u:a,b@h1:1", "redis://u:a,b@h2:2"]
        );
    }

    #[test]
    fn a_cluster_url_without_a_node_is_invalid() {
        for url in [
            "redis+cluster://",
            "redis+cluster:///",
            "redis+cluster://user:pw@/",
            "redis+cluster://a:1,,b:2",
            "redis+cluster://a:1,",
        ] {
            let error = RedisAddress::parse(url).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidClientConfig, "{url}");
        }
    }
}
