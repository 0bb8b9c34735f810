//! Open-Meteo, geocoding (`GET /v1/search`) and forecast (`GET /v1/forecast`) on one server: no
//! `results` key for an unknown place, `{"error":true,"reason"}` 400s for unknown variables and
//! out-of-range days, 429s whose reason names the window and no `Retry-After`.

use http::{Response, StatusCode};
use serde_json::{Map, Value, json};

use super::{Body, Call, bot_wall, derived, json, not_found};

/// The variables the forecast knows (of those a client asks for).
const CURRENT_VARIABLES: [&str; 8] = [
    "temperature_2m",
    "relative_humidity_2m",
    "apparent_temperature",
    "precipitation",
    "weather_code",
    "wind_speed_10m",
    "is_day",
    "cloud_cover",
];
const DAILY_VARIABLES: [&str; 5] = [
    "weather_code",
    "temperature_2m_max",
    "temperature_2m_min",
    "precipitation_sum",
    "wind_speed_10m_max",
];

/// The latitude whose forecast is rate limited (what the geocoder gives `RATE-FORECAST`).
pub const RATE_LIMITED_LATITUDE: f64 = 4.29;

pub(crate) fn open_meteo(call: &Call<'_>) -> Response<Body> {
    match (call.request.method.as_str(), call.request.path.as_str()) {
        ("GET", "/v1/search") => geocode(call),
        ("GET", "/v1/forecast") => forecast(call),
        _ => not_found(call.request),
    }
}

fn error(status: StatusCode, reason: &str) -> Response<Body> {
    json(status, &json!({"error": true, "reason": reason}))
}

fn minutely() -> Response<Body> {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "Minutely API request limit exceeded. Please try again in one minute.",
    )
}

fn geocode(call: &Call<'_>) -> Response<Body> {
    let Some(name) = call.param("name") else {
        return error(StatusCode::BAD_REQUEST, "Parameter 'name' is missing");
    };
    let place = match name {
        "Nowhere" => return json(StatusCode::OK, &json!({"generationtime_ms": 0.5})),
        "RATE" => return minutely(),
        "RATE-DAILY" => {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "Daily API request limit exceeded. Please try again tomorrow.",
            );
        }
        "ERROR" => return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
        "HTML" => return bot_wall(),
        "Berlin" => (
            2_950_159,
            "Berlin",
            52.52437,
            13.41053,
            "DE",
            "Germany",
            "Europe/Berlin",
        ),
        "Paris" => (
            2_988_507,
            "Paris",
            48.85341,
            2.3488,
            "FR",
            "France",
            "Europe/Paris",
        ),
        "New York" => (
            5_128_581,
            "New York",
            40.71427,
            -74.00597,
            "US",
            "United States",
            "America/New_York",
        ),
        "RATE-FORECAST" => (
            1,
            "Rate Forecast",
            RATE_LIMITED_LATITUDE,
            0.0,
            "ZZ",
            "Nowhere Land",
            "GMT",
        ),
        other => {
            let latitude = derived(other, 120_000) as f64 / 1000.0 - 60.0;
            let longitude = derived(&format!("{other}/lon"), 300_000) as f64 / 1000.0 - 150.0;
            (
                3_000_000 + derived(other, 1_000_000),
                other,
                latitude,
                longitude,
                "XX",
                "Mockland",
                "GMT",
            )
        }
    };
    let (id, name, latitude, longitude, country_code, country, timezone) = place;
    json(
        StatusCode::OK,
        &json!({
            "results": [{
                "id": id, "name": name, "latitude": latitude, "longitude": longitude,
                "elevation": 74.0, "feature_code": "PPLC", "country_code": country_code,
                "timezone": timezone, "population": 3_426_354, "country": country,
                "admin1": name,
            }],
            "generationtime_ms": 0.78,
        }),
    )
}

fn forecast(call: &Call<'_>) -> Response<Body> {
    let coordinate = |name: &str| call.param(name).and_then(|v| v.parse::<f64>().ok());
    let (Some(latitude), Some(longitude)) = (coordinate("latitude"), coordinate("longitude"))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "Parameter 'latitude' and 'longitude' must have the same number of elements",
        );
    };
    if !(-90.0..=90.0).contains(&latitude) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Latitude must be in range of -90 to 90°. Given: {latitude}."),
        );
    }
    if (latitude - RATE_LIMITED_LATITUDE).abs() < 1e-9 {
        return minutely();
    }
    let fahrenheit = call.param("temperature_unit") == Some("fahrenheit");
    let mph = call.param("wind_speed_unit") == Some("mph");
    let inch = call.param("precipitation_unit") == Some("inch");
    let temperature = |celsius: f64| {
        if fahrenheit {
            round(celsius * 9.0 / 5.0 + 32.0)
        } else {
            celsius
        }
    };
    let wind = |kmh: f64| if mph { round(kmh / 1.609_344) } else { kmh };
    let rain = |mm: f64| if inch { round(mm / 25.4) } else { mm };
    let units = |variable: &str| -> &'static str {
        match variable {
            v if v.starts_with("temperature") || v == "apparent_temperature" => {
                if fahrenheit {
                    "°F"
                } else {
                    "°C"
                }
            }
            v if v.starts_with("wind_speed") => {
                if mph {
                    "mp/h"
                } else {
                    "km/h"
                }
            }
            v if v.starts_with("precipitation") => {
                if inch {
                    "inch"
                } else {
                    "mm"
                }
            }
            "relative_humidity_2m" | "cloud_cover" => "%",
            "weather_code" => "wmo code",
            _ => "",
        }
    };
    let seed = derived(&format!("{latitude},{longitude}"), 1000);
    let base_temperature = 10.0 + (seed % 200) as f64 / 10.0;
    let mut body = Map::new();
    body.insert("latitude".into(), json!(round(latitude)));
    body.insert("longitude".into(), json!(round(longitude)));
    body.insert("generationtime_ms".into(), json!(0.05));
    body.insert("utc_offset_seconds".into(), json!(0));
    body.insert("timezone".into(), json!("GMT"));
    body.insert("timezone_abbreviation".into(), json!("GMT"));
    body.insert("elevation".into(), json!(38.0));

    if let Some(current) = call.param("current") {
        let mut values = Map::new();
        let mut unit_map = Map::new();
        values.insert("time".into(), json!("2025-06-01T14:15"));
        values.insert("interval".into(), json!(900));
        unit_map.insert("time".into(), json!("iso8601"));
        unit_map.insert("interval".into(), json!("seconds"));
        for variable in current.split(',') {
            if !CURRENT_VARIABLES.contains(&variable) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Cannot initialize WeatherVariable from invalid String value {variable} for key current"
                    ),
                );
            }
            let value = match variable {
                "temperature_2m" => json!(temperature(base_temperature)),
                "apparent_temperature" => json!(temperature(round(base_temperature - 1.3))),
                "relative_humidity_2m" => json!(40 + seed % 50),
                "precipitation" => json!(rain(0.0)),
                "weather_code" => json!(weather_code(seed)),
                "wind_speed_10m" => json!(wind(round(5.0 + (seed % 150) as f64 / 10.0))),
                "is_day" => json!(1),
                _ => json!(seed % 100),
            };
            values.insert(variable.into(), value);
            unit_map.insert(variable.into(), json!(units(variable)));
        }
        body.insert("current_units".into(), Value::Object(unit_map));
        body.insert("current".into(), Value::Object(values));
    }

    if let Some(daily) = call.param("daily") {
        let days = match call.param("forecast_days").map(str::parse::<u32>) {
            None => 7,
            Some(Ok(days)) if days <= 16 => days,
            Some(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Forecast days is invalid. Allowed range 0 to 16.",
                );
            }
        };
        if call.param("timezone").is_none() {
            return error(StatusCode::BAD_REQUEST, "Timezone is required");
        }
        let mut columns = Map::new();
        let mut unit_map = Map::new();
        let dates: Vec<String> = (0..days).map(|d| date_after("2025-06-01", d)).collect();
        columns.insert("time".into(), json!(dates));
        unit_map.insert("time".into(), json!("iso8601"));
        for variable in daily.split(',') {
            if !DAILY_VARIABLES.contains(&variable) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Cannot initialize WeatherVariable from invalid String value {variable} for key daily"
                    ),
                );
            }
            let column: Vec<Value> = (0..u64::from(days))
                .map(|d| match variable {
                    "weather_code" => json!(weather_code(seed + d)),
                    "temperature_2m_max" => {
                        json!(temperature(round(base_temperature + 4.0 + d as f64 / 2.0)))
                    }
                    "temperature_2m_min" => {
                        json!(temperature(round(base_temperature - 6.0 + d as f64 / 4.0)))
                    }
                    "precipitation_sum" => json!(rain(round(((seed + d) % 7) as f64 * 0.6))),
                    _ => json!(wind(round(12.0 + d as f64))),
                })
                .collect();
            columns.insert(variable.into(), json!(column));
            unit_map.insert(variable.into(), json!(units(variable)));
        }
        body.insert("daily_units".into(), Value::Object(unit_map));
        body.insert("daily".into(), Value::Object(columns));
    }
    json(StatusCode::OK, &Value::Object(body))
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// A real WMO code, chosen by `seed`.
fn weather_code(seed: u64) -> u64 {
    const CODES: [u64; 10] = [0, 1, 2, 3, 45, 51, 61, 63, 71, 95];
    CODES[(seed % CODES.len() as u64) as usize]
}

/// `start` (a June date) plus `days`, as `YYYY-MM-DD` (June and July are enough for 16 days).
fn date_after(start: &str, days: u32) -> String {
    let day: u32 = start[8..].parse().unwrap_or(1) + days;
    if day <= 30 {
        format!("2025-06-{day:02}")
    } else {
        format!("2025-07-{:02}", day - 30)
    }
}
