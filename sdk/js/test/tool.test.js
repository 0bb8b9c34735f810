// Tool helpers: schemas, argument readers, URL building, endpoints, `http` over a fake outbound
// and the `tool` export's wrapping of arguments, results and failures.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Args, encodeQuery, failure, guard, httpClient, schema, toolPlugin, toolSpec, ToolTarget, url, utf8Decode } from "../aigw-plugin.js";

test("schema objects are closed and list what is required", () => {
  const closed = schema.object({ city: schema.string("A city") }, ["city"]);
  assert.deepEqual(closed, { type: "object", properties: { city: { type: "string", description: "A city" } }, required: ["city"], additionalProperties: false });
  const open = schema.object({ limit: schema.integer("How many", 1, 20) });
  assert.equal(open.required, undefined);
  assert.equal(open.properties.limit.maximum, 20);
  const spec = toolSpec({ name: "t_x", title: "X", description: "d", parameters: closed, output: null, cacheTtlSeconds: 5 });
  assert.deepEqual(JSON.parse(spec.parametersSchema), closed);
  assert.equal(spec.outputSchema, null);
  assert.equal(spec.cacheTtlSeconds, 5);
});

test("arguments: wrong types and ranges name the field", () => {
  const args = new Args({ city: " Berlin ", blank: "  ", days: 20, n: "3", unit: "kelvin", lat: 91 });
  assert.equal(args.requiredString("city"), "Berlin");
  assert.equal(args.string("missing"), null);
  assert.throws(() => args.string("blank"), (t) => t.tag === "invalid-request" && t.val.includes('"blank"'));
  assert.throws(() => args.integer("days", 1, 16), (t) => t.val.includes("from 1 to 16"));
  assert.throws(() => args.integer("n", 1, 5), (t) => t.tag === "invalid-request");
  assert.equal(args.integer("missing", 1, 5), null);
  assert.throws(() => args.oneOf("unit", ["celsius", "fahrenheit"]), (t) => t.val.includes("celsius, fahrenheit"));
  assert.throws(() => args.number("lat", -90, 90), (t) => t.val.includes("from -90 to 90"));
  assert.throws(() => args.requiredString("query"), (t) => assert.deepEqual(t, failure.invalidRequest('argument "query" is required')) ?? true);
});

test("URLs: values cannot add parameters or change the path", () => {
  assert.equal(encodeQuery("São Paulo"), "S%C3%A3o%20Paulo");
  assert.equal(encodeQuery("a&b=c/d?e#f+g"), "a%26b%3Dc%2Fd%3Fe%23f%2Bg");
  assert.equal(encodeQuery("AZaz09-._~"), "AZaz09-._~");
  assert.equal(url("http://127.0.0.1:9/", "/v1/search", { name: "New York", count: 1, language: null }), "http://127.0.0.1:9/v1/search?name=New%20York&count=1");
  assert.equal(url("http://h/base?x=1", "", [["y", "2"]]), "http://h/base?x=1&y=2");
});

test("an endpoint is found by name without its trailing slash; a missing one is unavailable", () => {
  const target = new ToolTarget({ upstream: "open-meteo", endpoints: [{ name: "geocoding", url: "http://127.0.0.1:9/geo/" }] });
  assert.equal(target.endpoint("geocoding"), "http://127.0.0.1:9/geo");
  assert.throws(() => target.endpoint("archive"), (t) => t.tag === "unavailable" && t.val.includes("archive"));
});

test("http: requests ask for JSON unless told otherwise; a refused send is its failure", () => {
  const sent = [];
  const http = httpClient({
    send(request) {
      sent.push(request);
      if (request.url.includes("refused")) throw failure.unauthorized("origin not granted");
      return { status: 200, headers: [], body: new Uint8Array([0x7b, 0x7d]) };
    },
  });
  http.get("http://x/a", { "x-a": "1" });
  assert.deepEqual(sent[0].headers, [{ name: "x-a", value: "1" }, { name: "accept", value: "application/json" }]);
  http.get("http://x/b", { Accept: "text/csv" });
  assert.deepEqual(sent[1].headers, [{ name: "Accept", value: "text/csv" }]);
  http.postJson("http://x/c", {}, { q: "é" });
  assert.deepEqual(JSON.parse(utf8Decode(sent[2].body)), { q: "é" });
  assert.ok(sent[2].headers.some((h) => h.name === "content-type" && h.value === "application/json"));
  assert.throws(() => http.get("http://x/refused"), (t) => assert.deepEqual(t, failure.unauthorized("origin not granted")) ?? true);
  const broken = httpClient({ send() { throw new Error("no host"); } });
  assert.throws(() => broken.get("http://x/"), (t) => t.tag === "unavailable" && t.val.includes("no host"));
});

test("the tool export parses arguments, serialises results and keeps failures", () => {
  const tool = toolPlugin({
    describe: () => ({ name: "t", version: "0.1.0", tools: [], upstreams: [] }),
    invoke(name, args, target) {
      if (name === "bug") return args.missing.field;
      if (name === "fail") throw failure.invalidRequest("no");
      return { echoed: args, upstream: target.upstream, url: target.endpoint("base") };
    },
  });
  const target = { upstream: "u", endpoints: [{ name: "base", url: "http://h/" }] };
  assert.deepEqual(JSON.parse(tool.invoke("echo", '{"a":1}', target)), { echoed: { a: 1 }, upstream: "u", url: "http://h" });
  assert.throws(() => tool.invoke("fail", "{}", target), (t) => assert.deepEqual(t, failure.invalidRequest("no")) ?? true);
  assert.throws(() => tool.invoke("echo", "{nope", target), (t) => t.tag === "invalid-request");
  // A bug is not dressed up as a failure: it stays an exception (the host reports a plugin fault).
  assert.throws(() => tool.invoke("bug", "{}", target), (t) => t instanceof Error && t.message.startsWith("plugin bug: TypeError"));
  assert.equal(guard(() => 5), 5);
});
