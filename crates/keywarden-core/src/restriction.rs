//! Where a key may be used from: allowed client networks and, for keys used from browsers,
//! allowed `Origin`/`Referer` hosts. Set on a key, on an API (for all its keys), or both; a
//! verification must pass every set that applies, or it answers `FORBIDDEN`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The most entries one list of a [`Restrictions`] may have.
pub const MAX_RESTRICTION_ENTRIES: usize = 100;

/// Why a restriction entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestrictionError {
    #[error("must be an IP address or a CIDR network like 10.0.0.0/8 or 2001:db8::/32")]
    NotANetwork,
    #[error("the prefix length must be at most {max} for this address family")]
    PrefixTooLong { max: u8 },
    #[error("has host bits set; the network is {0}")]
    HostBitsSet(String),
    #[error(
        "must be a host like app.example.com, *.example.com or app.example.com:8443 \
         (no scheme, path or other wildcard)"
    )]
    NotAHost,
    #[error("must have at most {MAX_RESTRICTION_ENTRIES} entries")]
    TooMany,
}

/// An IP network: an address and a prefix length, with the host bits zero. A bare address
/// is the network of that one address (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address. A network with host bits set
    /// (`10.0.0.1/8`) is refused rather than silently widened or narrowed: it is most likely
    /// a typo, and the error names the network meant.
    pub fn parse(s: &str) -> Result<Self, RestrictionError> {
        let (address, prefix) = match s.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (s, None),
        };
        let address: IpAddr = address.parse().map_err(|_| RestrictionError::NotANetwork)?;
        let max = max_prefix(address);
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                p.parse::<u8>().map_err(|_| RestrictionError::NotANetwork)?
            }
            Some(_) => return Err(RestrictionError::NotANetwork),
        };
        if prefix > max {
            return Err(RestrictionError::PrefixTooLong { max });
        }
        let network = Self {
            address: masked(address, prefix),
            prefix,
        };
        if network.address != address {
            return Err(RestrictionError::HostBitsSet(network.to_string()));
        }
        Ok(network)
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, what
    /// a dual-stack listener reports for IPv4 clients) count as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(IpAddr::V4(ip), self.prefix) == IpAddr::V4(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(IpAddr::V6(ip), self.prefix) == IpAddr::V6(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNetwork {
    /// Canonical form: a single address bare, otherwise `address/prefix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.address) {
            write!(f, "{}", self.address)
        } else {
            write!(f, "{}/{}", self.address, self.prefix)
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The address with only its first `prefix` bits kept.
fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; any other address as is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// An allowed `Origin`/`Referer` host: an exact host (`app.example.com`) or every subdomain
/// of one (`*.example.com`, which does not match `example.com` itself), with an optional
/// port. Hosts compare case-insensitively; a pattern without a port allows any port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginPattern {
    /// Lowercase, without a trailing dot; for a wildcard, the part after `*.`.
    host: String,
    subdomains: bool,
    port: Option<u16>,
}

impl OriginPattern {
    pub fn parse(s: &str) -> Result<Self, RestrictionError> {
        let (subdomains, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (host, port) = split_host_port(rest).ok_or(RestrictionError::NotAHost)?;
        if !valid_host(&host) || (subdomains && host.starts_with('[')) {
            return Err(RestrictionError::NotAHost);
        }
        Ok(Self {
            host,
            subdomains,
            port,
        })
    }

    /// Whether a request from `site` is allowed by this pattern.
    pub fn matches(&self, site: &OriginHost) -> bool {
        if self.port.is_some_and(|port| site.port != Some(port)) {
            return false;
        }
        if self.subdomains {
            site.host
                .strip_suffix(self.host.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            site.host == self.host
        }
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subdomains {
            f.write_str("*.")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// The host (and port, when explicit) a browser request came from, read from an `Origin` or
/// `Referer` value (`https://app.example.com:8443/path`) or given bare (`app.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginHost {
    host: String,
    port: Option<u16>,
}

impl OriginHost {
    /// `None` for values without a usable host, such as the `null` origin of sandboxed pages.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if !scheme.is_empty() => rest,
            Some(_) => return None,
            None => value,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Credentials in a URL come before an `@`; the host is what follows the last one.
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = split_host_port(authority)?;
        valid_host(&host).then_some(Self { host, port })
    }
}

/// Splits `host[:port]` (IPv6 literals in brackets), lowercasing the host and dropping a
/// trailing dot. `None` when the port is not a number.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    Some((host, port))
}

/// A DNS name or IPv4 literal (letters, digits, hyphens; labels of 1..63), or a bracketed
/// IPv6 literal; at most 253 characters.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// What a verification knows about where the call came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallSite {
    pub ip: Option<IpAddr>,
    pub origin: Option<OriginHost>,
}

/// Which restriction refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is not in any allowed network (or is unknown).
    Address,
    /// The origin is not an allowed host (or the call named none).
    Origin,
}

/// The restrictions of a key or an API. An empty list restricts nothing; a value with both
/// lists empty is never stored (it is the same as no restrictions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restrictions {
    allowed_ips: Vec<IpNetwork>,
    allowed_origins: Vec<OriginPattern>,
}

impl Restrictions {
    /// `None` when both lists are empty: nothing to check. Repeated entries are kept once.
    pub fn new(
        mut allowed_ips: Vec<IpNetwork>,
        mut allowed_origins: Vec<OriginPattern>,
    ) -> Result<Option<Self>, RestrictionError> {
        if allowed_ips.len() > MAX_RESTRICTION_ENTRIES
            || allowed_origins.len() > MAX_RESTRICTION_ENTRIES
        {
            return Err(RestrictionError::TooMany);
        }
        dedup(&mut allowed_ips);
        dedup(&mut allowed_origins);
        Ok(
            (!allowed_ips.is_empty() || !allowed_origins.is_empty()).then_some(Self {
                allowed_ips,
                allowed_origins,
            }),
        )
    }

    pub fn allowed_ips(&self) -> &[IpNetwork] {
        &self.allowed_ips
    }

    pub fn allowed_origins(&self) -> &[OriginPattern] {
        &self.allowed_origins
    }

    /// The wire and stored form: `{"allowedIps": [...], "allowedOrigins": [...]}`, each
    /// entry canonical.
    pub fn to_json(&self) -> serde_json::Value {
        let text = |items: &mut dyn Iterator<Item = String>| -> Vec<String> { items.collect() };
        serde_json::json!({
            "allowedIps": text(&mut self.allowed_ips.iter().map(ToString::to_string)),
            "allowedOrigins": text(&mut self.allowed_origins.iter().map(ToString::to_string)),
        })
    }

    /// Whether a call from `site` may use the key. Fails closed: with an address list, a call
    /// whose address is unknown is refused; with an origin list, so is a call that names no
    /// origin (a server-side call of a browser-only key).
    pub fn check(&self, site: &CallSite) -> Result<(), Refusal> {
        if !self.allowed_ips.is_empty()
            && !site
                .ip
                .is_some_and(|ip| self.allowed_ips.iter().any(|net| net.contains(ip)))
        {
            return Err(Refusal::Address);
        }
        if !self.allowed_origins.is_empty()
            && !site
                .origin
                .as_ref()
                .is_some_and(|origin| self.allowed_origins.iter().any(|p| p.matches(origin)))
        {
            return Err(Refusal::Origin);
        }
        Ok(())
    }
}

fn dedup<T: PartialEq>(items: &mut Vec<T>) {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !kept.contains(&item) {
            kept.push(item);
        }
    }
    *items = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNetwork {
        IpNetwork::parse(s).unwrap()
    }

    #[test]
    fn networks_contain_their_edges_and_nothing_beyond() {
        let n = net("10.1.0.0/16");
        assert!(n.contains(ip("10.1.0.0")));
        assert!(n.contains(ip("10.1.255.255")));
        assert!(!n.contains(ip("10.0.255.255")));
        assert!(!n.contains(ip("10.2.0.0")));
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("10.1.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("::/0").contains(ip("::1")));
    }

    #[test]
    fn a_bare_address_is_a_single_host() {
        assert_eq!(net("192.0.2.7"), net("192.0.2.7/32"));
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.8")));
        assert_eq!(net("::1").to_string(), "::1");
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn mapped_ipv6_clients_match_ipv4_rules() {
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.9.8.7")));
        assert!(!net("10.0.0.0/8").contains(ip("::ffff:11.9.8.7")));
    }

    #[test]
    fn malformed_networks_are_refused_with_a_reason() {
        assert_eq!(
            IpNetwork::parse("10.0.0.1/8"),
            Err(RestrictionError::HostBitsSet("10.0.0.0/8".into()))
        );
        assert_eq!(
            IpNetwork::parse("10.0.0.0/33"),
            Err(RestrictionError::PrefixTooLong { max: 32 })
        );
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "host",
            "::/129x",
        ] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn site(origin: &str) -> OriginHost {
        OriginHost::parse(origin).unwrap()
    }

    #[test]
    fn origin_patterns_match_hosts_case_insensitively() {
        let exact = OriginPattern::parse("App.Example.com").unwrap();
        assert!(exact.matches(&site("https://app.example.COM")));
        assert!(exact.matches(&site("https://app.example.com:8443/some/page?q=1")));
        assert!(!exact.matches(&site("https://evil-app.example.com")));
        assert!(!exact.matches(&site("https://app.example.com.evil.net")));
        let wild = OriginPattern::parse("*.example.com").unwrap();
        assert!(wild.matches(&site("https://a.example.com")));
        assert!(wild.matches(&site("https://a.b.example.com")));
        assert!(!wild.matches(&site("https://example.com")));
        assert!(!wild.matches(&site("https://badexample.com")));
        let port = OriginPattern::parse("localhost:3000").unwrap();
        assert!(port.matches(&site("http://localhost:3000")));
        assert!(!port.matches(&site("http://localhost:3001")));
        assert!(!port.matches(&site("http://localhost")));
        assert!(
            OriginPattern::parse("[::1]:8080")
                .unwrap()
                .matches(&site("http://[::1]:8080/"))
        );
    }

    #[test]
    fn malformed_origin_patterns_are_refused() {
        for bad in [
            "",
            "https://app.example.com",
            "app.example.com/path",
            "*example.com",
            "a.*.example.com",
            "*",
            "app.example.com:http",
            "app..example.com",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let app = OriginPattern::parse("app.example.com").unwrap();
        assert!(!app.matches(&site("null")));
        assert_eq!(OriginHost::parse("https://"), None);
    }

    #[test]
    fn restrictions_pass_only_when_every_list_allows_the_call() {
        let r = Restrictions::new(
            vec![net("10.0.0.0/8")],
            vec![OriginPattern::parse("app.example.com").unwrap()],
        )
        .unwrap()
        .unwrap();
        let good = CallSite {
            ip: Some(ip("10.2.3.4")),
            origin: Some(site("https://app.example.com")),
        };
        assert_eq!(r.check(&good), Ok(()));
        let elsewhere = CallSite {
            ip: Some(ip("11.2.3.4")),
            ..good.clone()
        };
        assert_eq!(r.check(&elsewhere), Err(Refusal::Address));
        let no_origin = CallSite {
            origin: None,
            ..good.clone()
        };
        assert_eq!(r.check(&no_origin), Err(Refusal::Origin));
        assert_eq!(r.check(&CallSite::default()), Err(Refusal::Address));
    }

    #[test]
    fn empty_restrictions_are_none_and_lists_are_bounded() {
        assert_eq!(Restrictions::new(Vec::new(), Vec::new()), Ok(None));
        let many = vec![net("10.0.0.0/8"); MAX_RESTRICTION_ENTRIES + 1];
        assert_eq!(
            Restrictions::new(many, Vec::new()),
            Err(RestrictionError::TooMany)
        );
        let repeated = Restrictions::new(vec![net("::1"), net("::1/128")], Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(repeated.allowed_ips().len(), 1);
    }
}
