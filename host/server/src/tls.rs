//! HTTPS: the certificate the server presents, read from its PEM files and reloaded when they
//! change, so a renewed certificate is served to new connections without a restart.
//!
//! The pair in use sits behind an `ArcSwap` in the [`Resolver`] that rustls asks once per
//! handshake: a reload is one pointer swap, a handshake one atomic load, and open connections
//! keep the certificate they began with. A background task looks at both files' size,
//! modification time and inode every `reload_interval` (one `stat` each: nothing is read while
//! they are unchanged); when any differ it reads and checks the new pair. A pair that does not
//! load (not PEM, a key that does not match the certificate, a file missing halfway through a
//! renewal) is refused with one warning, and the pair in use keeps being served; the next change
//! is tried again. Renewal tools that write the certificate and the key one after the other may
//! be seen halfway (the new certificate with the old key): that is refused with a warning and
//! picked up at the next look, once the key is written too.
//!
//! rustls uses ring, the crypto provider the egress's reqwest already pulls in, so one backend
//! is compiled. ALPN offers `h2` then `http/1.1`; the connection serves whichever the client
//! picked (hyper's auto builder reads the preface).

use std::fmt;
use std::fs::Metadata;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, InconsistentKeys, ServerConfig};

use crate::options::TlsOptions;

/// Which of the two files an error is about (the config names the key that set it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    Cert,
    Key,
}

/// Why a certificate and key cannot be served; the message names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub file: TlsFile,
    pub message: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsError {}

/// What serving HTTPS needs: the rustls configuration, and the resolver whose pair the reload
/// task replaces. Built once at start ([`Tls::new`] fails on a pair that cannot be served).
#[derive(Clone)]
pub struct Tls {
    options: TlsOptions,
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
    /// What the pair in use was read from.
    stamp: Stamp,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the pair `options` names.
    pub fn new(options: &TlsOptions) -> Result<Tls, TlsError> {
        let (stamp, loaded) = load(options);
        let resolver = Arc::new(Resolver {
            current: ArcSwap::from_pointee(loaded?),
        });
        let provider = Arc::new(ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: TlsFile::Cert,
                message: format!("cannot configure TLS: {e}"),
            })?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            options: options.clone(),
            resolver,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            stamp,
        })
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Starts looking at the files every `reload_interval`; stops when the handle is dropped.
    pub(crate) fn spawn_reloads(&self) -> Reloading {
        let mut reloader = Reloader {
            options: self.options.clone(),
            resolver: Arc::clone(&self.resolver),
            stamp: self.stamp.clone(),
            refused: None,
        };
        let interval = self.options.reload_interval;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                // A `stat` (and, on a change, two small reads) off the workers: a stalled
                // network file system must not stall connections.
                let looked = tokio::task::spawn_blocking(move || {
                    let outcome = reloader.look();
                    (reloader, outcome)
                })
                .await;
                let Ok((back, outcome)) = looked else { return };
                reloader = back;
                match outcome {
                    Outcome::Unchanged | Outcome::StillRefused => {}
                    Outcome::Reloaded => tracing::info!(
                        cert = %reloader.options.cert.display(),
                        key = %reloader.options.key.display(),
                        "TLS certificate reloaded; new connections are served with it"
                    ),
                    Outcome::Refused(e) => tracing::warn!(
                        error = %e,
                        "TLS certificate change refused; still serving the previous certificate"
                    ),
                }
            }
        });
        Reloading(task)
    }
}

/// The reload task; dropping this stops it.
pub(crate) struct Reloading(tokio::task::JoinHandle<()>);

impl Drop for Reloading {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Hands rustls the pair in use, for every handshake.
#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// What a file looked like: enough to notice a rewrite (size, modification time) or a new file
/// renamed into place (inode), without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(&meta),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}

/// Both files' stamps (`None`: the file could not be looked at).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    cert: Option<FileStamp>,
    key: Option<FileStamp>,
}

impl Stamp {
    fn of(options: &TlsOptions) -> Stamp {
        Stamp {
            cert: FileStamp::of(&options.cert),
            key: FileStamp::of(&options.key),
        }
    }
}

/// What one look at the files found.
#[derive(Debug)]
enum Outcome {
    Unchanged,
    Reloaded,
    Refused(TlsError),
    /// Changed since the pair in use, but as they were when last refused: no second warning.
    StillRefused,
}

/// The reload task's state: what the pair in use and the last refused pair were read from.
struct Reloader {
    options: TlsOptions,
    resolver: Arc<Resolver>,
    stamp: Stamp,
    refused: Option<Stamp>,
}

impl Reloader {
    fn look(&mut self) -> Outcome {
        let now = Stamp::of(&self.options);
        if now == self.stamp {
            return Outcome::Unchanged;
        }
        if self.refused.as_ref() == Some(&now) {
            return Outcome::StillRefused;
        }
        let (stamp, loaded) = load(&self.options);
        match loaded {
            Ok(pair) => {
                self.resolver.current.store(Arc::new(pair));
                self.stamp = stamp;
                self.refused = None;
                Outcome::Reloaded
            }
            Err(e) => {
                self.refused = Some(stamp);
                Outcome::Refused(e)
            }
        }
    }
}

/// Reads and checks the pair, and says what the files looked like before they were read (so a
/// change made while reading is seen at the next look, not missed).
fn load(options: &TlsOptions) -> (Stamp, Result<CertifiedKey, TlsError>) {
    let stamp = Stamp::of(options);
    (stamp, read_pair(&options.cert, &options.key))
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_error = |message: String| TlsError {
        file: TlsFile::Cert,
        message: format!("{}: {message}", cert_path.display()),
    };
    let key_error = |message: String| TlsError {
        file: TlsFile::Key,
        message: format!("{}: {message}", key_path.display()),
    };
    let cert_pem = read(cert_path).map_err(cert_error)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate file: {}", pem_error(&e))))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no PEM certificate (`-----BEGIN CERTIFICATE-----`) in it".to_owned(),
        ));
    }
    let key_pem = read(key_path).map_err(key_error)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => key_error(
            "no PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC \
             PRIVATE KEY`) in it"
                .to_owned(),
        ),
        e => key_error(format!("not a PEM private key file: {}", pem_error(&e))),
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_error(format!("the private key cannot be used: {e}")))?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        // A key type whose public half rustls cannot derive: nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(key_error(format!(
                "the private key does not match the (first) certificate in {}",
                cert_path.display()
            )))
        }
        Err(e) => Err(cert_error(format!(
            "the first certificate cannot be parsed: {e}"
        ))),
    }
}

/// The provider whose key loading the pair is checked with (the one the server config uses).
fn provider() -> CryptoProvider {
    ring::default_provider()
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => format!("cannot read it: {e}"),
    })
}

/// A PEM parse error without the bytes of the file (a key file's line is a secret).
fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".to_owned(),
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "nothing in it".to_owned(),
        pem::Error::SectionTooLarge => "a section is larger than 256 MB".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Duration;

    /// A certificate for `name` and its key, as PEM.
    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn der_of(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    struct Files {
        dir: tempfile::TempDir,
        options: TlsOptions,
    }

    impl Files {
        fn new(cert: &str, key: &str) -> Files {
            let dir = tempfile::tempdir().unwrap();
            let options = TlsOptions::new(dir.path().join("cert.pem"), dir.path().join("key.pem"));
            let files = Files { dir, options };
            files.write(cert, key);
            files
        }

        /// Writes both files as a renewal would: each to a temporary file renamed into place.
        fn write(&self, cert: &str, key: &str) {
            for (path, text) in [(&self.options.cert, cert), (&self.options.key, key)] {
                let temp = self.dir.path().join("incoming");
                std::fs::write(&temp, text).unwrap();
                std::fs::rename(&temp, path).unwrap();
            }
        }
    }

    fn served(tls: &Tls) -> Vec<u8> {
        tls.resolver.current.load().cert[0].as_ref().to_vec()
    }

    fn reloader(tls: &Tls) -> Reloader {
        Reloader {
            options: tls.options.clone(),
            resolver: Arc::clone(&tls.resolver),
            stamp: tls.stamp.clone(),
            refused: None,
        }
    }

    #[test]
    fn a_pair_loads_and_offers_h2_then_http1() {
        let (cert, key) = pair("localhost");
        let files = Files::new(&cert, &key);
        let tls = Tls::new(&files.options).unwrap();
        assert_eq!(served(&tls), der_of(&cert));
        assert_eq!(
            tls.acceptor.config().alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn bad_files_name_which_file_is_wrong() {
        let (cert, key) = pair("localhost");
        let (_, other_key) = pair("other");
        let cases = [
            ("not pem", key.as_str(), TlsFile::Cert, "no PEM certificate"),
            (cert.as_str(), "not pem", TlsFile::Key, "no PEM private key"),
            (
                key.as_str(),
                key.as_str(),
                TlsFile::Cert,
                "no PEM certificate",
            ),
            (
                cert.as_str(),
                other_key.as_str(),
                TlsFile::Key,
                "does not match",
            ),
            (
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                key.as_str(),
                TlsFile::Cert,
                "not a PEM certificate file",
            ),
        ];
        for (cert, key, file, says) in cases {
            let files = Files::new(cert, key);
            let e = Tls::new(&files.options).unwrap_err();
            assert_eq!(e.file, file, "{e}");
            assert!(e.message.contains(says), "{e}");
            let path = match file {
                TlsFile::Cert => &files.options.cert,
                TlsFile::Key => &files.options.key,
            };
            assert!(e.message.starts_with(&path.display().to_string()), "{e}");
        }
        let files = Files::new(&cert, &key);
        std::fs::remove_file(&files.options.key).unwrap();
        let e = Tls::new(&files.options).unwrap_err();
        assert_eq!(e.file, TlsFile::Key);
        assert!(e.message.ends_with("no such file"), "{e}");
    }

    #[test]
    fn a_key_never_appears_in_an_error() {
        let (cert, key) = pair("localhost");
        // A key file whose base64 is broken: the error must not quote it.
        let broken = key.replacen('\n', "\n!", 2);
        let files = Files::new(&cert, &broken);
        let e = Tls::new(&files.options).unwrap_err();
        let secret_line = key.lines().nth(1).unwrap();
        assert!(!e.message.contains(&secret_line[1..20]), "{e}");
    }

    #[test]
    fn a_changed_pair_is_swapped_in_and_a_broken_one_refused_once() {
        let (first_cert, first_key) = pair("first.test");
        let files = Files::new(&first_cert, &first_key);
        let tls = Tls::new(&files.options).unwrap();
        let mut reloader = reloader(&tls);
        assert!(matches!(reloader.look(), Outcome::Unchanged));

        let (second_cert, second_key) = pair("second.test");
        files.write(&second_cert, &second_key);
        assert!(matches!(reloader.look(), Outcome::Reloaded));
        assert_eq!(served(&tls), der_of(&second_cert));
        assert!(matches!(reloader.look(), Outcome::Unchanged));

        // Halfway through a renewal: the new certificate with the old key.
        let (third_cert, third_key) = pair("third.test");
        files.write(&third_cert, &second_key);
        match reloader.look() {
            Outcome::Refused(e) => assert_eq!(e.file, TlsFile::Key, "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(served(&tls), der_of(&second_cert), "the old pair stays");
        assert!(matches!(reloader.look(), Outcome::StillRefused));
        files.write(&third_cert, &third_key);
        assert!(matches!(reloader.look(), Outcome::Reloaded));
        assert_eq!(served(&tls), der_of(&third_cert));

        // A vanished file is refused too, and the pair in use kept.
        std::fs::remove_file(&files.options.cert).unwrap();
        assert!(matches!(reloader.look(), Outcome::Refused(_)));
        assert_eq!(served(&tls), der_of(&third_cert));
    }

    #[tokio::test]
    async fn the_reload_task_picks_up_a_change_and_stops_when_dropped() {
        let (first_cert, first_key) = pair("first.test");
        let files = Files::new(&first_cert, &first_key);
        let options = TlsOptions {
            reload_interval: Duration::from_millis(10),
            ..files.options.clone()
        };
        let tls = Tls::new(&options).unwrap();
        let reloading = tls.spawn_reloads();
        let (second_cert, second_key) = pair("second.test");
        files.write(&second_cert, &second_key);
        let wanted = der_of(&second_cert);
        tokio::time::timeout(Duration::from_secs(10), async {
            while served(&tls) != wanted {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the new pair was not picked up within 10 s");
        let task = reloading.0.abort_handle();
        drop(reloading);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !task.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the reload task outlived its handle");
    }
}
