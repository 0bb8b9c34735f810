//! Which `Host` a request may name. A web page can make a browser send requests to a gateway on
//! loopback by pointing a name it controls at 127.0.0.1 (DNS rebinding): the browser then treats
//! the gateway as that name's own origin, and same-origin rules no longer protect it. The one
//! thing such a request cannot hide is its `Host`, which names the attacker's domain. So by
//! default a gateway answers only the names of the address it listens on; an operator who puts it
//! behind a name lists that name (`server.allowed_hosts`). A request that names no host (an
//! HTTP/1.0 client) is answered: browsers always send one, so it cannot be a rebinding.

use std::net::IpAddr;

use http::{HeaderMap, StatusCode, Uri, header};

use crate::error::ApiError;

/// The longest stretch of a refused `Host` quoted back in the error.
const QUOTED: usize = 100;

/// The `Host` names a gateway answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Any host: a gateway listening on every address, or one configured with `*`.
    Any,
    /// Only these, each as `(host, port)`; a `None` port matches any port. Hosts are lowercase,
    /// IPv6 addresses in brackets.
    Only(Vec<(String, Option<u16>)>),
}

impl AllowedHosts {
    /// The hosts for a gateway listening on `listen`: the configured list when there is one,
    /// else the address's own names (loopback: `localhost`, `127.0.0.1`, `[::1]` and the
    /// address itself; another specific address: that address; every address: any host).
    pub fn new(listen: IpAddr, configured: Option<&[String]>) -> AllowedHosts {
        if let Some(list) = configured {
            if list.iter().any(|entry| entry == "*") {
                return AllowedHosts::Any;
            }
            return AllowedHosts::Only(list.iter().map(|entry| split(entry)).collect());
        }
        if listen.is_unspecified() {
            return AllowedHosts::Any;
        }
        let own = match listen {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        let mut names = Vec::new();
        if listen.is_loopback() {
            names.extend(["localhost", "127.0.0.1", "[::1]"].map(str::to_owned));
        }
        if !names.contains(&own) {
            names.push(own);
        }
        AllowedHosts::Only(names.into_iter().map(|name| (name, None)).collect())
    }

    /// Whether `host` (a `Host` header's value or a URI authority) is one of these.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            AllowedHosts::Any => true,
            AllowedHosts::Only(allowed) => {
                let (name, port) = split(host);
                allowed.iter().any(|(allowed_name, allowed_port)| {
                    *allowed_name == name && allowed_port.is_none_or(|p| port == Some(p))
                })
            }
        }
    }

    /// Refuses a request whose `Host` header or request-target authority (HTTP/2's
    /// `:authority`, HTTP/1's absolute form) names a host not allowed here: 421.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        if matches!(self, AllowedHosts::Any) {
            return Ok(());
        }
        let named = uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .into_iter()
            .chain(headers.get_all(header::HOST).iter().map(|v| v.as_bytes()));
        for host in named {
            let allowed = std::str::from_utf8(host).is_ok_and(|h| self.allows(h));
            if !allowed {
                return Err(self.refusal(host));
            }
        }
        Ok(())
    }

    fn refusal(&self, host: &[u8]) -> ApiError {
        let host = String::from_utf8_lossy(host);
        let quoted: String = host.chars().take(QUOTED).collect();
        let cut = if quoted.len() < host.len() { "…" } else { "" };
        let allowed = match self {
            AllowedHosts::Any => String::new(),
            AllowedHosts::Only(list) => list
                .iter()
                .map(|(name, port)| match port {
                    Some(port) => format!("{name}:{port}"),
                    None => name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid_request_error",
            format!(
                "this gateway does not answer for host `{quoted}{cut}` (it answers {allowed}; \
                 see server.allowed_hosts)"
            ),
        )
        .code("host_not_allowed")
    }
}

/// `host[:port]` or `[v6][:port]` into its lowercase host and port. A port that is not a number
/// stays part of the host, which then matches nothing.
fn split(host: &str) -> (String, Option<u16>) {
    let host = host.trim();
    let (name, port) = if host.starts_with('[') {
        match host.split_once(']') {
            Some((v6, rest)) => match rest.strip_prefix(':').map(str::parse::<u16>) {
                Some(Ok(port)) => (format!("{v6}]"), Some(port)),
                None if rest.is_empty() => (format!("{v6}]"), None),
                _ => (host.to_owned(), None),
            },
            None => (host.to_owned(), None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') => match port.parse::<u16>() {
                Ok(port) => (name.to_owned(), Some(port)),
                Err(_) => (host.to_owned(), None),
            },
            _ => (host.to_owned(), None),
        }
    };
    (name.to_ascii_lowercase(), port)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn check(hosts: &AllowedHosts, host: &str) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        hosts.check(&Uri::from_static("/v1/models"), &headers)
    }

    #[test]
    fn a_loopback_gateway_answers_its_own_names_on_any_port() {
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        for host in [
            "localhost",
            "localhost:8080",
            "LocalHost:1",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.2",
            "::1",
            "localhost:notaport",
            "",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn a_refused_host_is_a_421_naming_it_and_the_allowed_ones() {
        let hosts = AllowedHosts::new(IpAddr::V6(Ipv6Addr::LOCALHOST), None);
        let error = check(&hosts, "evil.example:8080").unwrap_err();
        assert_eq!(error.status, StatusCode::MISDIRECTED_REQUEST);
        assert!(error.message.contains("`evil.example:8080`"), "{error:?}");
        assert!(error.message.contains("localhost, 127.0.0.1, [::1]"));
        assert!(check(&hosts, "[::1]:9").is_ok());
        // Absolute-form and HTTP/2 authorities are checked as well.
        let uri = Uri::from_static("http://evil.example/v1/models");
        assert!(hosts.check(&uri, &HeaderMap::new()).is_err());
        // No host at all (HTTP/1.0): answered.
        assert!(
            hosts
                .check(&Uri::from_static("/v1/models"), &HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn a_long_refused_host_is_quoted_cut_short() {
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        let long = "a".repeat(5000);
        let error = check(&hosts, &long).unwrap_err();
        assert!(error.message.len() < 400, "{}", error.message.len());
    }

    #[test]
    fn other_addresses_answer_their_own_name_and_every_address_answers_any() {
        let specific = AllowedHosts::new("10.0.0.5".parse().unwrap(), None);
        assert!(specific.allows("10.0.0.5:8080"));
        assert!(!specific.allows("localhost"));
        let v6 = AllowedHosts::new("fd00::5".parse().unwrap(), None);
        assert!(v6.allows("[fd00::5]:8080"));
        assert_eq!(
            AllowedHosts::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), None),
            AllowedHosts::Any
        );
        assert_eq!(
            AllowedHosts::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), None),
            AllowedHosts::Any
        );
    }

    #[test]
    fn a_configured_list_replaces_the_defaults() {
        let list = ["api.example.com".to_owned(), "gw.lan:8443".to_owned()];
        let hosts = AllowedHosts::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Some(&list));
        assert!(hosts.allows("API.example.com:443"));
        assert!(hosts.allows("gw.lan:8443"));
        assert!(!hosts.allows("gw.lan:8080"));
        assert!(!hosts.allows("localhost"));
        let any = ["*".to_owned()];
        assert_eq!(
            AllowedHosts::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Some(&any)),
            AllowedHosts::Any
        );
    }
}
