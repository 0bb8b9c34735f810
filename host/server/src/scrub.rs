//! Keeping credentials out of what the gateway relays, stores and logs. Some upstreams echo the
//! key they were sent ("Incorrect API key provided: …"); that text would reach the client's
//! error, `/admin/targets` (a target's last error) and the log line. Every failure the gateway
//! builds from upstream text passes through [`Scrubber::scrub`] first, which masks every
//! credential the host knows (all providers', not only the one that answered) and text shaped
//! like a key (`Bearer …`, and the key prefixes providers use) as `***`, then applies the
//! operator's redaction patterns ([`Redactor`]), so what is logged of upstream text is redacted
//! like what is stored.

use std::borrow::Cow;

use aigw_egress::Secret;

use crate::redact::Redactor;

/// Shorter configured secrets are not looked for: masking every occurrence of a 3-letter
/// string would garble messages without protecting anything worth the name of a key.
const MIN_SECRET_LEN: usize = 8;
/// A token after a known key prefix must be at least this long to be masked.
const MIN_TOKEN_LEN: usize = 12;
/// Prefixes of API keys providers hand out (OpenAI, OpenRouter, Groq, Replicate, Hugging Face,
/// Google, Anthropic-style `sk-ant-` is covered by `sk-`).
const KEY_PREFIXES: [&str; 6] = ["sk-", "gsk_", "r8_", "hf_", "AIza", "Bearer "];

/// Masks the host's credentials and key-shaped text in upstream messages.
#[derive(Debug, Default)]
pub(crate) struct Scrubber {
    secrets: Vec<Secret>,
    patterns: Redactor,
}

impl Scrubber {
    pub(crate) fn new(secrets: impl IntoIterator<Item = Secret>) -> Scrubber {
        let mut secrets: Vec<Secret> = secrets
            .into_iter()
            .filter(|s| s.expose().len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        Scrubber {
            secrets,
            patterns: Redactor::default(),
        }
    }

    /// Also redacts `patterns`' matches (after the credentials are masked).
    pub(crate) fn redacting(&mut self, patterns: Redactor) {
        self.patterns = patterns;
    }

    /// `text` with every known secret and key-shaped token replaced by `***`, and every match of
    /// the redaction patterns by their replacement.
    pub(crate) fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.expose()) {
                out = Cow::Owned(out.replace(secret.expose(), "***"));
            }
        }
        if KEY_PREFIXES.iter().any(|prefix| out.contains(prefix)) {
            out = Cow::Owned(mask_key_shapes(&out));
        }
        if let Cow::Owned(redacted) = self.patterns.redact(&out) {
            out = Cow::Owned(redacted);
        }
        out
    }
}

/// Replaces the token after each key prefix (letters, digits, `-`, `_`, `.`) when it is long
/// enough to be a key.
fn mask_key_shapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for prefix in KEY_PREFIXES {
            if let Some(after) = rest.strip_prefix(prefix) {
                let token_len = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
                    .unwrap_or(after.len());
                if token_len >= MIN_TOKEN_LEN {
                    out.push_str(prefix);
                    out.push_str("***");
                    rest = &after[token_len..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scrubber() -> Scrubber {
        Scrubber::new([
            Secret::new("wrong-key-SECRET-7f3a".into()),
            Secret::new("short".into()),
        ])
    }

    #[test]
    fn known_secrets_are_masked_wherever_they_appear() {
        let s = scrubber();
        assert_eq!(
            s.scrub("Incorrect API key provided: wrong-key-SECRET-7f3a. See the docs."),
            "Incorrect API key provided: ***. See the docs."
        );
        assert_eq!(
            s.scrub("a wrong-key-SECRET-7f3a and again wrong-key-SECRET-7f3a"),
            "a *** and again ***"
        );
        // Too short to be looked for as a secret: left alone.
        assert_eq!(s.scrub("a short note"), "a short note");
    }

    #[test]
    fn redaction_patterns_apply_after_the_credentials() {
        let mut s = scrubber();
        s.redacting(
            Redactor::new(&crate::options::RedactionOptions {
                patterns: vec![r"\b\d{3}-\d{2}-\d{4}\b".to_owned(), "SECRET".to_owned()],
                ..Default::default()
            })
            .unwrap(),
        );
        assert_eq!(
            s.scrub("bad input 123-45-6789 with key wrong-key-SECRET-7f3a"),
            "bad input [REDACTED] with key ***"
        );
        assert!(matches!(s.scrub("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn key_shaped_tokens_are_masked_and_plain_text_is_untouched() {
        let s = Scrubber::default();
        assert_eq!(
            s.scrub("bad key sk-proj-abcdefghijklmnop123, retry"),
            "bad key sk-***, retry"
        );
        assert_eq!(
            s.scrub("Authorization: Bearer eyJhbGciOi.payload.sig was refused"),
            "Authorization: Bearer *** was refused"
        );
        assert_eq!(s.scrub("gsk_0123456789abcdef"), "gsk_***");
        // Too short to be a key, or no key at all: unchanged and not copied.
        assert_eq!(s.scrub("sk-short and hf_x"), "sk-short and hf_x");
        assert!(matches!(
            s.scrub("The server had an error"),
            Cow::Borrowed("The server had an error")
        ));
        assert_eq!(
            s.scrub("ünïcode sk-abcdefghijklmnopq ok"),
            "ünïcode sk-*** ok"
        );
    }
}
