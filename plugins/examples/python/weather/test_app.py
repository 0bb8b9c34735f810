"""The weather plugin's logic under plain CPython (no wasm), on the Rust twin's recorded
Open-Meteo answers (plugins/tools/weather/tests/fixtures): `python -m unittest` here, with
sdk/python on PYTHONPATH (`cargo xtask test` runs it)."""

import pathlib
import unittest

from aigw_plugin import Failure, NamedUrl, ToolTarget
from aigw_plugin.testing import Upstream, response

from app import Weather
import open_meteo

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "tools" / "weather" / "tests" / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


TARGET = ToolTarget(
    "open-meteo",
    [NamedUrl("geocoding", "http://geo.test"), NamedUrl("forecast", "http://forecast.test/")],
)


def call(upstream, tool, args):
    return upstream.run(lambda: Weather().invoke(tool, args, TARGET))


class WeatherTest(unittest.TestCase):
    def test_describes_two_tools_over_one_keyless_upstream(self):
        descriptor = Weather().describe()
        self.assertEqual([t.name for t in descriptor.tools], ["weather_current", "weather_forecast"])
        for spec in descriptor.tools:
            self.assertFalse(spec.parameters["additionalProperties"])
            self.assertEqual(spec.cache_ttl_seconds, 600)
            self.assertIsNotNone(spec.output)
        self.assertEqual(descriptor.tools[1].parameters["properties"]["days"]["maximum"], 16)
        upstream = descriptor.upstreams[0]
        self.assertEqual((upstream.name, upstream.credential.kind, upstream.credential_required), ("open-meteo", "none", False))

    def test_current_weather_geocodes_then_reads_the_forecast(self):
        upstream = Upstream().json("/v1/search", 200, fixture("geocoding_berlin.json")).json(
            "/v1/forecast", 200, fixture("forecast_current.json")
        )
        result, sent = call(upstream, "weather_current", {"city": "Berlin"})
        self.assertEqual(len(sent), 2)
        self.assertEqual(sent[0].url, "http://geo.test/v1/search?name=Berlin&count=1&language=en&format=json")
        self.assertTrue(
            sent[1].url.startswith(
                "http://forecast.test/v1/forecast?latitude=52.52437&longitude=13.41053&timezone=auto&current="
            ),
            sent[1].url,
        )
        self.assertEqual(result["location"]["name"], "Berlin")
        self.assertEqual(result["location"]["timezone"], "Europe/Berlin")
        self.assertEqual(result["current"]["temperature"], 21.4)
        self.assertEqual(result["current"]["humidity"], 48)
        self.assertEqual(result["current"]["conditions"], "partly cloudy")
        self.assertEqual(result["units"], {"temperature": "°C", "wind_speed": "km/h", "precipitation": "mm"})

    def test_coordinates_skip_the_geocoder_and_imperial_asks_for_imperial_units(self):
        upstream = Upstream().json("/v1/forecast", 200, fixture("forecast_current.json"))
        result, sent = call(upstream, "weather_current", {"latitude": 48, "longitude": 2.35, "units": "imperial"})
        self.assertEqual(len(sent), 1)
        self.assertIn("latitude=48&longitude=2.35", sent[0].url)
        self.assertIn("temperature_unit=fahrenheit&wind_speed_unit=mph&precipitation_unit=inch", sent[0].url)
        self.assertIsNone(result["location"]["name"])
        self.assertEqual(result["location"]["latitude"], 48.0)

    def test_an_unknown_place_is_the_callers_mistake(self):
        result, sent = call(Upstream().json("/v1/search", 200, fixture("geocoding_none.json")), "weather_current", {"city": "Nowhere"})
        self.assertEqual(result.kind, "invalid-request")
        self.assertIn('"Nowhere"', result.message)
        self.assertEqual(len(sent), 1)

    def test_city_names_are_percent_encoded(self):
        _, sent = call(Upstream().json("/v1/search", 200, fixture("geocoding_none.json")), "weather_current", {"city": "São Paulo&count=100"})
        self.assertIn("name=S%C3%A3o%20Paulo%26count%3D100&count=1", sent[0].url)

    def test_the_forecast_lists_days_with_conditions_in_words(self):
        upstream = Upstream().json("/v1/search", 200, fixture("geocoding_berlin.json")).json(
            "/v1/forecast", 200, fixture("forecast_daily.json")
        )
        result, sent = call(upstream, "weather_forecast", {"city": "Berlin", "days": 2})
        self.assertTrue(sent[1].url.endswith("&forecast_days=2"), sent[1].url)
        self.assertEqual(
            result["days"][0],
            {"date": "2025-06-01", "conditions": "overcast", "weather_code": 3, "temperature_max": 23.1, "temperature_min": 12.4, "precipitation": 0.0},
        )
        self.assertEqual(result["days"][1]["conditions"], "slight rain")

    def test_seven_days_by_default_and_seventeen_refused(self):
        _, sent = call(Upstream().json("/v1/forecast", 200, fixture("forecast_daily.json")), "weather_forecast", {"latitude": 1.0, "longitude": 2.0})
        self.assertTrue(sent[0].url.endswith("&forecast_days=7"), sent[0].url)
        result, sent = call(Upstream(), "weather_forecast", {"city": "Berlin", "days": 17})
        self.assertEqual(result.kind, "invalid-request")
        self.assertEqual(sent, [])

    def test_a_place_needs_a_city_or_both_coordinates(self):
        for args in ({}, {"latitude": 1.0}, {"city": "Berlin", "latitude": 1.0, "longitude": 2.0}):
            result, sent = call(Upstream(), "weather_current", args)
            self.assertIsInstance(result, Failure, args)
            self.assertEqual(result.kind, "invalid-request", args)
            self.assertEqual(sent, [])

    def test_rate_limits_wait_for_the_window_their_reason_names(self):
        result, _ = call(Upstream().json("/v1/search", 429, fixture("error_429_minutely.json")), "weather_current", {"city": "Berlin"})
        self.assertEqual((result.kind, result.retry_after_seconds), ("rate-limited", 60))
        self.assertIn("Minutely API request limit exceeded", result.message)
        upstream = Upstream().json("/v1/search", 200, fixture("geocoding_berlin.json")).json(
            "/v1/forecast", 429, fixture("error_429_daily.json")
        )
        result, _ = call(upstream, "weather_current", {"city": "Berlin"})
        self.assertEqual(result.retry_after_seconds, 86_400)
        self.assertEqual(open_meteo.wait_for("Hourly API request limit exceeded. Please try again in the next hour."), 3_600)

    def test_a_refused_parameter_is_an_invalid_request_with_the_reason(self):
        result, _ = call(Upstream().json("/v1/forecast", 400, fixture("error_400.json")), "weather_current", {"latitude": 1.0, "longitude": 2.0})
        self.assertEqual(result.kind, "invalid-request")
        self.assertIn("tempeture_2m", result.message)

    def test_server_errors_and_html_pages_are_unavailable(self):
        page = response(502, [("content-type", "text/html")], "<html><h1>502 Bad Gateway</h1></html>")
        result, _ = call(Upstream().answer("/v1/search", page), "weather_current", {"city": "Berlin"})
        self.assertEqual(result.kind, "unavailable")
        result, _ = call(Upstream().json("/v1/search", 503, '{"error":true,"reason":"Service temporarily unavailable"}'), "weather_current", {"city": "Berlin"})
        self.assertEqual(result, Failure.unavailable("Open-Meteo: Service temporarily unavailable"))


if __name__ == "__main__":
    unittest.main()
