//! The destination network policy: which addresses deliveries may connect to.
//!
//! Checked on the resolved address, not the host name, so a name that resolves to a refused
//! address (DNS rebinding, a hostile endpoint URL) is refused too: [`PolicyResolver`] is the
//! HTTP client's DNS resolver and hands it only allowed addresses. Literal-IP URLs are never
//! resolved by the client, so [`NetworkPolicy::check_url`] checks them before sending.
//!
//! Rules, from `spec.webhooks` of the Config:
//! 1. an address in `deny_networks` is always refused;
//! 2. if `allow_networks` is non-empty it is an allow-list: only addresses in it are allowed,
//!    and an entry may open a range the defaults refuse (e.g. a link-local appliance);
//! 3. otherwise link-local (`169.254.0.0/16`, `fe80::/10` — which covers the cloud metadata
//!    service `169.254.169.254`), `fd00:ec2::254` (AWS metadata over IPv6), multicast,
//!    unspecified (`0.0.0.0/8`, `::`) and broadcast are refused; loopback and private ranges
//!    are allowed, so a receiver on `localhost` works.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are judged as their IPv4 address.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;

use crate::manifest::kinds::WebhooksConfig;

/// An invalid network in the Config.
#[derive(Debug, thiserror::Error)]
#[error(
    "Config spec.webhooks.{field}: \"{value}\" is not a CIDR network (e.g. 10.0.0.0/8 or fd00::/8)"
)]
pub struct PolicyError {
    /// `allow_networks` or `deny_networks`.
    pub field: &'static str,
    pub value: String,
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// In `deny_networks`.
    Denied(IpNet),
    /// `allow_networks` is set and does not contain it.
    NotAllowed,
    /// Refused by default (the string says which range).
    Default(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Denied(net) => write!(f, "in deny_networks {net}"),
            Refusal::NotAllowed => f.write_str("not in allow_networks"),
            Refusal::Default(why) => f.write_str(why),
        }
    }
}

/// The policy in force, built from the Config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

fn parse_nets(field: &'static str, values: &[String]) -> Result<Vec<IpNet>, PolicyError> {
    values
        .iter()
        .map(|v| {
            let v = v.trim();
            // A bare address means that one host.
            v.parse::<IpNet>()
                .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| PolicyError {
                    field,
                    value: v.to_string(),
                })
        })
        .collect()
}

/// Judges mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn default_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                Some("link-local / cloud metadata")
            } else if v4.octets()[0] == 0 {
                Some("unspecified")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
            if v6 == AWS_METADATA {
                Some("cloud metadata")
            } else if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

impl NetworkPolicy {
    /// The policy of `spec.webhooks`; an invalid network is an error naming it.
    pub fn new(config: &WebhooksConfig) -> Result<NetworkPolicy, PolicyError> {
        Ok(NetworkPolicy {
            allow: parse_nets("allow_networks", &config.allow_networks)?,
            deny: parse_nets("deny_networks", &config.deny_networks)?,
        })
    }

    /// Whether `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let forms = [ip, canonical(ip)];
        if let Some(net) = self
            .deny
            .iter()
            .find(|n| forms.iter().any(|a| n.contains(a)))
        {
            return Err(Refusal::Denied(*net));
        }
        if !self.allow.is_empty() {
            return if self
                .allow
                .iter()
                .any(|n| forms.iter().any(|a| n.contains(a)))
            {
                Ok(())
            } else {
                Err(Refusal::NotAllowed)
            };
        }
        match default_refusal(canonical(ip)) {
            Some(why) => Err(Refusal::Default(why)),
            None => Ok(()),
        }
    }

    /// Checks a URL before sending: its scheme, and its host when that is a literal address
    /// (names are checked after resolution by [`PolicyResolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "refused: scheme \"{}\" is not http or https",
                url.scheme()
            ));
        }
        let Some(host) = url.host_str() else {
            return Err("refused: the URL has no host".to_string());
        };
        // IPv6 literals come bracketed; a name does not parse as an address.
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        self.check(ip)
            .map_err(|why| format!("refused by network policy: {ip} is {why}"))
    }

    /// The addresses of `addrs` the policy allows; the error names the host and what each
    /// address was refused for.
    pub fn filter(&self, host: &str, addrs: Vec<IpAddr>) -> Result<Vec<IpAddr>, String> {
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        let mut refused = Vec::new();
        let allowed: Vec<IpAddr> = addrs
            .into_iter()
            .filter(|ip| match self.check(*ip) {
                Ok(()) => true,
                Err(why) => {
                    refused.push(format!("{ip} ({why})"));
                    false
                }
            })
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "refused by network policy: {host} resolves only to {}",
                refused.join(", ")
            ));
        }
        Ok(allowed)
    }
}

/// Future of a name lookup.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Looks a host name up; injectable so tests can map any name to any address.
pub trait Lookup: Send + Sync {
    /// The addresses of `host`.
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The system resolver (`tokio::net::lookup_host`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A lookup from a fixed table, for tests (and unknown names fail).
#[derive(Debug, Default, Clone)]
pub struct StaticLookup(pub std::collections::HashMap<String, Vec<IpAddr>>);

impl Lookup for StaticLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let found = self.0.get(&host.to_ascii_lowercase()).cloned();
        let host = host.to_string();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host}: unknown")))
        })
    }
}

/// The HTTP client's DNS resolver: looks names up and returns only allowed addresses.
#[derive(Clone)]
pub struct PolicyResolver {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
}

impl PolicyResolver {
    /// A resolver applying `policy` to what `lookup` finds.
    pub fn new(policy: Arc<NetworkPolicy>, lookup: Arc<dyn Lookup>) -> PolicyResolver {
        PolicyResolver { policy, lookup }
    }

    /// The allowed addresses of `host`.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let addrs = self
            .lookup
            .lookup(host)
            .await
            .map_err(|e| format!("{host} cannot be resolved: {e}"))?;
        self.policy.filter(host, addrs)
    }
}

/// The policy refused every address of a name (the message says why).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = this.resolve_host(&host).await.map_err(Refused)?;
            let addrs: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        NetworkPolicy::new(&WebhooksConfig {
            allow_networks: allow.iter().map(|s| s.to_string()).collect(),
            deny_networks: deny.iter().map(|s| s.to_string()).collect(),
            ..WebhooksConfig::default()
        })
        .unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_refuse_metadata_link_local_multicast_unspecified_broadcast() {
        let p = policy(&[], &[]);
        for refused in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "224.0.0.1",
            "ff02::1",
            "0.0.0.0",
            "::",
            "255.255.255.255",
            "::ffff:169.254.169.254",
        ] {
            assert!(p.check(ip(refused)).is_err(), "{refused} should be refused");
        }
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.0.10",
            "172.16.0.1",
            "fd12::1",
            "93.184.216.34",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(p.check(ip(allowed)), Ok(()), "{allowed} should be allowed");
        }
    }

    #[test]
    fn deny_wins_and_an_allow_list_is_exclusive_and_may_open_defaults() {
        let p = policy(&[], &["127.0.0.0/8"]);
        assert!(matches!(p.check(ip("127.0.0.1")), Err(Refusal::Denied(_))));
        assert!(matches!(
            p.check(ip("::ffff:127.0.0.1")),
            Err(Refusal::Denied(_))
        ));
        let p = policy(&["10.0.0.0/8", "169.254.169.254"], &["10.9.0.0/16"]);
        assert_eq!(p.check(ip("10.1.1.1")), Ok(()));
        assert_eq!(p.check(ip("169.254.169.254")), Ok(()));
        assert!(matches!(p.check(ip("10.9.1.1")), Err(Refusal::Denied(_))));
        assert_eq!(p.check(ip("127.0.0.1")), Err(Refusal::NotAllowed));
    }

    #[test]
    fn an_invalid_network_is_named() {
        let err = NetworkPolicy::new(&WebhooksConfig {
            deny_networks: vec!["10.0.0.0/33".into()],
            ..WebhooksConfig::default()
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Config spec.webhooks.deny_networks: \"10.0.0.0/33\" is not a CIDR network (e.g. 10.0.0.0/8 or fd00::/8)"
        );
    }

    #[test]
    fn literal_urls_are_checked_before_sending() {
        let p = policy(&[], &[]);
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            p.check_url(&url("http://169.254.169.254/latest/meta-data"))
                .unwrap_err(),
            "refused by network policy: 169.254.169.254 is link-local / cloud metadata"
        );
        assert!(p.check_url(&url("http://[fe80::1]:8080/")).is_err());
        assert!(p.check_url(&url("http://127.0.0.1:4000/hook")).is_ok());
        assert!(p.check_url(&url("http://localhost:4000/hook")).is_ok());
        assert!(p.check_url(&url("ftp://example.com/")).is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses_and_names_the_host() {
        let mut table = std::collections::HashMap::new();
        table.insert("metadata.test".to_string(), vec![ip("169.254.169.254")]);
        table.insert(
            "mixed.test".to_string(),
            vec![ip("169.254.169.254"), ip("127.0.0.1")],
        );
        let r = PolicyResolver::new(Arc::new(policy(&[], &[])), Arc::new(StaticLookup(table)));
        assert_eq!(
            r.resolve_host("metadata.test").await.unwrap_err(),
            "refused by network policy: metadata.test resolves only to 169.254.169.254 (link-local / cloud metadata)"
        );
        assert_eq!(
            r.resolve_host("mixed.test").await.unwrap(),
            vec![ip("127.0.0.1")]
        );
        assert!(r
            .resolve_host("nowhere.test")
            .await
            .unwrap_err()
            .contains("cannot be resolved"));
    }
}
