use aigw_plugin_sdk::testing::{Upstream, response};
use aigw_plugin_sdk::{CredentialPlacement, Failure, NamedUrl, Tool, ToolTarget};
use serde_json::{Value, json};

use super::Weather;

const BERLIN: &str = include_str!("../tests/fixtures/geocoding_berlin.json");
const NO_PLACE: &str = include_str!("../tests/fixtures/geocoding_none.json");
const CURRENT: &str = include_str!("../tests/fixtures/forecast_current.json");
const DAILY: &str = include_str!("../tests/fixtures/forecast_daily.json");
const BAD_PARAMETER: &str = include_str!("../tests/fixtures/error_400.json");
const MINUTELY: &str = include_str!("../tests/fixtures/error_429_minutely.json");
const DAILY_LIMIT: &str = include_str!("../tests/fixtures/error_429_daily.json");

fn target() -> ToolTarget {
    ToolTarget {
        upstream: "open-meteo".to_owned(),
        endpoints: vec![
            NamedUrl::new("geocoding", "http://geo.test"),
            NamedUrl::new("forecast", "http://forecast.test/"),
        ],
    }
}

fn call(
    upstream: Upstream,
    tool: &str,
    args: Value,
) -> (Result<Value, Failure>, Vec<aigw_plugin_sdk::HttpRequest>) {
    upstream.run(|| Weather::invoke(tool, args, &target()))
}

#[test]
fn describes_two_tools_over_one_keyless_upstream() {
    let descriptor = Weather::describe();
    assert_eq!(descriptor.name, "weather");
    let names: Vec<&str> = descriptor.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["weather_current", "weather_forecast"]);
    for tool in &descriptor.tools {
        assert_eq!(tool.parameters["additionalProperties"], false);
        assert_eq!(tool.cache_ttl_seconds, 600);
        assert!(tool.output.is_some());
    }
    assert_eq!(
        descriptor.tools[1].parameters["properties"]["days"]["maximum"],
        16
    );
    let upstream = &descriptor.upstreams[0];
    assert_eq!(upstream.name, "open-meteo");
    assert_eq!(upstream.credential, CredentialPlacement::None);
    assert!(!upstream.credential_required);
    assert_eq!(
        upstream.endpoints,
        vec![
            NamedUrl::new("geocoding", "https://geocoding-api.open-meteo.com"),
            NamedUrl::new("forecast", "https://api.open-meteo.com"),
        ]
    );
}

#[test]
fn current_weather_geocodes_then_reads_the_forecast() {
    let upstream =
        Upstream::new()
            .json("/v1/search", 200, BERLIN)
            .json("/v1/forecast", 200, CURRENT);
    let (result, sent) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    let result = result.unwrap();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].url,
        "http://geo.test/v1/search?name=Berlin&count=1&language=en&format=json"
    );
    assert!(
        sent[1].url.starts_with("http://forecast.test/v1/forecast?latitude=52.52437&longitude=13.41053&timezone=auto&current="),
        "{}",
        sent[1].url
    );
    assert_eq!(result["location"]["name"], "Berlin");
    assert_eq!(result["location"]["country"], "Germany");
    assert_eq!(result["location"]["timezone"], "Europe/Berlin");
    assert_eq!(result["current"]["temperature"], 21.4);
    assert_eq!(result["current"]["apparent_temperature"], 20.1);
    assert_eq!(result["current"]["humidity"], 48);
    assert_eq!(result["current"]["wind_speed"], 11.2);
    assert_eq!(result["current"]["conditions"], "partly cloudy");
    assert_eq!(result["current"]["time"], "2025-06-01T14:15");
    assert_eq!(
        result["units"],
        json!({"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm"})
    );
}

#[test]
fn coordinates_skip_the_geocoder_and_imperial_asks_for_imperial_units() {
    let upstream = Upstream::new().json("/v1/forecast", 200, CURRENT);
    let (result, sent) = call(
        upstream,
        "weather_current",
        json!({"latitude": 48.85, "longitude": 2.35, "units": "imperial"}),
    );
    let result = result.unwrap();
    assert_eq!(sent.len(), 1);
    let url = &sent[0].url;
    assert!(url.contains("latitude=48.85&longitude=2.35"), "{url}");
    assert!(
        url.contains("temperature_unit=fahrenheit&wind_speed_unit=mph&precipitation_unit=inch"),
        "{url}"
    );
    assert_eq!(result["location"]["name"], Value::Null);
    assert_eq!(result["location"]["latitude"], 48.85);
}

#[test]
fn an_unknown_place_has_no_results_key_and_is_the_callers_mistake() {
    let upstream = Upstream::new().json("/v1/search", 200, NO_PLACE);
    let (result, sent) = call(upstream, "weather_current", json!({"city": "Nowhere"}));
    let failure = result.unwrap_err();
    assert!(matches!(failure, Failure::InvalidRequest(_)), "{failure:?}");
    assert!(failure.message().contains("\"Nowhere\""), "{failure:?}");
    assert_eq!(
        sent.len(),
        1,
        "no forecast asked for a place that does not exist"
    );
}

#[test]
fn city_names_are_percent_encoded() {
    let upstream = Upstream::new().json("/v1/search", 200, NO_PLACE);
    let (_, sent) = call(
        upstream,
        "weather_current",
        json!({"city": "São Paulo&count=100"}),
    );
    assert!(
        sent[0]
            .url
            .contains("name=S%C3%A3o%20Paulo%26count%3D100&count=1"),
        "{}",
        sent[0].url
    );
}

#[test]
fn the_forecast_lists_days_with_conditions_in_words() {
    let upstream = Upstream::new()
        .json("/v1/search", 200, BERLIN)
        .json("/v1/forecast", 200, DAILY);
    let (result, sent) = call(
        upstream,
        "weather_forecast",
        json!({"city": "Berlin", "days": 2}),
    );
    let result = result.unwrap();
    assert!(
        sent[1]
            .url
            .contains("&daily=weather_code%2Ctemperature_2m_max"),
        "{}",
        sent[1].url
    );
    assert!(sent[1].url.ends_with("&forecast_days=2"), "{}", sent[1].url);
    let days = result["days"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(
        days[0],
        json!({"date": "2025-06-01", "conditions": "overcast", "weather_code": 3, "temperature_max": 23.1, "temperature_min": 12.4, "precipitation": 0.0})
    );
    assert_eq!(days[1]["conditions"], "slight rain");
    assert_eq!(days[1]["precipitation"], 4.2);
}

#[test]
fn the_forecast_defaults_to_seven_days_and_refuses_seventeen() {
    let upstream = Upstream::new().json("/v1/forecast", 200, DAILY);
    let (_, sent) = call(
        upstream,
        "weather_forecast",
        json!({"latitude": 1.0, "longitude": 2.0}),
    );
    assert!(sent[0].url.ends_with("&forecast_days=7"), "{}", sent[0].url);
    let (result, sent) = call(
        Upstream::new(),
        "weather_forecast",
        json!({"city": "Berlin", "days": 17}),
    );
    assert!(
        matches!(result, Err(Failure::InvalidRequest(_))),
        "{result:?}"
    );
    assert!(sent.is_empty());
}

#[test]
fn a_place_needs_a_city_or_both_coordinates() {
    for args in [
        json!({}),
        json!({"latitude": 1.0}),
        json!({"city": "Berlin", "latitude": 1.0, "longitude": 2.0}),
    ] {
        let (result, sent) = call(Upstream::new(), "weather_current", args.clone());
        assert!(
            matches!(result, Err(Failure::InvalidRequest(_))),
            "{args}: {result:?}"
        );
        assert!(sent.is_empty());
    }
}

#[test]
fn rate_limits_wait_for_the_window_their_reason_names() {
    let upstream = Upstream::new().json("/v1/search", 429, MINUTELY);
    let (result, _) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    match result {
        Err(Failure::RateLimited {
            retry_after_seconds,
            message,
        }) => {
            assert_eq!(retry_after_seconds, Some(60));
            assert!(
                message.contains("Minutely API request limit exceeded"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let upstream =
        Upstream::new()
            .json("/v1/search", 200, BERLIN)
            .json("/v1/forecast", 429, DAILY_LIMIT);
    let (result, _) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    assert!(
        matches!(
            result,
            Err(Failure::RateLimited {
                retry_after_seconds: Some(86_400),
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        super::open_meteo::wait_for(
            "Hourly API request limit exceeded. Please try again in the next hour."
        ),
        3_600
    );
}

#[test]
fn a_refused_parameter_is_an_invalid_request_with_the_reason() {
    let upstream = Upstream::new().json("/v1/forecast", 400, BAD_PARAMETER);
    let (result, _) = call(
        upstream,
        "weather_current",
        json!({"latitude": 1.0, "longitude": 2.0}),
    );
    let failure = result.unwrap_err();
    assert!(matches!(failure, Failure::InvalidRequest(_)), "{failure:?}");
    assert!(failure.message().contains("tempeture_2m"), "{failure:?}");
}

#[test]
fn server_errors_and_html_pages_are_unavailable() {
    let upstream = Upstream::new().answer(
        "/v1/search",
        response(
            502,
            &[("content-type", "text/html")],
            "<html><h1>502 Bad Gateway</h1></html>",
        ),
    );
    let (result, _) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
    let upstream = Upstream::new().json(
        "/v1/search",
        503,
        r#"{"error":true,"reason":"Service temporarily unavailable"}"#,
    );
    let (result, _) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    assert!(matches!(result, Err(Failure::Unavailable(_))), "{result:?}");
    let upstream = Upstream::new().fail("/v1/search", Failure::Unavailable("timed out".into()));
    let (result, _) = call(upstream, "weather_current", json!({"city": "Berlin"}));
    assert_eq!(result, Err(Failure::Unavailable("timed out".into())));
}

#[test]
fn wmo_codes_read_as_words() {
    assert_eq!(super::wmo::conditions(0), "clear sky");
    assert_eq!(super::wmo::conditions(99), "thunderstorm with heavy hail");
    assert_eq!(
        super::wmo::conditions(42),
        "unknown conditions (WMO code 42)"
    );
}

#[test]
fn an_unknown_tool_is_refused() {
    let (result, _) = call(Upstream::new(), "weather_tomorrow", json!({}));
    assert!(
        matches!(result, Err(Failure::InvalidRequest(_))),
        "{result:?}"
    );
}
