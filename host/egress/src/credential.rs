//! Credentials: a secret that never prints, where it goes in a request, and the only origins
//! it may go to.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{EgressError, ErrorKind};
use crate::origin::Origin;

/// A secret that never prints: `Debug` shows `Secret(***)` and there is no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself: the only way out, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a credential goes in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Nowhere: the upstream takes no credential.
    None,
    /// A header whose value is `prefix` then the secret (`authorization: Bearer sk-…`).
    Header { name: String, prefix: String },
    /// A query parameter of this name (`?key=…`).
    Query(String),
}

/// A secret, where it goes, and the origins it may go to. Requests to any other origin leave
/// without it.
#[derive(Clone)]
pub struct Credential {
    secret: Secret,
    placement: Placement,
    origins: Box<[Origin]>,
    /// The header of a [`Placement::Header`], built once: checked at configuration time, and
    /// per request only a reference-counted clone.
    header: Option<(HeaderName, HeaderValue)>,
}

impl Credential {
    /// A credential for the origin of `base_url` and of each URL in `also` (a provider that
    /// answers from a second host). Fails when one of them has no origin, or when the header
    /// name, or the prefix and secret, cannot be a header.
    pub fn new(
        secret: Secret,
        placement: Placement,
        base_url: &str,
        also: &[String],
    ) -> Result<Credential, EgressError> {
        let mut origins = vec![Origin::of(base_url)?];
        for url in also {
            let origin = Origin::of(url)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        let header = match &placement {
            Placement::None => None,
            Placement::Header { name, prefix } => {
                let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    EgressError::new(
                        ErrorKind::Setup,
                        format!("the credential cannot go in header {name:?}: not a header name"),
                    )
                })?;
                let mut value = HeaderValue::try_from(format!("{prefix}{}", secret.expose()))
                    .map_err(|_| {
                        // Never name the value: it holds the secret.
                        EgressError::new(
                            ErrorKind::Setup,
                            format!(
                                "the credential cannot go in header {name:?}: its prefix or \
                                 secret holds characters a header value cannot (a newline, \
                                 a control character)"
                            ),
                        )
                    })?;
                // Kept out of the client's own debug output and out of HTTP/2 header compression
                // tables.
                value.set_sensitive(true);
                Some((header_name, value))
            }
            Placement::Query(param) if param.is_empty() => {
                return Err(EgressError::new(
                    ErrorKind::Setup,
                    "the credential cannot go in a query parameter with an empty name",
                ));
            }
            Placement::Query(_) => None,
        };
        Ok(Credential {
            secret,
            placement,
            origins: origins.into(),
            header,
        })
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The origins this credential goes to; never empty.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Whether a request to `url` carries this credential.
    pub fn goes_to(&self, url: &str) -> bool {
        self.origins.iter().any(|origin| origin.matches(url))
    }

    /// Puts the credential in a request already known to go to one of its origins. A header
    /// replaces one of the same name the caller set; a query parameter is appended.
    pub(crate) fn place(&self, url: &mut url::Url, headers: &mut HeaderMap) {
        if let Some((name, value)) = &self.header {
            headers.insert(name.clone(), value.clone());
        }
        if let Placement::Query(param) = &self.placement {
            url.query_pairs_mut()
                .append_pair(param, self.secret.expose());
        }
    }

    /// The query parameter holding the secret, to blank out of the client's error messages.
    pub(crate) fn query_param(&self) -> Option<&str> {
        match &self.placement {
            Placement::Query(param) => Some(param),
            Placement::None | Placement::Header { .. } => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("secret", &self.secret)
            .field("placement", &self.placement)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> Placement {
        Placement::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    #[test]
    fn a_credential_goes_to_its_base_url_origin_and_the_extra_ones() {
        let credential = Credential::new(
            Secret::new("sk-test".into()),
            bearer(),
            "https://api.groq.com/openai/v1",
            &["https://files.groq.com/upload".into()],
        );
        let credential = match credential {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let origins: Vec<&str> = credential.origins().iter().map(Origin::as_str).collect();
        assert_eq!(origins, ["https://api.groq.com", "https://files.groq.com"]);
        assert!(credential.goes_to("https://api.groq.com/openai/v1/chat/completions"));
        assert!(credential.goes_to("https://files.groq.com/v1"));
        assert!(!credential.goes_to("https://evil.example/https://api.groq.com/"));
    }

    #[test]
    fn unusable_credentials_are_refused_without_naming_the_secret() {
        let secret = || Secret::new("sk-line\nbreak".into());
        let cases = [
            (bearer(), "not a url"),
            (bearer(), "data:text/plain,x"),
            (Placement::Query(String::new()), "https://a.example"),
            (
                Placement::Header {
                    name: "bad name".into(),
                    prefix: String::new(),
                },
                "https://a.example",
            ),
            (bearer(), "https://a.example"),
        ];
        for (placement, base_url) in cases {
            let error = Credential::new(secret(), placement.clone(), base_url, &[]).err();
            let error = error.unwrap_or_else(|| panic!("{placement:?} {base_url} was accepted"));
            assert_eq!(error.kind(), ErrorKind::Setup);
            assert!(!error.message().contains("sk-line"), "{error}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = Secret::new("sk-do-not-print".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let credential = Credential::new(secret, bearer(), "https://api.groq.com", &[]);
        let printed = format!("{credential:?}");
        assert!(printed.contains("Secret(***)"), "{printed}");
        assert!(printed.contains("https://api.groq.com"), "{printed}");
        assert!(!printed.contains("sk-do-not-print"), "{printed}");
    }
}
