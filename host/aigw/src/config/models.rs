//! `[models.<alias>]`: each route and its targets, validated into the server's
//! [`RouteOptions`] and [`TargetOptions`] (whose `Default` impls hold the defaults). Targets
//! name providers; every name is checked against the configured providers here.

use std::collections::BTreeMap;
use std::fmt;

use aigw_router::Strategy;
use aigw_server::{ProviderOptions, RouteOptions, TargetOptions};
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::{Number, Values};

/// The most same-target retries a route may ask for.
pub(super) const MAX_RETRIES: u32 = 5;

/// How `strategy` spells each [`Strategy`].
pub(super) const STRATEGIES: [(&str, Strategy); 3] = [
    ("weighted", Strategy::Weighted),
    ("latency", Strategy::Latency),
    ("cost", Strategy::Cost),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    targets: Spanned<Vec<Spanned<RawTarget>>>,
    strategy: Option<Spanned<String>>,
    connect_timeout_ms: Number,
    first_byte_timeout_ms: Number,
    stall_timeout_ms: Number,
    total_timeout_ms: Number,
    retries: Number,
    retry_budget: Option<Spanned<f64>>,
    hedge_after_ms: Number,
    /// The aigw tools the route offers every request (`tool_loop::route_tools`).
    pub(super) tools: Option<Vec<Spanned<String>>>,
    /// How long the route's answers are kept in the response cache (`response_cache`).
    pub(super) cache_ttl_s: Number,
}

/// One entry of `targets`: `"provider/model"` or `{ target = "provider/model", … }`.
enum RawTarget {
    Plain(String),
    Table(Box<RawTargetTable>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetTable {
    // Optional here so that a missing `target` gets an error naming the route and entry.
    target: Option<Spanned<String>>,
    priority: Number,
    weight: Number,
    context_window: Number,
    prefill: Option<Spanned<bool>>,
    connect_timeout_ms: Number,
    first_byte_timeout_ms: Number,
    stall_timeout_ms: Number,
    total_timeout_ms: Number,
}

// Hand-written rather than `#[serde(untagged)]`: untagged buffers the value and loses both the
// span and the name of an unknown key; delegating the table to `RawTargetTable` keeps them.
impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTarget;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a \"provider/model\" string or a table like { target = \"provider/model\" }",
                )
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Plain(value.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<RawTarget, E> {
                Ok(RawTarget::Plain(value))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTarget, A::Error> {
                RawTargetTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|table| RawTarget::Table(Box::new(table)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The routes by alias; every target must name one of `providers`.
pub(super) fn validate(
    raw: &BTreeMap<String, Spanned<RawModel>>,
    providers: &[ProviderOptions],
    values: &Values,
) -> Result<BTreeMap<String, RouteOptions>, ConfigError> {
    let defaults = RouteOptions::default();
    let mut routes = BTreeMap::new();
    for (alias, spanned) in raw {
        let m = spanned.get_ref();
        let key = |field: &str| format!("models.{alias}.{field}");
        let targets = &m.targets;
        if targets.get_ref().is_empty() {
            return Err(values.error(
                Some(targets.span()),
                format!("`models.{alias}.targets` must name at least one `provider/model`"),
            ));
        }
        let targets = targets
            .get_ref()
            .iter()
            .enumerate()
            .map(|(index, entry)| target(alias, index, entry, providers, values))
            .collect::<Result<Vec<_>, _>>()?;
        let strategy = match &m.strategy {
            None => defaults.strategy,
            Some(v) => {
                let name = values.expand(v, &key("strategy"))?;
                match STRATEGIES.iter().find(|(spelling, _)| *spelling == name) {
                    Some((_, strategy)) => *strategy,
                    None => {
                        let spellings: Vec<String> =
                            STRATEGIES.iter().map(|(s, _)| format!("{s:?}")).collect();
                        return Err(values.error(
                            Some(v.span()),
                            format!(
                                "`{}` must be {}, got {name:?}",
                                key("strategy"),
                                spellings.join(" or ")
                            ),
                        ));
                    }
                }
            }
        };
        let retry_budget = match &m.retry_budget {
            None => defaults.retry_budget,
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                return Err(values.error(
                    Some(v.span()),
                    format!(
                        "`{}` must be between 0.0 and 1.0, got {}",
                        key("retry_budget"),
                        v.get_ref()
                    ),
                ));
            }
        };
        let route = RouteOptions {
            targets,
            strategy,
            timeouts: values.timeouts(
                &format!("models.{alias}"),
                &m.connect_timeout_ms,
                &m.first_byte_timeout_ms,
                &m.stall_timeout_ms,
                &m.total_timeout_ms,
            )?,
            retries: m
                .retries
                .as_ref()
                .map(|v| values.u32_in(v, &key("retries"), 0, MAX_RETRIES))
                .transpose()?
                .unwrap_or(defaults.retries),
            retry_budget,
            hedge_after: values.optional_millis(&m.hedge_after_ms, &key("hedge_after_ms"))?,
        };
        routes.insert(alias.clone(), route);
    }
    Ok(routes)
}

/// Entry `index` of route `alias`'s `targets`.
fn target(
    alias: &str,
    index: usize,
    entry: &Spanned<RawTarget>,
    providers: &[ProviderOptions],
    values: &Values,
) -> Result<TargetOptions, ConfigError> {
    let entry_key = format!("models.{alias}.targets[{index}]");
    // The `provider/model` string, its span, the key errors about it name, and the table it
    // came from (`None` for the plain string form).
    let (value, span, target_key, table) = match entry.get_ref() {
        RawTarget::Plain(value) => (value, entry.span(), format!("models.{alias}.targets"), None),
        RawTarget::Table(table) => match &table.target {
            Some(target) => (
                target.get_ref(),
                target.span(),
                format!("{entry_key}.target"),
                Some(table),
            ),
            None => {
                return Err(values.error(
                    Some(entry.span()),
                    format!("`{entry_key}`: missing key `target` (a \"provider/model\" string)"),
                ));
            }
        },
    };
    let value = values.expand_at(value, span.clone(), &target_key)?;
    let Some((provider, model)) = value.split_once('/') else {
        return Err(values.error(
            Some(span),
            format!("`{target_key}`: {value:?} must be `provider/model`"),
        ));
    };
    if !providers.iter().any(|p| p.name == provider) {
        let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        return Err(values.error(
            Some(span),
            format!(
                "`{target_key}`: unknown provider `{provider}` (configured: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }
    if model.is_empty() {
        return Err(values.error(
            Some(span),
            format!("`{target_key}`: {value:?} has no model"),
        ));
    }
    let defaults = TargetOptions::default();
    let mut target = TargetOptions {
        provider: provider.to_owned(),
        model: model.to_owned(),
        // A plain list is tried in its order.
        priority: u32::try_from(index).unwrap_or(u32::MAX),
        ..defaults
    };
    if let Some(t) = table {
        let field = |name: &str| format!("{entry_key}.{name}");
        if let Some(v) = &t.priority {
            target.priority = values.u32_in(v, &field("priority"), 0, u32::MAX)?;
        }
        if let Some(v) = &t.weight {
            target.weight = values.u32_in(v, &field("weight"), 1, u32::MAX)?;
        }
        if let Some(v) = &t.context_window {
            target.context_window =
                Some(values.u32_in(v, &field("context_window"), 1, u32::MAX)?);
        }
        if let Some(v) = &t.prefill {
            target.prefill = *v.get_ref();
        }
        target.timeouts = values.timeouts(
            &entry_key,
            &t.connect_timeout_ms,
            &t.first_byte_timeout_ms,
            &t.stall_timeout_ms,
            &t.total_timeout_ms,
        )?;
    }
    Ok(target)
}
