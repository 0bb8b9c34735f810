"""Open-Meteo's wire format (``docs/wire-formats.md``, Open-Meteo): the geocoding search, the
forecast, and their errors.

- A place the geocoder does not know is ``{"generationtime_ms": …}`` with **no ``results``
  key**: the caller's ``invalid-request``, naming the place.
- Errors are ``{"error": true, "reason": "…"}``: 400 for a bad parameter, 429 for a rate limit
  that says its window only in words ("Minutely …", "Hourly …", "Daily …"), **no
  ``Retry-After``**: the wait is read from the reason.
- ``time`` strings are local to the answer's ``timezone``, without offset (``timezone=auto``).
"""

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from aigw_plugin import Failure, HttpResponse, ToolTarget, answer, http
from aigw_plugin.query import Url, number

import wmo

UPSTREAM = "open-meteo"
GEOCODING = "geocoding"
FORECAST = "forecast"
API = "Open-Meteo"
CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,precipitation,weather_code,wind_speed_10m"
DAILY = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum"


@dataclass
class Place:
    """A place: the geocoder's match, or bare coordinates."""

    name: Optional[str]
    country: Optional[str]
    latitude: float
    longitude: float


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _number(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def geocode(target: ToolTarget, city: str) -> Place:
    """The geocoder's best match for ``city``."""
    url = (
        Url(target.endpoint(GEOCODING), "/v1/search")
        .param("name", city)
        .param("count", "1")
        .param("language", "en")
        .param("format", "json")
        .build()
    )
    body = read(http.get(url))
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results:
        raise Failure.invalid_request(
            f"no place named {_quote(city)} was found; try another spelling, add the country, "
            "or give latitude and longitude"
        )
    first = results[0] if isinstance(results[0], dict) else {}

    def coordinate(field: str) -> float:
        value = _number(first.get(field))
        if value is None:
            raise Failure.bad_response(f"{API}'s geocoding match for {_quote(city)} has no {field}")
        return value

    name = first.get("name")
    country = first.get("country")
    return Place(
        name if isinstance(name, str) else None,
        country if isinstance(country, str) else None,
        coordinate("latitude"),
        coordinate("longitude"),
    )


def forecast_url(target: ToolTarget, place: Place, units: str) -> Url:
    url = (
        Url(target.endpoint(FORECAST), "/v1/forecast")
        .param("latitude", number(place.latitude))
        .param("longitude", number(place.longitude))
        .param("timezone", "auto")
    )
    if units == "imperial":
        url = (
            url.param("temperature_unit", "fahrenheit")
            .param("wind_speed_unit", "mph")
            .param("precipitation_unit", "inch")
        )
    return url


def current(target: ToolTarget, place: Place, units: str) -> Dict[str, Any]:
    """The weather now at ``place``."""
    url = forecast_url(target, place, units).param("current", CURRENT).build()
    body = read(http.get(url))
    block = body.get("current") if isinstance(body, dict) else None
    if not isinstance(block, dict):
        raise Failure.bad_response(f'{API}\'s forecast has no "current" block')
    code = block.get("weather_code")
    time = block.get("time")
    return {
        "location": location(place, body),
        "units": units_of(body, "current_units", units),
        "current": {
            "time": time if isinstance(time, str) else "",
            "temperature": block.get("temperature_2m"),
            "apparent_temperature": block.get("apparent_temperature"),
            "humidity": block.get("relative_humidity_2m"),
            "precipitation": block.get("precipitation"),
            "wind_speed": block.get("wind_speed_10m"),
            "weather_code": block.get("weather_code"),
            "conditions": wmo.conditions(code) if _is_int(code) else "unknown",
        },
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def forecast(target: ToolTarget, place: Place, units: str, days: int) -> Dict[str, Any]:
    """The daily forecast for ``days`` days at ``place``."""
    url = (
        forecast_url(target, place, units)
        .param("daily", DAILY)
        .param("forecast_days", str(days))
        .build()
    )
    body = read(http.get(url))
    daily = body.get("daily") if isinstance(body, dict) else None
    if not isinstance(daily, dict):
        raise Failure.bad_response(f'{API}\'s forecast has no "daily" block')

    def column(name: str) -> list:
        values = daily.get(name)
        return values if isinstance(values, list) else []

    def at(values: list, i: int) -> Any:
        return values[i] if i < len(values) else None

    codes = column("weather_code")
    highs = column("temperature_2m_max")
    lows = column("temperature_2m_min")
    rain = column("precipitation_sum")
    out = []
    for i, date in enumerate(column("time")):
        code = at(codes, i)
        out.append(
            {
                "date": date,
                "conditions": wmo.conditions(code) if _is_int(code) else "unknown",
                "weather_code": code,
                "temperature_max": at(highs, i),
                "temperature_min": at(lows, i),
                "precipitation": at(rain, i),
            }
        )
    return {
        "location": location(place, body),
        "units": units_of(body, "daily_units", units),
        "days": out,
    }


def location(place: Place, body: Dict[str, Any]) -> Dict[str, Any]:
    timezone = body.get("timezone")
    return {
        "name": place.name,
        "country": place.country,
        "latitude": place.latitude,
        "longitude": place.longitude,
        "timezone": timezone if isinstance(timezone, str) else None,
    }


def units_of(body: Dict[str, Any], block: str, asked: str) -> Dict[str, str]:
    """The units the answer says it is in (``current_units`` / ``daily_units``), else what was
    asked."""
    said_block = body.get(block)
    said_block = said_block if isinstance(said_block, dict) else {}

    def said(field: str) -> Optional[str]:
        value = said_block.get(field)
        return value if isinstance(value, str) else None

    temperature, wind, precipitation = (
        ("°C", "km/h", "mm") if asked == "metric" else ("°F", "mp/h", "inch")
    )
    return {
        "temperature": said("temperature_2m") or said("temperature_2m_max") or temperature,
        "wind_speed": said("wind_speed_10m") or wind,
        "precipitation": said("precipitation") or said("precipitation_sum") or precipitation,
    }


def read(response: HttpResponse) -> Any:
    """A good answer's JSON, or its failure raised: ``{"error": true, "reason"}`` read first."""
    if 200 <= response.status < 300 or answer.is_html(response):
        return answer.json_body(API, response)
    try:
        body = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise answer.failure(API, response)
    message = f"{API}: {reason}"
    if response.status == 429:
        raise Failure.rate_limited(message, wait_for(reason))
    if response.status == 400:
        # A parameter Open-Meteo refused is this plugin's request, not the caller's words:
        # `invalid-request` all the same, no other upstream would take it.
        raise Failure.invalid_request(message)
    raise answer.failure_with(response, message)


def wait_for(reason: str) -> int:
    """The wait a rate-limit reason implies: minutely → 60 s, hourly → 3600 s, daily → a day."""
    reason = reason.lower()
    if "daily" in reason or "tomorrow" in reason:
        return 86_400
    if "hourly" in reason or "hour" in reason:
        return 3_600
    return 60
