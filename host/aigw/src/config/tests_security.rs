//! The config's security keys: `[server] tls` (its files loaded and checked at parse time, errors
//! at the key whose file is wrong).

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
