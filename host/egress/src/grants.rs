//! Grants: the origins one caller may send to. Denied by default; checked on every send.

use std::sync::Arc;

use crate::origin::Origin;

/// A caller's allow-list of origins. The default, [`Grants::none`], denies every URL.
/// Cloning is cheap (one shared list), since all of a caller's calls carry the same grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    origins: Arc<[Origin]>,
}

impl Grants {
    /// No origin at all: every send is denied.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// Exactly these origins (duplicates kept once).
    pub fn new(origins: impl IntoIterator<Item = Origin>) -> Grants {
        let mut list: Vec<Origin> = Vec::new();
        for origin in origins {
            if !list.contains(&origin) {
                list.push(origin);
            }
        }
        Grants {
            origins: list.into(),
        }
    }

    /// Whether `url` goes to one of the granted origins (the same string check as a
    /// credential's origins: a URL spelling its origin differently is denied).
    pub fn allows(&self, url: &str) -> bool {
        self.origins.iter().any(|origin| origin.matches(url))
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        match Origin::of(url) {
            Ok(origin) => origin,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn no_grants_deny_every_url() {
        for grants in [Grants::none(), Grants::default(), Grants::new([])] {
            assert!(grants.origins().is_empty());
            for url in ["https://api.groq.com/v1", "http://127.0.0.1:1/", "", "null"] {
                assert!(!grants.allows(url), "{url}");
            }
        }
    }

    #[test]
    fn grants_allow_only_their_own_origins() {
        let grants = Grants::new([
            origin("https://api.groq.com/openai/v1"),
            origin("http://127.0.0.1:8080"),
            origin("https://api.groq.com"),
        ]);
        assert_eq!(grants.origins().len(), 2);
        assert!(grants.allows("https://api.groq.com/openai/v1/chat/completions"));
        assert!(grants.allows("http://127.0.0.1:8080/v1"));
        assert!(!grants.allows("http://127.0.0.1:8081/v1"));
        assert!(!grants.allows("https://api.groq.com.evil.example/"));
        assert!(!grants.allows("http://api.groq.com/"));
    }
}
