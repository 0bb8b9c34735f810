"""The weather tool plugin in Python: current weather and daily forecasts from Open-Meteo (free,
no key), for a place name (geocoded first) or coordinates. The twin of plugins/tools/weather
(Rust): the same tools, schemas, upstream, outputs and failure classification.

Tools: ``weather_current {city | latitude + longitude, units?}`` and ``weather_forecast {city |
latitude + longitude, days? (1-16), units?}``. A place the geocoder does not know is the caller's
``invalid-request`` naming it; Open-Meteo's rate limits say their window only in words.
"""

from typing import Any, Dict, Optional

from aigw_plugin import Args, Failure, NamedUrl, ToolPlugin, ToolTarget, Upstream, export_tool, tool
from aigw_plugin import schema

import open_meteo

#: Results stay fresh this long: Open-Meteo's current values move every 15 minutes.
CACHE_TTL_SECONDS = 600
#: Open-Meteo's longest forecast.
MAX_DAYS = 16


def place_properties() -> Dict[str, Any]:
    return {
        "city": schema.text(
            'A place name, e.g. "Berlin" or "Paris, FR"; give this or latitude and longitude', 200
        ),
        "latitude": schema.number("Latitude in degrees (with longitude, instead of city)", -90, 90),
        "longitude": schema.number(
            "Longitude in degrees (with latitude, instead of city)", -180, 180
        ),
        "units": schema.one_of(
            "metric (°C, km/h, mm; the default) or imperial (°F, mph, inch)", ["metric", "imperial"]
        ),
    }


def location_schema() -> Dict[str, Any]:
    return schema.object(
        {
            "name": schema.nullable_string("The place's name (null for bare coordinates)"),
            "country": schema.nullable_string("Its country"),
            "latitude": schema.number("Latitude", -90, 90),
            "longitude": schema.number("Longitude", -180, 180),
            "timezone": schema.nullable_string("Its time zone; times are local to it"),
        },
        ["name", "country", "latitude", "longitude", "timezone"],
    )


def units_schema() -> Dict[str, Any]:
    return schema.object(
        {
            "temperature": schema.string("e.g. °C"),
            "wind_speed": schema.string("e.g. km/h"),
            "precipitation": schema.string("e.g. mm"),
        },
        ["temperature", "wind_speed", "precipitation"],
    )


CURRENT_OUTPUT = schema.object(
    {
        "location": location_schema(),
        "units": units_schema(),
        "current": schema.object(
            {
                "time": schema.string("Local time of the observation (ISO 8601, no offset)"),
                "temperature": schema.nullable_number("Air temperature"),
                "apparent_temperature": schema.nullable_number("Feels-like temperature"),
                "humidity": schema.nullable_number("Relative humidity, %"),
                "precipitation": schema.nullable_number("Precipitation"),
                "wind_speed": schema.nullable_number("Wind speed at 10 m"),
                "weather_code": schema.nullable_number("WMO weather code"),
                "conditions": schema.string("The conditions in words"),
            },
            ["time", "temperature", "conditions"],
        ),
    },
    ["location", "units", "current"],
)

FORECAST_OUTPUT = schema.object(
    {
        "location": location_schema(),
        "units": units_schema(),
        "days": schema.array(
            "One entry per day, today first",
            schema.object(
                {
                    "date": schema.string("Local date (YYYY-MM-DD)"),
                    "conditions": schema.string("The conditions in words"),
                    "weather_code": schema.nullable_number("WMO weather code"),
                    "temperature_max": schema.nullable_number("High"),
                    "temperature_min": schema.nullable_number("Low"),
                    "precipitation": schema.nullable_number("Total precipitation"),
                },
                ["date", "conditions"],
            ),
        ),
    },
    ["location", "units", "days"],
)


class Weather(ToolPlugin):
    name = "weather-python"
    version = "0.1.0"
    upstreams = [
        Upstream(
            open_meteo.UPSTREAM,
            [
                NamedUrl(open_meteo.GEOCODING, "https://geocoding-api.open-meteo.com"),
                NamedUrl(open_meteo.FORECAST, "https://api.open-meteo.com"),
            ],
        )
    ]

    @tool(
        name="weather_current",
        title="Current weather",
        description="The weather right now at a place (by name, or latitude and longitude): "
        "temperature, feels-like, humidity, precipitation, wind and conditions in words.",
        parameters=schema.object(place_properties()),
        output=CURRENT_OUTPUT,
        cache_ttl_seconds=CACHE_TTL_SECONDS,
    )
    def current(self, args: Args, target: ToolTarget) -> Dict[str, Any]:
        units = units_of(args)
        return open_meteo.current(target, place(args, target), units)

    @tool(
        name="weather_forecast",
        title="Weather forecast",
        description="The daily forecast for a place (by name, or latitude and longitude) for up "
        "to 16 days: conditions in words, high and low temperature, precipitation.",
        parameters=schema.object(
            {**place_properties(), "days": schema.integer("How many days, today first (default 7)", 1, MAX_DAYS)}
        ),
        output=FORECAST_OUTPUT,
        cache_ttl_seconds=CACHE_TTL_SECONDS,
    )
    def forecast(self, args: Args, target: ToolTarget) -> Dict[str, Any]:
        days = args.integer("days", 1, MAX_DAYS) or 7
        units = units_of(args)
        return open_meteo.forecast(target, place(args, target), units, days)


def units_of(args: Args) -> str:
    return "imperial" if args.one_of("units", ["metric", "imperial"]) == "imperial" else "metric"


def place(args: Args, target: ToolTarget) -> open_meteo.Place:
    """Where the call is for: coordinates as given, or the geocoder's best match for ``city``."""
    latitude: Optional[float] = args.number("latitude", -90, 90)
    longitude: Optional[float] = args.number("longitude", -180, 180)
    city = args.string("city")
    if city is not None and latitude is None and longitude is None:
        return open_meteo.geocode(target, city)
    if city is None and latitude is not None and longitude is not None:
        return open_meteo.Place(None, None, latitude, longitude)
    if city is not None:
        raise Failure.invalid_request('give either "city" or "latitude" and "longitude", not both')
    if latitude is None and longitude is None:
        raise Failure.invalid_request('give "city", or "latitude" and "longitude"')
    raise Failure.invalid_request('"latitude" and "longitude" go together: give both')


Tool = export_tool(Weather)
