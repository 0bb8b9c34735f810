//! `[prices."provider/model"]`: what the operator says a target costs, in USD per million input
//! and output tokens, validated into [`aigw_access::Price`]s by target label. The key is a target
//! label: a configured provider's name, `/`, the model as the provider knows it. A configured
//! price replaces the published default of the provider's plugin for that model
//! (`aigw_access::prices::defaults`); both numbers are required, so a table cannot half-price a
//! target by a typo.

use std::collections::BTreeMap;

use aigw_access::Price;
use aigw_server::ProviderOptions;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::values::Values;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    input: Spanned<f64>,
    output: Spanned<f64>,
}

/// The configured prices by target label.
pub(super) fn validate(
    raw: &BTreeMap<String, Spanned<RawPrice>>,
    providers: &[ProviderOptions],
    values: &Values,
) -> Result<BTreeMap<String, Price>, ConfigError> {
    let mut prices = BTreeMap::new();
    for (label, spanned) in raw {
        let Some((provider, _model)) = label.split_once('/').filter(|(_, m)| !m.is_empty()) else {
            return Err(values.error(
                Some(spanned.span()),
                format!("`prices.\"{label}\"`: the key must be a target, `provider/model`"),
            ));
        };
        if !providers.iter().any(|p| p.name == provider) {
            return Err(values.error(
                Some(spanned.span()),
                format!(
                    "`prices.\"{label}\"` names the provider `{provider}`, which is not \
                     configured"
                ),
            ));
        }
        let p = spanned.get_ref();
        let number = |v: &Spanned<f64>, field: &str| {
            let x = *v.get_ref();
            if x.is_finite() && (0.0..=aigw_access::prices::MAX_USD_PER_MILLION).contains(&x) {
                Ok(x)
            } else {
                Err(values.error(
                    Some(v.span()),
                    format!(
                        "`prices.\"{label}\".{field}` must be USD per million tokens, from 0 to \
                         {}, not {x}",
                        aigw_access::prices::MAX_USD_PER_MILLION
                    ),
                ))
            }
        };
        let input = number(&p.input, "input")?;
        let output = number(&p.output, "output")?;
        let price = Price::per_million(input, output).map_err(|e| {
            values.error(Some(spanned.span()), format!("`prices.\"{label}\"`: {e}"))
        })?;
        prices.insert(label.clone(), price);
    }
    Ok(prices)
}
