//! Where a registry is reached: endpoints (mirrors, HTTPS, plain HTTP) and their TLS material.
//!
//! Configuration is a small JSON file with Docker's `daemon.json` keys (the TS store passes
//! `<root>/daemon.json`):
//!
//! ```json
//! { "registry-mirrors": ["https://mirror.example.com"],
//!   "insecure-registries": ["myregistry:5000", "10.0.0.0/8"] }
//! ```
//!
//! Docker's rules, kept here:
//! - `docker.io` is served by `https://registry-1.docker.io`; mirrors are tried first, for
//!   Docker Hub only.
//! - A registry is *insecure* when its `host:port` or host is listed, or when one of the
//!   host's addresses falls in a listed CIDR or in 127.0.0.0/8 (always insecure, as in Docker).
//!   An insecure registry is tried over HTTPS without certificate verification, then over
//!   plain HTTP. Every other registry is HTTPS only, verified.
//! - CA certificates and client key pairs come from `<certs dir>/<host:port>/`: `*.crt` are CA
//!   roots (added to the system's), `*.cert` + `*.key` (same stem) a client certificate, as
//!   Docker reads `/etc/docker/certs.d`. Several certs dirs may be given (a store's own first).
use crate::error::RegistryError;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// The registry name Docker Hub references carry.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is.
pub const DOCKER_HUB_ENDPOINT: &str = "https://registry-1.docker.io";

/// One way to reach a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host:port` or `http://host:port`, no trailing slash.
    pub base: String,
    /// Verify the server's certificate (false only for HTTPS to an insecure registry).
    pub verify: bool,
    /// A pull-through mirror (its failures fall through to the next endpoint).
    pub mirror: bool,
    /// `host[:port]` whose certs dir applies.
    pub cert_host: String,
}

/// A CIDR block.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }
    fn contains(&self, ip: &IpAddr) -> bool {
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(*b) as u128, 32u32),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(*b), 128u32),
            _ => return false,
        };
        let shift = bits - self.prefix as u32;
        if shift >= 128 {
            return true;
        }
        (a >> shift) == (b >> shift)
    }
}

/// The transport's configuration (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    pub mirrors: Vec<String>,
    insecure_hosts: Vec<String>,
    insecure_cidrs: Vec<Cidr>,
    /// Directories holding `<host:port>/` certificate dirs, searched in order.
    pub certs_dirs: Vec<PathBuf>,
}

#[derive(serde::Deserialize, Default)]
struct DaemonJson {
    #[serde(rename = "registry-mirrors", default)]
    mirrors: Vec<String>,
    #[serde(rename = "insecure-registries", default)]
    insecure: Vec<String>,
}

impl RegistryConfig {
    /// Reads `daemon_json` (a missing file is an empty configuration).
    pub fn load(daemon_json: Option<&Path>, certs_dirs: Vec<PathBuf>) -> Result<Self, RegistryError> {
        let parsed = match daemon_json {
            None => DaemonJson::default(),
            Some(p) => match std::fs::read(p) {
                Ok(bytes) => serde_json::from_slice::<DaemonJson>(&bytes)
                    .map_err(|e| RegistryError::Invalid(format!("{}: {e}", p.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => DaemonJson::default(),
                Err(e) => return Err(RegistryError::io("read", p, e)),
            },
        };
        Self::from_parts(parsed.mirrors, parsed.insecure, certs_dirs)
    }

    /// A configuration from its parts (validated as Docker validates daemon.json).
    pub fn from_parts(
        mirrors: Vec<String>,
        insecure: Vec<String>,
        certs_dirs: Vec<PathBuf>,
    ) -> Result<Self, RegistryError> {
        let mut cfg = RegistryConfig { certs_dirs, ..Default::default() };
        for m in mirrors {
            let m = m.trim_end_matches('/').to_string();
            let url =
                reqwest::Url::parse(&m).map_err(|e| RegistryError::Invalid(format!("invalid mirror {m:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(RegistryError::Invalid(format!("invalid mirror {m:?}: must be http(s)://host[:port]")));
            }
            cfg.mirrors.push(m);
        }
        for entry in insecure {
            let e = entry.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/');
            if e.contains('/') {
                let c = Cidr::parse(e)
                    .ok_or_else(|| RegistryError::Invalid(format!("invalid insecure registry CIDR {entry:?}")))?;
                cfg.insecure_cidrs.push(c);
            } else if e.is_empty() {
                return Err(RegistryError::Invalid("empty insecure registry entry".into()));
            } else {
                cfg.insecure_hosts.push(e.to_string());
            }
        }
        Ok(cfg)
    }

    /// Is `registry` (`host[:port]`) insecure (see the module docs)?
    pub fn is_insecure(&self, registry: &str) -> bool {
        if self.insecure_hosts.iter().any(|h| h == registry) {
            return true;
        }
        let (host, _) = split_host_port(registry);
        if self.insecure_hosts.iter().any(|h| h == host) {
            return true;
        }
        let loopback = Cidr { addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), prefix: 8 };
        let addrs: Vec<IpAddr> = match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            // Docker resolves names and checks every address (so `localhost` is insecure).
            Err(_) => (host, 0).to_socket_addrs().map(|it| it.map(|a| a.ip()).collect()).unwrap_or_default(),
        };
        addrs.iter().any(|ip| loopback.contains(ip) || self.insecure_cidrs.iter().any(|c| c.contains(ip)))
    }

    /// Endpoints to try for `registry`, in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        if registry == DOCKER_HUB || registry == "index.docker.io" || registry == "registry-1.docker.io" {
            for m in &self.mirrors {
                let host = reqwest::Url::parse(m).ok().map(|u| host_port_of(&u)).unwrap_or_default();
                let insecure = m.starts_with("http://") || self.is_insecure(&host);
                out.push(Endpoint { base: m.clone(), verify: !insecure, mirror: true, cert_host: host });
            }
            out.push(Endpoint {
                base: DOCKER_HUB_ENDPOINT.into(),
                verify: true,
                mirror: false,
                cert_host: "registry-1.docker.io".into(),
            });
            return out;
        }
        let https =
            Endpoint { base: format!("https://{registry}"), verify: true, mirror: false, cert_host: registry.into() };
        if self.is_insecure(registry) {
            out.push(Endpoint { verify: false, ..https.clone() });
            out.push(Endpoint { base: format!("http://{registry}"), verify: false, ..https });
        } else {
            out.push(https);
        }
        out
    }

    /// The certificate dirs that exist for `host_port`, in search order.
    pub fn cert_dirs_for(&self, host_port: &str) -> Vec<PathBuf> {
        self.certs_dirs.iter().map(|d| d.join(host_port)).filter(|d| d.is_dir()).collect()
    }
}

/// `host:port` of a URL (port only when explicit), as certs dirs are named.
pub fn host_port_of(u: &reqwest::Url) -> String {
    let host = match u.host() {
        Some(url::Host::Ipv6(a)) => format!("[{a}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// Splits `host[:port]` (IPv6 in brackets).
pub fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let host = &s[..end + 2];
            let port = s[end + 2..].strip_prefix(':');
            return (host, port);
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let c =
            RegistryConfig::from_parts(vec![], vec!["reg.example:5000".into(), "10.1.0.0/16".into()], vec![]).unwrap();
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("127.9.9.9"));
        assert!(c.is_insecure("reg.example:5000"));
        assert!(c.is_insecure("10.1.2.3:443"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(!c.is_insecure("[::1]:5000"), "only 127.0.0.0/8 is insecure by default, as in Docker");
        assert_eq!(
            c.endpoints("127.0.0.1:5000").iter().map(|e| e.base.as_str()).collect::<Vec<_>>(),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert_eq!(c.endpoints("[::1]:5000").len(), 1);
    }

    #[test]
    fn mirrors_serve_docker_hub_only() {
        let c = RegistryConfig::from_parts(vec!["http://127.0.0.1:9/".into()], vec![], vec![]).unwrap();
        let hub = c.endpoints("docker.io");
        assert_eq!(hub[0].base, "http://127.0.0.1:9");
        assert!(hub[0].mirror);
        assert_eq!(hub[1].base, DOCKER_HUB_ENDPOINT);
        assert_eq!(c.endpoints("quay.io").len(), 1);
        assert!(RegistryConfig::from_parts(vec!["ftp://x".into()], vec![], vec![]).is_err());
        assert!(RegistryConfig::from_parts(vec![], vec!["1.2.3.4/99".into()], vec![]).is_err());
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("[::1]:5000"), ("[::1]", Some("5000")));
        assert_eq!(split_host_port("a.b:1"), ("a.b", Some("1")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
    }
}
