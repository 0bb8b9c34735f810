//! An origin (`scheme://host[:port]`) and the check that a request URL goes to it. Grants and
//! credentials are both lists of origins, checked with the same string test.

use std::fmt;

use crate::error::{EgressError, ErrorKind};

/// Where requests go, as `scheme://host[:port]` in the URL standard's ASCII serialisation:
/// lowercase, punycode host, default port left out. Only `http` and `https` have one here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// The origin of `url` (`https://api.groq.com/openai/v1` → `https://api.groq.com`).
    /// Fails on a URL that does not parse and on one with no network origin (`data:`, `file:`).
    pub fn of(url: &str) -> Result<Origin, EgressError> {
        let parsed = url::Url::parse(url).map_err(|e| {
            EgressError::new(ErrorKind::Setup, format!("{url:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EgressError::new(
                ErrorKind::Setup,
                format!("{url:?} is not an http or https URL"),
            ));
        }
        let origin = parsed.origin().ascii_serialization();
        // An opaque origin serialises as "null"; http(s) URLs always have a host, but the
        // check costs nothing and keeps "null" from ever matching a request.
        if origin == "null" {
            return Err(EgressError::new(
                ErrorKind::Setup,
                format!("{url:?} has no origin"),
            ));
        }
        Ok(Origin(origin))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `url` goes to exactly this origin.
    pub fn matches(&self, url: &str) -> bool {
        same_origin(url, &self.0)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `url` goes to exactly `origin` (`scheme://host[:port]`): a string check, because
/// parsing every upstream URL twice (here and in the HTTP client) showed up in profiles. A URL
/// that spells the origin differently (another case, an explicit default port) fails the
/// check and goes without the credential, or is denied: the safe direction. A URL that passes
/// has its authority end right after `origin` (at `/`, `?`, `#` or the end), so the client
/// parses it to this very origin: userinfo (`@`), a longer host or another port cannot follow.
pub(crate) fn same_origin(url: &str, origin: &str) -> bool {
    url.strip_prefix(origin)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_exact_origin() {
        let origin = "https://api.groq.com";
        assert!(same_origin(
            "https://api.groq.com/openai/v1/chat/completions",
            origin
        ));
        assert!(same_origin("https://api.groq.com", origin));
        assert!(same_origin("https://api.groq.com?x=1", origin));
        assert!(same_origin("https://api.groq.com#top", origin));
        assert!(!same_origin("https://api.groq.com.evil.example/v1", origin));
        assert!(!same_origin("https://api.groq.com:8443/v1", origin));
        assert!(!same_origin("https://api.groq.com@evil.example/v1", origin));
        assert!(!same_origin(
            "https://api.groq.com\\@evil.example/v1",
            origin
        ));
        assert!(!same_origin("http://api.groq.com/v1", origin));
        assert!(!same_origin(
            "https://evil.example/https://api.groq.com/",
            origin
        ));
        assert!(same_origin(
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:8081/v1",
            "http://127.0.0.1:8080"
        ));
        assert!(!same_origin(
            "http://127.0.0.1:80800/v1",
            "http://127.0.0.1:8080"
        ));
    }

    #[test]
    fn an_origin_is_the_ascii_serialisation_of_scheme_host_and_port() {
        let of = |url| Origin::of(url).map(|o| o.as_str().to_owned());
        assert_eq!(
            of("https://api.groq.com/openai/v1"),
            Ok("https://api.groq.com".into())
        );
        assert_eq!(
            of("HTTPS://API.Groq.com:443/"),
            Ok("https://api.groq.com".into())
        );
        assert_eq!(
            of("http://127.0.0.1:8080/v1?x=1"),
            Ok("http://127.0.0.1:8080".into())
        );
        assert_eq!(of("http://[::1]:9/"), Ok("http://[::1]:9".into()));
    }

    #[test]
    fn urls_without_a_network_origin_have_none() {
        for url in [
            "not a url",
            "data:text/plain,hi",
            "file:///etc/passwd",
            "ftp://a.b/",
        ] {
            let error = Origin::of(url).err();
            assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::Setup), "{url}");
        }
    }

    #[test]
    fn an_origin_matches_the_urls_it_serialises_as() {
        let origin = Origin::of("https://api.groq.com/openai").ok();
        assert!(
            origin
                .as_ref()
                .is_some_and(|o| o.matches("https://api.groq.com/v1"))
        );
        assert!(!origin.is_some_and(|o| o.matches("https://api.groq.community/v1")));
    }
}
