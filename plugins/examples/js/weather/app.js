// The `weather` tool plugin in JavaScript: the twin of `plugins/tools/weather` (Rust), with the
// same tools, schemas, upstream, outputs and failure classification. Current weather and daily
// forecasts from Open-Meteo (free, no key), for a place name (geocoded first) or coordinates.
//
// Open-Meteo's wire facts (`docs/wire-formats.md`, Open-Meteo): a place the geocoder does not
// know is an answer with no `results` key (the caller's `invalid-request`, naming it); errors are
// `{"error": true, "reason": "…"}`, 400 for a bad parameter, 429 for a rate limit that says its
// window only in words, without `Retry-After`.

import outbound from "aigw:plugin/outbound@0.1.0";
import { Args, answer, credential, failure, httpClient, schema, toolPlugin, toolSpec, url, utf8Decode } from "./aigw-plugin.js";

const http = httpClient(outbound);

const UPSTREAM = "open-meteo";
const GEOCODING = "geocoding";
const FORECAST = "forecast";
const API = "Open-Meteo";

/// Results stay fresh this long: Open-Meteo's current values move every 15 minutes.
const CACHE_TTL_SECONDS = 600;
/// Open-Meteo's longest forecast.
const MAX_DAYS = 16;

const CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,precipitation,weather_code,wind_speed_10m";
const DAILY = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum";

function placeProperties() {
  return {
    city: schema.text(
      'A place name, e.g. "Berlin" or "Paris, FR"; give this or latitude and longitude',
      200,
    ),
    latitude: schema.number("Latitude in degrees (with longitude, instead of city)", -90, 90),
    longitude: schema.number("Longitude in degrees (with latitude, instead of city)", -180, 180),
    units: schema.oneOf("metric (°C, km/h, mm; the default) or imperial (°F, mph, inch)", [
      "metric",
      "imperial",
    ]),
  };
}

function locationSchema() {
  return schema.object(
    {
      name: schema.nullableString("The place's name (null for bare coordinates)"),
      country: schema.nullableString("Its country"),
      latitude: schema.number("Latitude", -90, 90),
      longitude: schema.number("Longitude", -180, 180),
      timezone: schema.nullableString("Its time zone; times are local to it"),
    },
    ["name", "country", "latitude", "longitude", "timezone"],
  );
}

function unitsSchema() {
  return schema.object(
    {
      temperature: schema.string("e.g. °C"),
      wind_speed: schema.string("e.g. km/h"),
      precipitation: schema.string("e.g. mm"),
    },
    ["temperature", "wind_speed", "precipitation"],
  );
}

const currentSpec = () =>
  toolSpec({
    name: "weather_current",
    title: "Current weather",
    description:
      "The weather right now at a place (by name, or latitude and longitude): temperature, feels-like, humidity, precipitation, wind and conditions in words.",
    parameters: schema.object(placeProperties()),
    output: schema.object(
      {
        location: locationSchema(),
        units: unitsSchema(),
        current: schema.object(
          {
            time: schema.string("Local time of the observation (ISO 8601, no offset)"),
            temperature: schema.nullableNumber("Air temperature"),
            apparent_temperature: schema.nullableNumber("Feels-like temperature"),
            humidity: schema.nullableNumber("Relative humidity, %"),
            precipitation: schema.nullableNumber("Precipitation"),
            wind_speed: schema.nullableNumber("Wind speed at 10 m"),
            weather_code: schema.nullableNumber("WMO weather code"),
            conditions: schema.string("The conditions in words"),
          },
          ["time", "temperature", "conditions"],
        ),
      },
      ["location", "units", "current"],
    ),
    cacheTtlSeconds: CACHE_TTL_SECONDS,
  });

const forecastSpec = () =>
  toolSpec({
    name: "weather_forecast",
    title: "Weather forecast",
    description:
      "The daily forecast for a place (by name, or latitude and longitude) for up to 16 days: conditions in words, high and low temperature, precipitation.",
    parameters: schema.object({
      ...placeProperties(),
      days: schema.integer("How many days, today first (default 7)", 1, MAX_DAYS),
    }),
    output: schema.object(
      {
        location: locationSchema(),
        units: unitsSchema(),
        days: schema.array(
          "One entry per day, today first",
          schema.object(
            {
              date: schema.string("Local date (YYYY-MM-DD)"),
              conditions: schema.string("The conditions in words"),
              weather_code: schema.nullableNumber("WMO weather code"),
              temperature_max: schema.nullableNumber("High"),
              temperature_min: schema.nullableNumber("Low"),
              precipitation: schema.nullableNumber("Total precipitation"),
            },
            ["date", "conditions"],
          ),
        ),
      },
      ["location", "units", "days"],
    ),
    cacheTtlSeconds: CACHE_TTL_SECONDS,
  });

/// WMO weather interpretation codes (Open-Meteo's `weather_code`) in words.
const WMO = {
  0: "clear sky",
  1: "mainly clear",
  2: "partly cloudy",
  3: "overcast",
  45: "fog",
  48: "depositing rime fog",
  51: "light drizzle",
  53: "moderate drizzle",
  55: "dense drizzle",
  56: "light freezing drizzle",
  57: "dense freezing drizzle",
  61: "slight rain",
  63: "moderate rain",
  65: "heavy rain",
  66: "light freezing rain",
  67: "heavy freezing rain",
  71: "slight snowfall",
  73: "moderate snowfall",
  75: "heavy snowfall",
  77: "snow grains",
  80: "slight rain showers",
  81: "moderate rain showers",
  82: "violent rain showers",
  85: "slight snow showers",
  86: "heavy snow showers",
  95: "thunderstorm",
  96: "thunderstorm with slight hail",
  99: "thunderstorm with heavy hail",
};

export function conditions(code) {
  if (!Number.isInteger(code)) return "unknown";
  return WMO[code] ?? `unknown conditions (WMO code ${code})`;
}

/// The wait a rate-limit reason implies: "Minutely …" → 60 s, "Hourly …" → 3600 s, "Daily …
/// tomorrow" → a day.
export function waitFor(reason) {
  const lower = reason.toLowerCase();
  if (lower.includes("daily") || lower.includes("tomorrow")) return 86400;
  if (lower.includes("hourly") || lower.includes("hour")) return 3600;
  return 60;
}

/// A good answer's JSON, or its failure: Open-Meteo's `{"error": true, "reason"}` read first.
export function read(response) {
  if ((response.status >= 200 && response.status <= 299) || answer.isHtml(response)) {
    return answer.json(API, response);
  }
  let reason = null;
  try {
    const body = JSON.parse(utf8Decode(response.body));
    if (body && typeof body.reason === "string") reason = body.reason;
  } catch {
    // not JSON: classified by status below
  }
  if (reason === null) throw answer.failure(API, response);
  const message = `${API}: ${reason}`;
  if (response.status === 429) throw failure.rateLimited(message, waitFor(reason));
  // A parameter Open-Meteo refused is this plugin's request, not the caller's words:
  // `invalid-request` all the same, no other upstream would take it.
  if (response.status === 400) throw failure.invalidRequest(message);
  throw answer.failureWith(response, message);
}

function geocode(target, city) {
  const address = url(target.endpoint(GEOCODING), "/v1/search", [
    ["name", city],
    ["count", "1"],
    ["language", "en"],
    ["format", "json"],
  ]);
  const body = read(http.get(address));
  const first = Array.isArray(body.results) ? body.results[0] : undefined;
  if (!first) {
    throw failure.invalidRequest(
      `no place named ${JSON.stringify(city)} was found; try another spelling, add the country, or give latitude and longitude`,
    );
  }
  const coordinate = (field) => {
    if (typeof first[field] !== "number") {
      throw failure.badResponse(`${API}'s geocoding match for ${JSON.stringify(city)} has no ${field}`);
    }
    return first[field];
  };
  return {
    name: typeof first.name === "string" ? first.name : null,
    country: typeof first.country === "string" ? first.country : null,
    latitude: coordinate("latitude"),
    longitude: coordinate("longitude"),
  };
}

/// Rust's `f64::to_string`: `52.52`, `13` (no `.0`), so both twins send the same URLs.
const coordinateText = (value) => String(value);

function forecastParams(place, imperial) {
  const params = [
    ["latitude", coordinateText(place.latitude)],
    ["longitude", coordinateText(place.longitude)],
    ["timezone", "auto"],
  ];
  if (imperial) {
    params.push(["temperature_unit", "fahrenheit"], ["wind_speed_unit", "mph"], ["precipitation_unit", "inch"]);
  }
  return params;
}

function location(place, body) {
  return {
    name: place.name,
    country: place.country,
    latitude: place.latitude,
    longitude: place.longitude,
    timezone: typeof body.timezone === "string" ? body.timezone : null,
  };
}

/// The units the answer says it is in (`current_units` / `daily_units`), else what was asked.
function unitsOf(body, block, imperial) {
  const said = (field) => {
    const units = body[block];
    return units && typeof units[field] === "string" ? units[field] : null;
  };
  const [temperature, wind, precipitation] = imperial ? ["°F", "mp/h", "inch"] : ["°C", "km/h", "mm"];
  return {
    temperature: said("temperature_2m") ?? said("temperature_2m_max") ?? temperature,
    wind_speed: said("wind_speed_10m") ?? wind,
    precipitation: said("precipitation") ?? said("precipitation_sum") ?? precipitation,
  };
}

const valueOrNull = (value) => (value === undefined ? null : value);

function current(target, place, imperial) {
  const params = [...forecastParams(place, imperial), ["current", CURRENT]];
  const body = read(http.get(url(target.endpoint(FORECAST), "/v1/forecast", params)));
  const now = body.current;
  if (now === null || typeof now !== "object" || Array.isArray(now)) {
    throw failure.badResponse(`${API}'s forecast has no "current" block`);
  }
  return {
    location: location(place, body),
    units: unitsOf(body, "current_units", imperial),
    current: {
      time: typeof now.time === "string" ? now.time : "",
      temperature: valueOrNull(now.temperature_2m),
      apparent_temperature: valueOrNull(now.apparent_temperature),
      humidity: valueOrNull(now.relative_humidity_2m),
      precipitation: valueOrNull(now.precipitation),
      wind_speed: valueOrNull(now.wind_speed_10m),
      weather_code: valueOrNull(now.weather_code),
      conditions: conditions(now.weather_code),
    },
  };
}

function forecast(target, place, imperial, days) {
  const params = [...forecastParams(place, imperial), ["daily", DAILY], ["forecast_days", String(days)]];
  const body = read(http.get(url(target.endpoint(FORECAST), "/v1/forecast", params)));
  const daily = body.daily;
  if (daily === null || typeof daily !== "object" || Array.isArray(daily)) {
    throw failure.badResponse(`${API}'s forecast has no "daily" block`);
  }
  const column = (name) => (Array.isArray(daily[name]) ? daily[name] : []);
  const codes = column("weather_code");
  const highs = column("temperature_2m_max");
  const lows = column("temperature_2m_min");
  const rain = column("precipitation_sum");
  return {
    location: location(place, body),
    units: unitsOf(body, "daily_units", imperial),
    days: column("time").map((date, i) => ({
      date,
      conditions: conditions(codes[i]),
      weather_code: valueOrNull(codes[i]),
      temperature_max: valueOrNull(highs[i]),
      temperature_min: valueOrNull(lows[i]),
      precipitation: valueOrNull(rain[i]),
    })),
  };
}

/// Where the call is for: coordinates as given, or the geocoder's best match for `city`.
function place(args, target) {
  const latitude = args.number("latitude", -90, 90);
  const longitude = args.number("longitude", -180, 180);
  const city = args.string("city");
  if (city !== null && latitude === null && longitude === null) return geocode(target, city);
  if (city === null && latitude !== null && longitude !== null) {
    return { name: null, country: null, latitude, longitude };
  }
  if (city !== null) {
    throw failure.invalidRequest('give either "city" or "latitude" and "longitude", not both');
  }
  if (latitude === null && longitude === null) {
    throw failure.invalidRequest('give "city", or "latitude" and "longitude"');
  }
  throw failure.invalidRequest('"latitude" and "longitude" go together: give both');
}

export const tool = toolPlugin({
  describe: () => ({
    name: "weather-js",
    version: "0.1.0",
    tools: [currentSpec(), forecastSpec()],
    upstreams: [
      {
        name: UPSTREAM,
        endpoints: [
          { name: GEOCODING, url: "https://geocoding-api.open-meteo.com" },
          { name: FORECAST, url: "https://api.open-meteo.com" },
        ],
        credential: credential.none(),
        credentialRequired: false,
      },
    ],
  }),

  invoke(name, rawArgs, target) {
    const args = new Args(rawArgs);
    let days = null;
    if (name === "weather_forecast") {
      days = args.integer("days", 1, MAX_DAYS) ?? 7;
    } else if (name !== "weather_current") {
      throw failure.invalidRequest(`the weather plugin has no tool named ${JSON.stringify(name)}`);
    }
    const imperial = args.oneOf("units", ["metric", "imperial"]) === "imperial";
    const where = place(args, target);
    return days === null ? current(target, where, imperial) : forecast(target, where, imperial, days);
  },
});
