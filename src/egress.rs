//! The egress policy: which addresses the server's outbound connections may reach. Every
//! outbound client goes through it — webhook delivery, the skills registry and archive
//! downloads, git clones of skill sources, model providers and MCP servers over HTTP — built
//! by [`Client::new`] (or, for a client another crate drives, [`client_builder`]).
//!
//! Checked on the resolved address, not the host name, so a name that resolves to a refused
//! address (DNS rebinding, a hostile URL) is refused too: [`PolicyResolver`] is the HTTP
//! client's DNS resolver and hands it only allowed addresses. Literal-IP URLs are never
//! resolved by the client, so [`Client`] checks every URL before sending
//! ([`NetworkPolicy::check_url`]), and a redirect is followed only to an address the policy
//! allows (webhooks and model providers follow none). No proxy from the environment is used
//! (a proxy would resolve names itself, past the policy).
//!
//! Rules, from `spec.webhooks` of the Config (`allow_networks`, `deny_networks`; they govern
//! every outbound connection, not only webhooks):
//! 1. an address in `deny_networks` is always refused;
//! 2. if `allow_networks` is non-empty it is an allow-list: only addresses in it are allowed,
//!    and an entry may open a range the defaults refuse (e.g. a link-local appliance);
//! 3. otherwise link-local (`169.254.0.0/16`, `fe80::/10` — which covers the cloud metadata
//!    services at `169.254.169.254` and `169.254.170.2`), the other known cloud metadata
//!    addresses (`fd00:ec2::254`, `100.100.100.200`, `168.63.129.16`, `192.0.0.192`),
//!    multicast, unspecified (`0.0.0.0/8`, `::`) and broadcast are refused; loopback and
//!    private ranges are allowed, so a receiver or model server on `localhost` works.
//!
//! An IPv6 address that carries an IPv4 address is judged as both: IPv4-mapped
//! (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), NAT64 (`64:ff9b::/96`,
//! `64:ff9b:1::/48` with the IPv4 in the last 32 bits), 6to4 (`2002:AABB:CCDD::/16`) and
//! Teredo (`2001::/32`, server and client address). It is refused if any form is refused.
//!
//! Limits: git runs as its own process with its own resolver, so for a git URL the host is
//! resolved and checked just before `git` runs ([`Client::check_resolved`]) and redirects are
//! off; a name whose answer changes between that check and git's own lookup is not caught.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;

use crate::manifest::kinds::{ConfigSpec, WebhooksConfig};

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

/// The address itself plus every IPv4 address it carries (see the module doc).
pub fn forms(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    let IpAddr::V6(v6) = ip else {
        return out;
    };
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(mapped) = v6.to_ipv4_mapped() {
        out.push(IpAddr::V4(mapped));
    }
    // IPv4-compatible ::a.b.c.d (deprecated, but stacks still route it); `::` and `::1` are
    // themselves, not IPv4.
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        out.push(v4(s[6], s[7]));
    }
    // NAT64, well-known prefix 64:ff9b::/96 and local-use 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        out.push(v4(s[6], s[7]));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        out.push(v4(s[1], s[2]));
    }
    // Teredo 2001:0:SSSS:SSSS:…:CCCC:CCCC (client address inverted).
    if s[0] == 0x2001 && s[1] == 0 {
        out.push(v4(s[2], s[3]));
        out.push(v4(!s[6], !s[7]));
    }
    out
}

fn default_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            const METADATA: [Ipv4Addr; 3] = [
                Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
                Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server
                Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (classic)
            ];
            if METADATA.contains(&v4) {
                Some("cloud metadata")
            } else if v4.is_link_local() {
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

    /// A policy refusing `deny` on top of the defaults (tests, and callers that add ranges).
    pub fn denying(deny: Vec<IpNet>) -> NetworkPolicy {
        NetworkPolicy {
            allow: Vec::new(),
            deny,
        }
    }

    /// Whether `ip` may be connected to: every form it carries ([`forms`]) is judged, and
    /// the address is refused if any is. An allow-list entry opens an address only when it
    /// holds the address itself (or its IPv4-mapped form), so an allowed IPv6 range never
    /// lets an embedded refused IPv4 address through.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let all = forms(ip);
        if let Some(net) = self.deny.iter().find(|n| all.iter().any(|a| n.contains(a))) {
            return Err(Refusal::Denied(*net));
        }
        if !self.allow.is_empty() {
            let own = [ip, canonical(ip)];
            if !self.allow.iter().any(|n| own.iter().any(|a| n.contains(a))) {
                return Err(Refusal::NotAllowed);
            }
            // Embedded addresses other than the mapped form must pass on their own.
            for embedded in all.iter().skip(1).filter(|a| !own.contains(a)) {
                if !self.allow.iter().any(|n| n.contains(embedded)) {
                    if let Some(why) = default_refusal(*embedded) {
                        return Err(Refusal::Default(why));
                    }
                }
            }
            return Ok(());
        }
        match all.iter().find_map(|a| default_refusal(canonical(*a))) {
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

/// A reqwest error with its causes (where a policy refusal is), without the URL.
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The policy of a Config; an invalid network in it refuses everything (the Config itself is
/// reported invalid by the reconciler, so this only matters until it is fixed).
pub fn policy_of(config: &ConfigSpec) -> Arc<NetworkPolicy> {
    Arc::new(NetworkPolicy::new(&config.webhooks).unwrap_or_else(|e| {
        tracing::warn!("{e}; outbound connections are refused until it is fixed");
        NetworkPolicy {
            allow: Vec::new(),
            deny: vec![
                "0.0.0.0/0".parse().expect("valid"),
                "::/0".parse().expect("valid"),
            ],
        }
    }))
}

/// A reqwest client builder under `policy`: its resolver, a redirect policy that follows (at
/// most 5) redirects only to URLs the policy allows, no proxy. Callers add timeouts, a user
/// agent, or `redirect(Policy::none())`; they must not replace the resolver. Prefer
/// [`Client::new`], which also checks literal-IP URLs before sending.
pub fn client_builder(
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
) -> reqwest::ClientBuilder {
    let on_redirect = policy.clone();
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver::new(policy, lookup)))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                return attempt.error(Refused("too many redirects".into()));
            }
            match on_redirect.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(why) => attempt.error(Refused(format!("redirect {why}"))),
            }
        }))
}

/// An outbound HTTP client under the egress policy: every request's URL is checked before it
/// is sent (literal addresses), names are checked after resolution, redirects re-checked. The
/// reqwest client is built on first use (loading the TLS roots takes a while), so a caller
/// that ends up not sending (a local skill source) pays nothing.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

type Adjust = dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync;

struct Inner {
    policy: Arc<NetworkPolicy>,
    lookup: Arc<dyn Lookup>,
    resolver: PolicyResolver,
    adjust: Box<Adjust>,
    built: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl Client {
    /// A client under `policy`; `adjust` sets timeouts, user agent, redirects.
    pub fn new(
        policy: Arc<NetworkPolicy>,
        adjust: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Result<Client, String> {
        Self::with_lookup(policy, Arc::new(SystemLookup), adjust)
    }

    /// [`Client::new`] with a given name lookup (tests map names to any address).
    pub fn with_lookup(
        policy: Arc<NetworkPolicy>,
        lookup: Arc<dyn Lookup>,
        adjust: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Result<Client, String> {
        Ok(Client {
            inner: Arc::new(Inner {
                resolver: PolicyResolver::new(policy.clone(), lookup.clone()),
                policy,
                lookup,
                adjust: Box::new(adjust),
                built: std::sync::OnceLock::new(),
            }),
        })
    }

    fn http(&self) -> Result<&reqwest::Client, Refused> {
        let i = &self.inner;
        i.built
            .get_or_init(|| {
                (i.adjust)(client_builder(i.policy.clone(), i.lookup.clone()))
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .as_ref()
            .map_err(|e| Refused(e.clone()))
    }

    /// A request to `url`, refused before anything is sent when the URL is not http(s) or
    /// names a refused literal address.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("invalid URL: {e}")))?;
        self.inner.policy.check_url(&parsed).map_err(Refused)?;
        Ok(self.http()?.request(method, parsed))
    }

    /// `GET url` (see [`Client::request`]).
    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::GET, url)
    }

    /// `POST url` (see [`Client::request`]).
    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.request(reqwest::Method::POST, url)
    }

    /// The reqwest client, for a library that sends itself (rmcp): check its URL with
    /// [`Client::check_url`] first; names and redirects are still under the policy.
    pub fn reqwest(&self) -> Result<&reqwest::Client, Refused> {
        self.http()
    }

    /// Checks a URL's scheme and literal address.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("invalid URL: {e}")))?;
        self.inner.policy.check_url(&parsed).map_err(Refused)
    }

    /// For a program that resolves on its own (git): checks the URL's host now, a literal
    /// address directly and a name by resolving it. URLs without a host (local paths,
    /// scp-like `user@host:path`) are left alone: git's `ssh` does its own lookup.
    pub async fn check_resolved(&self, url: &str) -> Result<(), Refused> {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Ok(());
        };
        let Some(host) = parsed.host_str() else {
            return Ok(());
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self
                .inner
                .policy
                .check(ip)
                .map_err(|why| Refused(format!("refused by network policy: {ip} is {why}")));
        }
        self.inner
            .resolver
            .resolve_host(bare)
            .await
            .map(|_| ())
            .map_err(Refused)
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

    /// Every encoded IPv6 form of an IPv4 address.
    fn encodings(v4: Ipv4Addr) -> Vec<IpAddr> {
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        vec![
            IpAddr::V4(v4),
            IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, hi, lo)),
            IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0, hi, lo, 0, 0, 0xf000, 1)),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0, 0x0808, 0x0808, 0, 0, !hi, !lo)),
        ]
    }

    #[test]
    fn every_refused_range_is_refused_in_every_encoded_form() {
        let p = policy(&[], &[]);
        for v4 in [
            "169.254.169.254",
            "169.254.170.2",
            "169.254.0.1",
            "100.100.100.200",
            "168.63.129.16",
            "192.0.0.192",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
        ] {
            let v4: Ipv4Addr = v4.parse().unwrap();
            for form in encodings(v4) {
                assert!(
                    p.check(form).is_err(),
                    "{form} (carrying {v4}) should be refused"
                );
            }
        }
        for v6 in ["fd00:ec2::254", "fe80::1", "febf::1", "ff02::1", "::"] {
            assert!(p.check(ip(v6)).is_err(), "{v6} should be refused");
        }
        // Denying loopback denies it in every form too.
        let p = policy(&[], &["127.0.0.0/8", "::1/128"]);
        for form in encodings(Ipv4Addr::new(127, 0, 0, 1)) {
            assert!(p.check(form).is_err(), "{form} should be refused");
        }
        assert!(p.check(ip("::1")).is_err());
        // Allowed by default, in every form: loopback and private ranges.
        let p = policy(&[], &[]);
        for v4 in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "8.8.8.8"] {
            let v4: Ipv4Addr = v4.parse().unwrap();
            for form in encodings(v4) {
                assert_eq!(p.check(form), Ok(()), "{form} (carrying {v4})");
            }
        }
        assert_eq!(p.check(ip("::1")), Ok(()));
        // An allow-list entry for a v6 range does not open a refused embedded v4 address.
        let p = policy(&["2002::/16"], &[]);
        assert!(p.check(ip("2002:a9fe:a9fe::1")).is_err());
        assert_eq!(p.check(ip("2002:0a00:0001::1")), Ok(()));
    }

    #[tokio::test]
    async fn a_client_refuses_literal_urls_and_checks_names_for_git() {
        let mut table = std::collections::HashMap::new();
        table.insert("metadata.test".to_string(), vec![ip("64:ff9b::a9fe:a9fe")]);
        let client = Client::with_lookup(
            Arc::new(policy(&[], &[])),
            Arc::new(StaticLookup(table)),
            |b| b,
        )
        .unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[::a9fe:a9fe]/",
            "http://100.100.100.200/",
            "file:///etc/passwd",
        ] {
            assert!(client.get(url).is_err(), "{url}");
        }
        assert!(client
            .check_resolved("https://metadata.test/repo.git")
            .await
            .is_err());
        assert!(client
            .check_resolved("http://[::ffff:169.254.169.254]/r")
            .await
            .is_err());
        assert!(client.check_resolved("/local/path").await.is_ok());
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
