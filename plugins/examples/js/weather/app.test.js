// Unit tests of weather-js on the Rust twin's fixtures (plugins/tools/weather/tests/fixtures),
// with plain `node --test` and no wasm: the same requests, results and failures as
// plugins/tools/weather/src/tests.rs. A module hook stands in for the host's `outbound` import
// and, in this repository (where the SDK is not vendored beside app.js), finds `./aigw-plugin.js`
// in sdk/js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { register } from "node:module";

const sdk = new URL("../../../../sdk/js/aigw-plugin.js", import.meta.url).href;
const fakeOutbound = "export default { send: (request) => globalThis.upstream(request) };";
register(
  "data:text/javascript," +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier.startsWith("aigw:plugin/outbound@")) {
          return { url: "data:text/javascript," + encodeURIComponent(${JSON.stringify(fakeOutbound)}), shortCircuit: true };
        }
        try {
          return await next(specifier, context);
        } catch (error) {
          if (specifier === "./aigw-plugin.js" && error.code === "ERR_MODULE_NOT_FOUND") {
            return { url: ${JSON.stringify(sdk)}, shortCircuit: true };
          }
          throw error;
        }
      }`),
);
const { tool, waitFor, conditions } = await import("./app.js");
const { utf8Decode, utf8Encode, failure } = await import(sdk);

const fixture = (name) =>
  readFileSync(new URL(`../../../tools/weather/tests/fixtures/${name}.json`, import.meta.url), "utf8");
const target = {
  upstream: "open-meteo",
  endpoints: [
    { name: "geocoding", url: "http://geo.test" },
    { name: "forecast", url: "http://forecast.test/" },
  ],
};

/// Runs one call with the upstream answering by path (`{ "/v1/search": [status, body] }`, or a
/// failure to throw as the host would); the result or the thrown failure, and the requests sent.
function call(answers, name, args) {
  const sent = [];
  globalThis.upstream = (request) => {
    sent.push(request);
    const path = new URL(request.url).pathname;
    const answer = answers[path];
    if (answer === undefined) throw Object.assign(new Error("no answer"), { payload: failure.unavailable(`no answer for ${path}`) });
    if (answer.tag) throw Object.assign(new Error("refused"), { payload: answer });
    const [status, body, headers = [{ name: "content-type", value: "application/json" }]] = answer;
    return { status, headers, body: utf8Encode(body) };
  };
  try {
    return { result: JSON.parse(tool.invoke(name, JSON.stringify(args), target)), sent };
  } catch (thrown) {
    return { failure: thrown, sent };
  }
}

test("describes two tools over one keyless upstream", () => {
  const descriptor = tool.describe();
  assert.equal(descriptor.name, "weather-js");
  assert.deepEqual(descriptor.tools.map((t) => t.name), ["weather_current", "weather_forecast"]);
  for (const spec of descriptor.tools) {
    assert.equal(JSON.parse(spec.parametersSchema).additionalProperties, false);
    assert.equal(spec.cacheTtlSeconds, 600);
    assert.notEqual(spec.outputSchema, null);
  }
  assert.equal(JSON.parse(descriptor.tools[1].parametersSchema).properties.days.maximum, 16);
  assert.deepEqual(descriptor.upstreams, [
    {
      name: "open-meteo",
      endpoints: [
        { name: "geocoding", url: "https://geocoding-api.open-meteo.com" },
        { name: "forecast", url: "https://api.open-meteo.com" },
      ],
      credential: { tag: "none" },
      credentialRequired: false,
    },
  ]);
});

test("current weather geocodes, then reads the forecast", () => {
  const { result, sent } = call(
    { "/v1/search": [200, fixture("geocoding_berlin")], "/v1/forecast": [200, fixture("forecast_current")] },
    "weather_current",
    { city: "Berlin" },
  );
  assert.equal(sent.length, 2);
  assert.equal(sent[0].url, "http://geo.test/v1/search?name=Berlin&count=1&language=en&format=json");
  assert.ok(
    sent[1].url.startsWith("http://forecast.test/v1/forecast?latitude=52.52437&longitude=13.41053&timezone=auto&current="),
    sent[1].url,
  );
  assert.deepEqual(result.location, { name: "Berlin", country: "Germany", latitude: 52.52437, longitude: 13.41053, timezone: "Europe/Berlin" });
  assert.equal(result.current.temperature, 21.4);
  assert.equal(result.current.apparent_temperature, 20.1);
  assert.equal(result.current.humidity, 48);
  assert.equal(result.current.wind_speed, 11.2);
  assert.equal(result.current.conditions, "partly cloudy");
  assert.equal(result.current.time, "2025-06-01T14:15");
  assert.deepEqual(result.units, { temperature: "°C", wind_speed: "km/h", precipitation: "mm" });
});

test("coordinates skip the geocoder; imperial asks for imperial units", () => {
  const { result, sent } = call({ "/v1/forecast": [200, fixture("forecast_current")] }, "weather_current", {
    latitude: 48.85,
    longitude: 2.35,
    units: "imperial",
  });
  assert.equal(sent.length, 1);
  assert.ok(sent[0].url.includes("latitude=48.85&longitude=2.35"), sent[0].url);
  assert.ok(sent[0].url.includes("temperature_unit=fahrenheit&wind_speed_unit=mph&precipitation_unit=inch"), sent[0].url);
  assert.equal(result.location.name, null);
  assert.equal(result.location.latitude, 48.85);
});

test("an unknown place (no results key) is the caller's mistake, and nothing more is asked", () => {
  const { failure: failed, sent } = call({ "/v1/search": [200, fixture("geocoding_none")] }, "weather_current", { city: "Nowhere" });
  assert.equal(failed.tag, "invalid-request");
  assert.ok(failed.val.includes('"Nowhere"'), failed.val);
  assert.equal(sent.length, 1);
});

test("city names are percent-encoded", () => {
  const { sent } = call({ "/v1/search": [200, fixture("geocoding_none")] }, "weather_current", { city: "São Paulo&count=100" });
  assert.ok(sent[0].url.includes("name=S%C3%A3o%20Paulo%26count%3D100&count=1"), sent[0].url);
});

test("the forecast lists days with conditions in words", () => {
  const { result, sent } = call(
    { "/v1/search": [200, fixture("geocoding_berlin")], "/v1/forecast": [200, fixture("forecast_daily")] },
    "weather_forecast",
    { city: "Berlin", days: 2 },
  );
  assert.ok(sent[1].url.includes("&daily=weather_code%2Ctemperature_2m_max"), sent[1].url);
  assert.ok(sent[1].url.endsWith("&forecast_days=2"), sent[1].url);
  assert.equal(result.days.length, 2);
  assert.deepEqual(result.days[0], {
    date: "2025-06-01",
    conditions: "overcast",
    weather_code: 3,
    temperature_max: 23.1,
    temperature_min: 12.4,
    precipitation: 0,
  });
  assert.equal(result.days[1].conditions, "slight rain");
  assert.equal(result.days[1].precipitation, 4.2);
});

test("the forecast defaults to seven days and refuses seventeen", () => {
  const { sent } = call({ "/v1/forecast": [200, fixture("forecast_daily")] }, "weather_forecast", { latitude: 1.0, longitude: 2.0 });
  assert.ok(sent[0].url.endsWith("&forecast_days=7"), sent[0].url);
  const refused = call({}, "weather_forecast", { city: "Berlin", days: 17 });
  assert.equal(refused.failure.tag, "invalid-request");
  assert.equal(refused.sent.length, 0);
});

test("a place needs a city or both coordinates", () => {
  for (const args of [{}, { latitude: 1.0 }, { city: "Berlin", latitude: 1.0, longitude: 2.0 }]) {
    const { failure: failed, sent } = call({}, "weather_current", args);
    assert.equal(failed.tag, "invalid-request", JSON.stringify(args));
    assert.equal(sent.length, 0);
  }
});

test("rate limits wait for the window their reason names", () => {
  const minutely = call({ "/v1/search": [429, fixture("error_429_minutely")] }, "weather_current", { city: "Berlin" });
  assert.equal(minutely.failure.tag, "rate-limited");
  assert.equal(minutely.failure.val.retryAfterSeconds, 60);
  assert.ok(minutely.failure.val.message.includes("Minutely API request limit exceeded"));
  const daily = call(
    { "/v1/search": [200, fixture("geocoding_berlin")], "/v1/forecast": [429, fixture("error_429_daily")] },
    "weather_current",
    { city: "Berlin" },
  );
  assert.equal(daily.failure.val.retryAfterSeconds, 86400);
  assert.equal(waitFor("Hourly API request limit exceeded. Please try again in the next hour."), 3600);
});

test("a refused parameter is an invalid request with the reason", () => {
  const { failure: failed } = call({ "/v1/forecast": [400, fixture("error_400")] }, "weather_current", { latitude: 1.0, longitude: 2.0 });
  assert.equal(failed.tag, "invalid-request");
  assert.ok(failed.val.includes("tempeture_2m"), failed.val);
});

test("server errors, HTML pages and failed sends are unavailable", () => {
  const html = call(
    { "/v1/search": [502, "<html><h1>502 Bad Gateway</h1></html>", [{ name: "content-type", value: "text/html" }]] },
    "weather_current",
    { city: "Berlin" },
  );
  assert.equal(html.failure.tag, "unavailable");
  const down = call({ "/v1/search": [503, '{"error":true,"reason":"Service temporarily unavailable"}'] }, "weather_current", { city: "Berlin" });
  assert.equal(down.failure.tag, "unavailable");
  const timedOut = call({ "/v1/search": failure.unavailable("timed out") }, "weather_current", { city: "Berlin" });
  assert.deepEqual(timedOut.failure, failure.unavailable("timed out"));
});

test("WMO codes read as words; an unknown tool is refused", () => {
  assert.equal(conditions(0), "clear sky");
  assert.equal(conditions(99), "thunderstorm with heavy hail");
  assert.equal(conditions(42), "unknown conditions (WMO code 42)");
  assert.equal(call({}, "weather_tomorrow", {}).failure.tag, "invalid-request");
  assert.equal(utf8Decode(utf8Encode("°C")), "°C");
});
