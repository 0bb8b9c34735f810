//! The `weather` tool plugin: current weather and daily forecasts from Open-Meteo (free, no key),
//! for a place name (geocoded first) or coordinates.
//!
//! Tools: `weather_current {city | latitude + longitude, units?}` and `weather_forecast {city |
//! latitude + longitude, days? (1-16), units?}`. Upstream `open-meteo` with two endpoints,
//! `geocoding` and `forecast` (`docs/tools/weather.md`). A place the geocoder does not know is
//! the caller's `invalid-request` naming it; Open-Meteo's rate limits say their window only in
//! words (`open_meteo.rs`).

mod open_meteo;
mod wmo;

use aigw_plugin_sdk::args::Args;
use aigw_plugin_sdk::schema;
use aigw_plugin_sdk::{
    CredentialPlacement, Failure, NamedUrl, Tool, ToolDescriptor, ToolSpec, ToolTarget, Upstream,
};
use serde_json::{Value, json};

use open_meteo::{Place, Units};

pub struct Weather;

aigw_plugin_sdk::export_tool!(Weather);

/// Results stay fresh this long: Open-Meteo's current values move every 15 minutes.
const CACHE_TTL_SECONDS: u32 = 600;

/// Open-Meteo's longest forecast.
const MAX_DAYS: i64 = 16;

fn place_properties() -> serde_json::Map<String, Value> {
    let mut properties = serde_json::Map::new();
    properties.insert(
        "city".into(),
        schema::text(
            "A place name, e.g. \"Berlin\" or \"Paris, FR\"; give this or latitude and longitude",
            200,
        ),
    );
    properties.insert(
        "latitude".into(),
        schema::number(
            "Latitude in degrees (with longitude, instead of city)",
            -90.0,
            90.0,
        ),
    );
    properties.insert(
        "longitude".into(),
        schema::number(
            "Longitude in degrees (with latitude, instead of city)",
            -180.0,
            180.0,
        ),
    );
    properties.insert(
        "units".into(),
        schema::one_of(
            "metric (°C, km/h, mm; the default) or imperial (°F, mph, inch)",
            &["metric", "imperial"],
        ),
    );
    properties
}

fn location_schema() -> Value {
    schema::object(
        json!({
            "name": schema::nullable_string("The place's name (null for bare coordinates)"),
            "country": schema::nullable_string("Its country"),
            "latitude": schema::number("Latitude", -90.0, 90.0),
            "longitude": schema::number("Longitude", -180.0, 180.0),
            "timezone": schema::nullable_string("Its time zone; times are local to it"),
        }),
        &["name", "country", "latitude", "longitude", "timezone"],
    )
}

fn units_schema() -> Value {
    schema::object(
        json!({
            "temperature": schema::string("e.g. °C"),
            "wind_speed": schema::string("e.g. km/h"),
            "precipitation": schema::string("e.g. mm"),
        }),
        &["temperature", "wind_speed", "precipitation"],
    )
}

fn current_spec() -> ToolSpec {
    ToolSpec {
        name: "weather_current".to_owned(),
        title: "Current weather".to_owned(),
        description: "The weather right now at a place (by name, or latitude and longitude): \
                      temperature, feels-like, humidity, precipitation, wind and conditions in words."
            .to_owned(),
        parameters: schema::object(Value::Object(place_properties()), &[]),
        output: Some(schema::object(
            json!({
                "location": location_schema(),
                "units": units_schema(),
                "current": schema::object(json!({
                    "time": schema::string("Local time of the observation (ISO 8601, no offset)"),
                    "temperature": schema::nullable_number("Air temperature"),
                    "apparent_temperature": schema::nullable_number("Feels-like temperature"),
                    "humidity": schema::nullable_number("Relative humidity, %"),
                    "precipitation": schema::nullable_number("Precipitation"),
                    "wind_speed": schema::nullable_number("Wind speed at 10 m"),
                    "weather_code": schema::nullable_number("WMO weather code"),
                    "conditions": schema::string("The conditions in words"),
                }), &["time", "temperature", "conditions"]),
            }),
            &["location", "units", "current"],
        )),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

fn forecast_spec() -> ToolSpec {
    let mut properties = place_properties();
    properties.insert(
        "days".into(),
        schema::integer("How many days, today first (default 7)", 1, MAX_DAYS),
    );
    ToolSpec {
        name: "weather_forecast".to_owned(),
        title: "Weather forecast".to_owned(),
        description: "The daily forecast for a place (by name, or latitude and longitude) for up \
                      to 16 days: conditions in words, high and low temperature, precipitation."
            .to_owned(),
        parameters: schema::object(Value::Object(properties), &[]),
        output: Some(schema::object(
            json!({
                "location": location_schema(),
                "units": units_schema(),
                "days": schema::array("One entry per day, today first", schema::object(json!({
                    "date": schema::string("Local date (YYYY-MM-DD)"),
                    "conditions": schema::string("The conditions in words"),
                    "weather_code": schema::nullable_number("WMO weather code"),
                    "temperature_max": schema::nullable_number("High"),
                    "temperature_min": schema::nullable_number("Low"),
                    "precipitation": schema::nullable_number("Total precipitation"),
                }), &["date", "conditions"])),
            }),
            &["location", "units", "days"],
        )),
        cache_ttl_seconds: CACHE_TTL_SECONDS,
    }
}

impl Tool for Weather {
    fn describe() -> ToolDescriptor {
        ToolDescriptor {
            name: "weather".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tools: vec![current_spec(), forecast_spec()],
            upstreams: vec![Upstream {
                name: open_meteo::UPSTREAM.to_owned(),
                endpoints: vec![
                    NamedUrl::new(
                        open_meteo::GEOCODING,
                        "https://geocoding-api.open-meteo.com",
                    ),
                    NamedUrl::new(open_meteo::FORECAST, "https://api.open-meteo.com"),
                ],
                credential: CredentialPlacement::None,
                credential_required: false,
            }],
        }
    }

    fn invoke(name: &str, args: Value, target: &ToolTarget) -> Result<Value, Failure> {
        let args = Args(&args);
        let days = match name {
            "weather_current" => None,
            "weather_forecast" => Some(args.integer("days", 1, MAX_DAYS)?.unwrap_or(7)),
            other => {
                return Err(Failure::InvalidRequest(format!(
                    "the weather plugin has no tool named {other:?}"
                )));
            }
        };
        let units = match args.one_of("units", &["metric", "imperial"])? {
            Some("imperial") => Units::Imperial,
            _ => Units::Metric,
        };
        let place = place(&args, target)?;
        match days {
            None => open_meteo::current(target, &place, units),
            Some(days) => open_meteo::forecast(target, &place, units, days),
        }
    }
}

/// Where the call is for: coordinates as given, or the geocoder's best match for `city`.
fn place(args: &Args<'_>, target: &ToolTarget) -> Result<Place, Failure> {
    let latitude = args.number("latitude", -90.0, 90.0)?;
    let longitude = args.number("longitude", -180.0, 180.0)?;
    match (args.string("city")?, latitude, longitude) {
        (Some(city), None, None) => open_meteo::geocode(target, city),
        (None, Some(latitude), Some(longitude)) => Ok(Place::at(latitude, longitude)),
        (Some(_), _, _) => Err(Failure::InvalidRequest(
            "give either \"city\" or \"latitude\" and \"longitude\", not both".to_owned(),
        )),
        (None, None, None) => Err(Failure::InvalidRequest(
            "give \"city\", or \"latitude\" and \"longitude\"".to_owned(),
        )),
        (None, _, _) => Err(Failure::InvalidRequest(
            "\"latitude\" and \"longitude\" go together: give both".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests;
