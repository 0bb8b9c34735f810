//! `[server]`: the listen address, the limits on requests, upstream answers and open streams,
//! the client time limits and the connection cap, which browser origins and `Host` names
//! are answered, how a shutdown drains (`drain_delay_ms`, `shutdown_grace_ms`), and the TLS certificate and key (checked by loading them, so `aigw check` and
//! the start refuse a pair that cannot be served), validated into the server's
//! [`ServerOptions`] (whose `Default` holds the defaults).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use aigw_server::{ServerOptions, Tls, TlsFile, TlsOptions};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// The longest shutdown (`shutdown_grace_ms`, and so `drain_delay_ms`) in ms: an hour; an
/// orchestrator kills a process long before, so a larger number is a typo.
const MAX_SHUTDOWN_MS: u32 = 3_600_000;

/// The most connections `max_connections` may allow: far beyond what one process's file
/// descriptors and memory serve, so a larger number is a typo.
const MAX_CONNECTIONS: u32 = 1_000_000;

/// The most worker loops `workers` may ask for: beyond any machine's cores, so a larger number
/// is a typo.
const MAX_WORKERS: u32 = 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<String>>,
    max_body_bytes: Number,
    max_upstream_body_bytes: Number,
    max_streams_per_client: Number,
    header_read_timeout_ms: Number,
    body_read_timeout_ms: Number,
    idle_timeout_ms: Number,
    max_connections: Number,
    workers: Number,
    cors_origins: Option<Vec<Spanned<String>>>,
    allowed_hosts: Option<Vec<Spanned<String>>>,
    tls: Option<RawTls>,
    drain_delay_ms: Number,
    shutdown_grace_ms: Number,
}

/// `[server] tls = { cert = "…", key = "…" }` (or a `[server.tls]` table).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    reload_interval_ms: Number,
}

/// `base` is the config file's folder (the TLS files are relative to it).
pub(super) fn validate(
    raw: &RawServer,
    base: &Path,
    values: &Values,
) -> Result<ServerOptions, ConfigError> {
    let defaults = ServerOptions::default();
    let listen = match &raw.listen {
        None => defaults.listen,
        Some(v) => values
            .expand(v, "server.listen")?
            .parse::<SocketAddr>()
            .map_err(|e| {
                values.error(
                    Some(v.span()),
                    format!("`server.listen` must be an address like 127.0.0.1:8080: {e}"),
                )
            })?,
    };
    let (drain_delay, shutdown_grace) = shutdown(raw, values, &defaults)?;
    let max_body_bytes = values.positive(
        &raw.max_body_bytes,
        "server.max_body_bytes",
        defaults.max_body_bytes as u64,
    )?;
    let max_upstream_body_bytes = values.positive(
        &raw.max_upstream_body_bytes,
        "server.max_upstream_body_bytes",
        defaults.max_upstream_body_bytes as u64,
    )?;
    let max_streams_per_client = values.positive(
        &raw.max_streams_per_client,
        "server.max_streams_per_client",
        u64::from(defaults.max_streams_per_client),
    )?;
    let max_connections = match &raw.max_connections {
        None => defaults.max_connections,
        Some(v) => values.u32_in(v, "server.max_connections", 1, MAX_CONNECTIONS)? as usize,
    };
    let workers = match &raw.workers {
        None => defaults.workers,
        Some(v) => NonZeroUsize::new(values.u32_in(v, "server.workers", 1, MAX_WORKERS)? as usize),
    };
    let cors_origins = match &raw.cors_origins {
        None => defaults.cors_origins,
        Some(list) => list
            .iter()
            .map(|v| origin(values, v))
            .collect::<Result<_, _>>()?,
    };
    let allowed_hosts = match &raw.allowed_hosts {
        None => defaults.allowed_hosts,
        Some(list) => Some(
            list.iter()
                .map(|v| host(values, v))
                .collect::<Result<_, _>>()?,
        ),
    };
    let tls = raw
        .tls
        .as_ref()
        .map(|raw| tls(raw, base, values))
        .transpose()?;
    Ok(ServerOptions {
        listen,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        max_upstream_body_bytes: usize::try_from(max_upstream_body_bytes).unwrap_or(usize::MAX),
        max_streams_per_client: u32::try_from(max_streams_per_client).unwrap_or(u32::MAX),
        header_read_timeout: values.millis(
            &raw.header_read_timeout_ms,
            "server.header_read_timeout_ms",
            defaults.header_read_timeout,
        )?,
        body_read_timeout: values.millis(
            &raw.body_read_timeout_ms,
            "server.body_read_timeout_ms",
            defaults.body_read_timeout,
        )?,
        idle_timeout: values.millis(
            &raw.idle_timeout_ms,
            "server.idle_timeout_ms",
            defaults.idle_timeout,
        )?,
        max_connections,
        workers,
        cors_origins,
        allowed_hosts,
        tls,
        drain_delay,
        shutdown_grace,
    })
}

/// `drain_delay_ms` (0 allowed: close the listener at once) and `shutdown_grace_ms`, which
/// counts from the signal and so must leave time after the delay.
fn shutdown(
    raw: &RawServer,
    values: &Values,
    defaults: &ServerOptions,
) -> Result<(Duration, Duration), ConfigError> {
    let grace = match &raw.shutdown_grace_ms {
        None => defaults.shutdown_grace,
        Some(v) => Duration::from_millis(u64::from(values.u32_in(
            v,
            "server.shutdown_grace_ms",
            1,
            MAX_SHUTDOWN_MS,
        )?)),
    };
    let delay = match &raw.drain_delay_ms {
        None => defaults.drain_delay.min(grace / 2),
        Some(v) => Duration::from_millis(u64::from(values.u32_in(
            v,
            "server.drain_delay_ms",
            0,
            MAX_SHUTDOWN_MS,
        )?)),
    };
    if delay >= grace {
        let span = raw
            .drain_delay_ms
            .as_ref()
            .or(raw.shutdown_grace_ms.as_ref())
            .map(Spanned::span);
        return Err(values.error(
            span,
            format!(
                "`server.drain_delay_ms` ({} ms) must be less than `server.shutdown_grace_ms` \
                 ({} ms): the grace counts from the signal, the delay included, and requests in \
                 flight need time after the listener closes",
                delay.as_millis(),
                grace.as_millis()
            ),
        ));
    }
    Ok((delay, grace))
}

/// The TLS files, loaded once here so that a pair that cannot be served is a config error
/// naming the key (`cert` or `key`) whose file is wrong.
fn tls(raw: &RawTls, base: &Path, values: &Values) -> Result<TlsOptions, ConfigError> {
    let cert = base.join(values.expand(&raw.cert, "server.tls.cert")?);
    let key = base.join(values.expand(&raw.key, "server.tls.key")?);
    let defaults = TlsOptions::new(&cert, &key);
    let options = TlsOptions {
        reload_interval: values.millis(
            &raw.reload_interval_ms,
            "server.tls.reload_interval_ms",
            defaults.reload_interval,
        )?,
        ..defaults
    };
    if let Err(e) = Tls::new(&options) {
        let (span, key) = match e.file {
            TlsFile::Cert => (raw.cert.span(), "server.tls.cert"),
            TlsFile::Key => (raw.key.span(), "server.tls.key"),
        };
        return Err(values.error(Some(span), format!("`{key}`: {e}")));
    }
    Ok(options)
}

/// A serialized origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn origin(values: &Values, value: &Spanned<String>) -> Result<String, ConfigError> {
    let text = values.expand(value, "server.cors_origins")?;
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(['/', '?', '#', ' ', '*']) => Ok(text),
        _ => Err(values.error(
            Some(value.span()),
            format!(
                "`server.cors_origins`: {text:?} is not an origin; write the scheme, host and \
                 optional port the browser shows, like \"https://app.example.com\" (no path, no \
                 trailing slash, no wildcard)"
            ),
        )),
    }
}

/// A host name (any port), `name:port`, `[v6]`, `[v6]:port`, or `*` (any host).
fn host(values: &Values, value: &Spanned<String>) -> Result<String, ConfigError> {
    let text = values.expand(value, "server.allowed_hosts")?;
    let bad = text.is_empty()
        || text.contains(['/', ' ', '@', '?', '#'])
        || (text.contains('*') && text != "*");
    if bad {
        return Err(values.error(
            Some(value.span()),
            format!(
                "`server.allowed_hosts`: {text:?} is not a host; write a name or address as \
                 clients put it in `Host`, like \"api.example.com\", \"gw.lan:8443\" or \
                 \"[::1]\", or \"*\" for any host"
            ),
        ));
    }
    Ok(text)
}
