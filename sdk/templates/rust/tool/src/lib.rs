//! `{{name}}`: an aigw tool plugin. One tool, `{{crate}}`: the air temperature now at a latitude
//! and longitude, from Open-Meteo's forecast API (free, no key).
//!
//! The host checks the arguments against the tool's schema before `invoke`, sends the plugin's
//! requests itself (only to the endpoints of the upstream the call is for, adding its key when it
//! has one) and fails over to the next upstream on a rate limit, a bad key or an outage: so
//! classify failures (`aigw_plugin_sdk::answer` does it for JSON APIs).

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
    answer, http, schema,
};
use serde_json::{Value, json};

pub struct {{class}};

aigw_plugin_sdk::export_tool!({{class}});

/// The upstream and its one endpoint, by the names the operator's config uses.
const UPSTREAM: &str = "open-meteo";
const FORECAST: &str = "forecast";

/// The upstream's name in failure messages.
const API: &str = "Open-Meteo";

fn spec() -> ToolSpec {
    ToolSpec {
        name: "{{crate}}".to_owned(),
        title: "Temperature now".to_owned(),
        description: "The air temperature right now at a latitude and longitude, in °C.".to_owned(),
        parameters: schema::object(
            json!({
                "latitude": schema::number("Latitude in degrees", -90.0, 90.0),
                "longitude": schema::number("Longitude in degrees", -180.0, 180.0),
            }),
            &["latitude", "longitude"],
        ),
        output: Some(schema::object(
            json!({
                "latitude": schema::number("Latitude of the grid point", -90.0, 90.0),
                "longitude": schema::number("Longitude of the grid point", -180.0, 180.0),
                "time": schema::string("Local time of the observation (ISO 8601)"),
                "temperature": schema::nullable_number("Air temperature at 2 m"),
                "unit": schema::string("The temperature's unit, e.g. °C"),
            }),
            &["latitude", "longitude", "time", "temperature", "unit"],
        )),
        // The upstream's values move every 15 minutes.
        cache_ttl_seconds: 600,
    }
}

impl Tool for {{class}} {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "{{name}}".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: vec![spec()],
            upstreams: vec![Upstream {
                name: UPSTREAM.to_owned(),
                endpoints: vec![NamedUrl::new(FORECAST, "https://api.open-meteo.com")],
                credential: CredentialPlacement::None,
                credential_required: false,
            }],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        if name != "{{crate}}" {
            return Err(Failure::InvalidRequest(format!(
                "the {{name}} plugin has no tool named {name:?}"
            )));
        }
        let args = Args(&args);
        let latitude = required(args.number("latitude", -90.0, 90.0)?, "latitude")?;
        let longitude = required(args.number("longitude", -180.0, 180.0)?, "longitude")?;
        // URLs only from the target's endpoints: the host reaches nothing else.
        let url = Url::new(target.endpoint(FORECAST)?, "/v1/forecast")
            .param("latitude", latitude.to_string())
            .param("longitude", longitude.to_string())
            .param("current", "temperature_2m")
            .build();
        let body = answer::json(API, &http::get(&url, &[])?)?;
        let current = body
            .get("current")
            .filter(|c| c.is_object())
            .ok_or_else(|| {
                Failure::BadResponse(format!("{API}'s answer has no \"current\" block"))
            })?;
        Ok(json!({
            "latitude": body.get("latitude").cloned().unwrap_or(json!(latitude)),
            "longitude": body.get("longitude").cloned().unwrap_or(json!(longitude)),
            "time": current.get("time").and_then(Value::as_str).unwrap_or_default(),
            "temperature": current.get("temperature_2m").cloned().unwrap_or(Value::Null),
            "unit": body
                .pointer("/current_units/temperature_2m")
                .and_then(Value::as_str)
                .unwrap_or("°C"),
        }))
    }
}

fn required(value: Option<f64>, field: &str) -> Result<f64, Failure> {
    value.ok_or_else(|| Failure::InvalidRequest(format!("argument {field:?} is required")))
}

#[cfg(test)]
mod tests {
    use aigw_plugin_sdk::testing::Upstream as Scripted;

    use super::*;

    fn target() -> ToolTarget {
        ToolTarget {
            upstream: UPSTREAM.to_owned(),
            endpoints: vec![NamedUrl::new(FORECAST, "http://forecast.test/")],
        }
    }

    const ANSWER: &str = r#"{"latitude":52.52,"longitude":13.419998,"current_units":{"time":"iso8601","temperature_2m":"°C"},"current":{"time":"2026-01-01T12:00","interval":900,"temperature_2m":3.4}}"#;

    #[test]
    fn reads_the_temperature_from_the_forecast_endpoint() {
        let upstream = Scripted::new().json("/v1/forecast", 200, ANSWER);
        let (result, sent) = upstream.run(|| {
            {{class}}::invoke(
                "{{crate}}",
                json!({"latitude": 52.52, "longitude": 13.41}),
                &target(),
            )
        });
        let result = result.unwrap();
        assert_eq!(result["temperature"], 3.4);
        assert_eq!(result["unit"], "°C");
        assert_eq!(sent.len(), 1);
        assert!(
            sent[0].url.starts_with("http://forecast.test/v1/forecast?"),
            "{}",
            sent[0].url
        );
        assert!(sent[0].url.contains("latitude=52.52"), "{}", sent[0].url);
    }

    #[test]
    fn a_rate_limit_is_classified_so_the_host_can_fail_over() {
        let upstream = Scripted::new().json(
            "/v1/forecast",
            429,
            r#"{"error":true,"reason":"Minutely API request limit exceeded."}"#,
        );
        let (result, _) = upstream.run(|| {
            {{class}}::invoke(
                "{{crate}}",
                json!({"latitude": 1.0, "longitude": 2.0}),
                &target(),
            )
        });
        assert!(
            matches!(result, Err(Failure::RateLimited { .. })),
            "{result:?}"
        );
    }
}
