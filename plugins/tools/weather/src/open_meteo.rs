//! Open-Meteo's wire format (`docs/wire-formats.md`, Open-Meteo): the geocoding search, the
//! forecast, and their errors.
//!
//! - A place the geocoder does not know is `{"generationtime_ms": …}` with **no `results` key**
//!   (not an empty array): the caller's `invalid-request`, naming the place.
//! - Errors are `{"error": true, "reason": "…"}`: 400 for a bad parameter, 429 for a rate limit
//!   that says its window only in words ("Minutely …", "Hourly …", "Daily …"), **no
//!   `Retry-After`**: the wait is read from the reason.
//! - `time` strings are local to the answer's `timezone`, without offset (asked with
//!   `timezone=auto`, which `daily` needs).

use aigw_plugin_sdk::query::Url;
use aigw_plugin_sdk::{Failure, HttpResponse, ToolTarget, answer, http};
use serde_json::{Value, json};

use crate::wmo;

/// The upstream's name, and its endpoints'.
pub const UPSTREAM: &str = "open-meteo";
pub const GEOCODING: &str = "geocoding";
pub const FORECAST: &str = "forecast";

const API: &str = "Open-Meteo";

const CURRENT: &str = "temperature_2m,relative_humidity_2m,apparent_temperature,precipitation,weather_code,wind_speed_10m";
const DAILY: &str = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    Metric,
    Imperial,
}

/// A place: the geocoder's match, or bare coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub name: Option<String>,
    pub country: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
}

impl Place {
    pub fn at(latitude: f64, longitude: f64) -> Place {
        Place {
            name: None,
            country: None,
            latitude,
            longitude,
        }
    }
}

/// The geocoder's best match for `city`.
pub fn geocode(target: &ToolTarget, city: &str) -> Result<Place, Failure> {
    let url = Url::new(target.endpoint(GEOCODING)?, "/v1/search")
        .param("name", city)
        .param("count", "1")
        .param("language", "en")
        .param("format", "json")
        .build();
    let body = read(&http::get(&url, &[])?)?;
    let Some(first) = body
        .get("results")
        .and_then(Value::as_array)
        .and_then(|results| results.first())
    else {
        return Err(Failure::InvalidRequest(format!(
            "no place named {city:?} was found; try another spelling, add the country, or give latitude and longitude"
        )));
    };
    let coordinate = |field: &str| {
        first.get(field).and_then(Value::as_f64).ok_or_else(|| {
            Failure::BadResponse(format!(
                "{API}'s geocoding match for {city:?} has no {field}"
            ))
        })
    };
    Ok(Place {
        name: first.get("name").and_then(Value::as_str).map(str::to_owned),
        country: first
            .get("country")
            .and_then(Value::as_str)
            .map(str::to_owned),
        latitude: coordinate("latitude")?,
        longitude: coordinate("longitude")?,
    })
}

fn forecast_url(target: &ToolTarget, place: &Place, units: Units) -> Result<Url, Failure> {
    let url = Url::new(target.endpoint(FORECAST)?, "/v1/forecast")
        .param("latitude", place.latitude.to_string())
        .param("longitude", place.longitude.to_string())
        .param("timezone", "auto");
    Ok(match units {
        Units::Metric => url,
        Units::Imperial => url
            .param("temperature_unit", "fahrenheit")
            .param("wind_speed_unit", "mph")
            .param("precipitation_unit", "inch"),
    })
}

/// The weather now at `place`.
pub fn current(target: &ToolTarget, place: &Place, units: Units) -> Result<Value, Failure> {
    let url = forecast_url(target, place, units)?
        .param("current", CURRENT)
        .build();
    let body = read(&http::get(&url, &[])?)?;
    let current = body
        .get("current")
        .filter(|current| current.is_object())
        .ok_or_else(|| {
            Failure::BadResponse(format!("{API}'s forecast has no \"current\" block"))
        })?;
    let field = |name: &str| current.get(name).cloned().unwrap_or(Value::Null);
    let code = current.get("weather_code").and_then(Value::as_i64);
    Ok(json!({
        "location": location(place, &body),
        "units": units_of(&body, "current_units", units),
        "current": {
            "time": current.get("time").and_then(Value::as_str).unwrap_or_default(),
            "temperature": field("temperature_2m"),
            "apparent_temperature": field("apparent_temperature"),
            "humidity": field("relative_humidity_2m"),
            "precipitation": field("precipitation"),
            "wind_speed": field("wind_speed_10m"),
            "weather_code": field("weather_code"),
            "conditions": code.map_or_else(|| "unknown".to_owned(), wmo::conditions),
        },
    }))
}

/// The daily forecast for `days` days at `place`.
pub fn forecast(
    target: &ToolTarget,
    place: &Place,
    units: Units,
    days: i64,
) -> Result<Value, Failure> {
    let url = forecast_url(target, place, units)?
        .param("daily", DAILY)
        .param("forecast_days", days.to_string())
        .build();
    let body = read(&http::get(&url, &[])?)?;
    let daily = body
        .get("daily")
        .filter(|daily| daily.is_object())
        .ok_or_else(|| Failure::BadResponse(format!("{API}'s forecast has no \"daily\" block")))?;
    let column = |name: &str| {
        daily
            .get(name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let dates = column("time");
    let codes = column("weather_code");
    let highs = column("temperature_2m_max");
    let lows = column("temperature_2m_min");
    let rain = column("precipitation_sum");
    let at = |values: &[Value], i: usize| values.get(i).cloned().unwrap_or(Value::Null);
    let days: Vec<Value> = dates
        .iter()
        .enumerate()
        .map(|(i, date)| {
            let code = codes.get(i).and_then(Value::as_i64);
            json!({
                "date": date,
                "conditions": code.map_or_else(|| "unknown".to_owned(), wmo::conditions),
                "weather_code": at(&codes, i),
                "temperature_max": at(&highs, i),
                "temperature_min": at(&lows, i),
                "precipitation": at(&rain, i),
            })
        })
        .collect();
    Ok(json!({
        "location": location(place, &body),
        "units": units_of(&body, "daily_units", units),
        "days": days,
    }))
}

fn location(place: &Place, body: &Value) -> Value {
    json!({
        "name": place.name,
        "country": place.country,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "timezone": body.get("timezone").and_then(Value::as_str),
    })
}

/// The units the answer says it is in (`current_units` / `daily_units`), else what was asked.
fn units_of(body: &Value, block: &str, asked: Units) -> Value {
    let said = |field: &str| {
        body.get(block)
            .and_then(|b| b.get(field))
            .and_then(Value::as_str)
    };
    let (temperature, wind, precipitation) = match asked {
        Units::Metric => ("°C", "km/h", "mm"),
        Units::Imperial => ("°F", "mp/h", "inch"),
    };
    json!({
        "temperature": said("temperature_2m").or_else(|| said("temperature_2m_max")).unwrap_or(temperature),
        "wind_speed": said("wind_speed_10m").unwrap_or(wind),
        "precipitation": said("precipitation").or_else(|| said("precipitation_sum")).unwrap_or(precipitation),
    })
}

/// A good answer's JSON, or its failure: Open-Meteo's `{"error": true, "reason"}` read first.
fn read(response: &HttpResponse) -> Result<Value, Failure> {
    if (200..300).contains(&response.status) || answer::is_html(response) {
        return answer::json(API, response);
    }
    let reason = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| {
            body.get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let Some(reason) = reason else {
        return Err(answer::failure(API, response));
    };
    let message = format!("{API}: {reason}");
    Err(match response.status {
        429 => Failure::RateLimited {
            retry_after_seconds: Some(wait_for(&reason)),
            message,
        },
        // A parameter Open-Meteo refused is this plugin's request, not the caller's words:
        // `invalid-request` all the same, no other upstream would take it.
        400 => Failure::InvalidRequest(message),
        _ => answer::failure_with(response, message),
    })
}

/// The wait a rate-limit reason implies: "Minutely API request limit exceeded. Please try again
/// in one minute." → 60 s; "Hourly … in the next hour." → 3600 s; "Daily … tomorrow." → a day.
pub fn wait_for(reason: &str) -> u32 {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("daily") || reason.contains("tomorrow") {
        86_400
    } else if reason.contains("hourly") || reason.contains("hour") {
        3_600
    } else {
        60
    }
}
