//! The config's security keys: `[server] tls` (its files loaded and checked at parse time, errors
//! at the key whose file is wrong), a provider's `api_key_file`, and `[redaction]`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::{Config, ConfigError, parse};

/// A folder with a config file's neighbours: a certificate and key that match, and a key that
/// matches nothing.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("tls/key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("tls/other.pem"), other.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("tls/junk.pem"), "not a certificate\n").unwrap();
        Dir { dir }
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        parse(&self.dir.path().join("aigw.toml"), text, &|name| {
            (name == "TLS_DIR").then(|| "tls".to_owned())
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn tls_files_are_relative_to_the_config_and_reload_every_2_s_by_default() {
    let dir = Dir::new();
    let c = dir
        .parse("[server]\ntls = { cert = \"${TLS_DIR}/cert.pem\", key = \"tls/key.pem\" }\n")
        .unwrap();
    let tls = c.server.tls.unwrap();
    assert_eq!(tls.cert, dir.path("tls/cert.pem"));
    assert_eq!(tls.key, dir.path("tls/key.pem"));
    assert_eq!(tls.reload_interval, Duration::from_secs(2));

    let c = dir
        .parse(
            "[server.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\
             reload_interval_ms = 250\n",
        )
        .unwrap();
    assert_eq!(
        c.server.tls.unwrap().reload_interval,
        Duration::from_millis(250)
    );
    assert_eq!(dir.parse("").unwrap().server.tls, None);
}

#[test]
fn a_tls_pair_that_cannot_be_served_is_an_error_at_the_key_naming_the_file() {
    let dir = Dir::new();
    let cases = [
        // (cert, key, the key blamed, its column on line 3, what the message says)
        ("tls/missing.pem", "tls/key.pem", "cert", "no such file"),
        ("tls/junk.pem", "tls/key.pem", "cert", "no PEM certificate"),
        ("tls/cert.pem", "tls/junk.pem", "key", "no PEM private key"),
        ("tls/cert.pem", "tls/other.pem", "key", "does not match"),
    ];
    for (cert, key, blamed, says) in cases {
        let text = format!("# TLS\n[server]\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n");
        let e = dir.parse(&text).unwrap_err();
        let file = if blamed == "cert" { cert } else { key };
        let column = text
            .lines()
            .nth(2)
            .unwrap()
            .find(&format!("\"{file}\""))
            .unwrap()
            + 1;
        assert_eq!(e.at, Some((3, column)), "{e}");
        assert!(
            e.message.starts_with(&format!("`server.tls.{blamed}`: ")),
            "{e}"
        );
        assert!(
            e.message.contains(&dir.path(file).display().to_string()),
            "{e}"
        );
        assert!(e.message.contains(says), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:3:", dir.path("aigw.toml").display()))
        );
    }
    let e = dir
        .parse("[server]\ntls = { cert = \"tls/cert.pem\" }\n")
        .unwrap_err();
    assert!(e.message.contains("missing field `key`"), "{e}");
    let e = dir
        .parse("[server]\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\", reload_interval_ms = 0 }\n")
        .unwrap_err();
    assert!(e.message.contains("server.tls.reload_interval_ms"), "{e}");
}

/// A provider `p` with `credential` (its `api_key…` lines), at line 2 of the config.
fn provider(credential: &str) -> String {
    format!("[providers.p]\n{credential}\nplugin = \"groq\"\n")
}

#[test]
fn a_credential_file_is_read_relative_to_the_config_without_its_trailing_newline() {
    let dir = Dir::new();
    std::fs::write(dir.path("groq.key"), "gsk_from_a_file\n").unwrap();
    std::fs::write(dir.path("crlf.key"), "gsk_crlf\r\n").unwrap();
    let c = dir.parse(&provider("api_key_file = \"groq.key\"")).unwrap();
    assert_eq!(c.providers[0].api_key.as_deref(), Some("gsk_from_a_file"));
    assert_eq!(c.providers[0].api_key_missing, None);
    let absolute = dir.path("crlf.key");
    let c = dir
        .parse(&provider(&format!(
            "api_key_file = \"{}\"",
            absolute.display()
        )))
        .unwrap();
    assert_eq!(c.providers[0].api_key.as_deref(), Some("gsk_crlf"));
    // `${VAR}` expands in the path.
    let c = dir
        .parse(&provider("api_key_file = \"${TLS_DIR}/../groq.key\""))
        .unwrap();
    assert_eq!(c.providers[0].api_key.as_deref(), Some("gsk_from_a_file"));
}

#[test]
fn a_credential_file_that_cannot_be_used_is_an_error_naming_file_line_and_key() {
    let dir = Dir::new();
    let secret = "gsk_SECRET_line_one";
    std::fs::write(dir.path("empty.key"), "\n").unwrap();
    std::fs::write(dir.path("two.key"), format!("{secret}\nsecond line\n")).unwrap();
    std::fs::write(dir.path("binary.key"), [0xff, 0xfe, 0x00]).unwrap();
    let cases = [
        ("missing.key", "no such file"),
        ("empty.key", "is empty"),
        ("two.key", "more than one line"),
        ("binary.key", "not UTF-8"),
    ];
    for (file, says) in cases {
        let e = dir
            .parse(&provider(&format!("api_key_file = \"{file}\"")))
            .unwrap_err();
        assert_eq!(e.at, Some((2, 16)), "{e}");
        assert!(e.message.starts_with("`providers.p.api_key_file`: "), "{e}");
        assert!(
            e.message.contains(&dir.path(file).display().to_string()),
            "{e}"
        );
        assert!(e.message.contains(says), "{e}");
        assert!(!e.message.contains(secret), "the secret was printed: {e}");
    }
    let e = dir
        .parse(&provider("api_key = \"k\"\napi_key_file = \"groq.key\""))
        .unwrap_err();
    assert_eq!(e.at, Some((3, 16)), "{e}");
    assert!(
        e.message
            .contains("`providers.p.api_key` and `providers.p.api_key_file` are both set"),
        "{e}"
    );
}

#[test]
fn redaction_patterns_compile_and_apply_with_the_replacement() {
    let dir = Dir::new();
    assert!(!dir.parse("").unwrap().redaction.is_active());
    let c = dir
        .parse(
            "[redaction]\npatterns = ['\\b\\d{3}-\\d{2}-\\d{4}\\b', '(?i)secret-\\w+']\n\
             replacement = \"<gone>\"\n",
        )
        .unwrap();
    assert_eq!(
        c.redaction.redact("ssn 123-45-6789 and SECRET-abc, $5"),
        "ssn <gone> and <gone>, $5"
    );
    let c = dir.parse("[redaction]\npatterns = ['\\d{4}$']\n").unwrap();
    assert_eq!(c.redaction.redact("pin 1234"), "pin [REDACTED]");
}

#[test]
fn a_bad_redaction_pattern_is_an_error_at_its_line() {
    let dir = Dir::new();
    let e = dir
        .parse("[redaction]\npatterns = [\n  'ok',\n  '(unclosed',\n]\n")
        .unwrap_err();
    assert_eq!(e.at, Some((4, 3)), "{e}");
    assert!(
        e.message
            .starts_with("`redaction.patterns`: \"(unclosed\" is not a usable pattern"),
        "{e}"
    );
    let e = dir.parse("[redaction]\npatterns = ['a*']\n").unwrap_err();
    assert_eq!(e.at, Some((2, 13)), "{e}");
    assert!(e.message.contains("matches the empty text"), "{e}");
    let e = dir.parse("[redaction]\npattern = []\n").unwrap_err();
    assert!(e.message.contains("unknown field `pattern`"), "{e}");
}
