//! `[server]`: the listen address and the limits on requests, upstream answers and open
//! streams, validated into the server's
//! [`ServerOptions`] (whose `Default` holds the defaults).

use std::net::SocketAddr;

use aigw_server::ServerOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<Spanned<String>>,
    max_body_bytes: Number,
    max_upstream_body_bytes: Number,
    max_streams_per_client: Number,
}

pub(super) fn validate(raw: &RawServer, values: &Values) -> Result<ServerOptions, ConfigError> {
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
    Ok(ServerOptions {
        listen,
        max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
        max_upstream_body_bytes: usize::try_from(max_upstream_body_bytes).unwrap_or(usize::MAX),
        max_streams_per_client: u32::try_from(max_streams_per_client).unwrap_or(u32::MAX),
    })
}
