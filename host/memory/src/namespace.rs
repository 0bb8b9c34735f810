//! Namespaces: the tenant scope every conversation and entry belongs to. A request names its
//! namespace (the `x-aigw-namespace` header, within what the request's virtual key is granted),
//! and every query of the memory API is confined to it: an id from another namespace is not found.
//! A LangGraph-style entry path (`["users", "42"]`) lives *inside* a namespace; the namespace is
//! not part of what clients see of an entry.

use std::fmt;

/// The longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;

/// A valid namespace name: 1 to [`MAX_NAMESPACE_BYTES`] bytes of ASCII letters, digits and
/// `-`, `_`, `.`, `:`. So narrow a charset keeps names safe in logs, metrics labels and URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

/// Why a name is not a namespace; the message is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NamespaceError(String);

impl Namespace {
    /// The namespace of a request that names none.
    pub const DEFAULT: &'static str = "default";

    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Namespace, NamespaceError> {
        if name.is_empty() || name.len() > MAX_NAMESPACE_BYTES {
            return Err(NamespaceError(format!(
                "a namespace must be 1 to {MAX_NAMESPACE_BYTES} bytes long"
            )));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(NamespaceError(format!(
                "a namespace may hold only ASCII letters, digits and `-_.:`, not {bad:?}"
            )));
        }
        Ok(Namespace(name.to_owned()))
    }

    /// The namespace of requests that name none.
    pub fn default_namespace() -> Namespace {
        Namespace(Namespace::DEFAULT.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(
            Namespace::parse("team-a:prod.1").map(|n| n.0),
            Ok("team-a:prod.1".into())
        );
        assert!(Namespace::parse("").is_err());
        assert!(Namespace::parse("a b").is_err());
        assert!(Namespace::parse("a/b").is_err());
        assert!(Namespace::parse("é").is_err());
        assert!(Namespace::parse(&"a".repeat(MAX_NAMESPACE_BYTES)).is_ok());
        assert!(Namespace::parse(&"a".repeat(MAX_NAMESPACE_BYTES + 1)).is_err());
    }
}
