// Unit tests of the {{name}} tool, run with plain `node --test` (no wasm, no packages). The WIT
// import `aigw:plugin/outbound@0.1.0` exists only inside a component, so a module hook stands
// in for it here: each test says what the upstream answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { register } from "node:module";
import { utf8Encode } from "./aigw-plugin.js";

const FAKE_OUTBOUND = "export default { send: (request) => globalThis.upstream(request) };";
register(
  "data:text/javascript," +
    encodeURIComponent(`
      export async function resolve(specifier, context, next) {
        if (specifier.startsWith("aigw:plugin/outbound@")) {
          return { url: "data:text/javascript," + encodeURIComponent(${JSON.stringify(FAKE_OUTBOUND)}), shortCircuit: true };
        }
        return next(specifier, context);
      }`),
);
const { tool } = await import("./app.js");

const target = { upstream: "{{name}}", endpoints: [{ name: "base", url: "http://127.0.0.1:9/" }] };
const answer = (status, body, headers = []) => () => ({ status, headers, body: utf8Encode(body) });

test("describes one tool with closed schemas", () => {
  const descriptor = tool.describe();
  assert.equal(descriptor.name, "{{name}}");
  const parameters = JSON.parse(descriptor.tools[0].parametersSchema);
  assert.equal(parameters.additionalProperties, false);
});

test("a lookup asks the upstream's endpoint, the query encoded, and returns its answer", () => {
  const sent = [];
  globalThis.upstream = (request) => {
    sent.push(request);
    return answer(200, '{"answer":"forty-two"}')();
  };
  const result = JSON.parse(tool.invoke("{{crate}}_lookup", '{"query":"life & all"}', target));
  assert.deepEqual(result, { query: "life & all", answer: "forty-two" });
  assert.equal(sent[0].url, "http://127.0.0.1:9/v1/lookup?q=life%20%26%20all");
});

test("upstream failures are classified so the host can fail over", () => {
  globalThis.upstream = answer(429, '{"error":"slow down"}', [{ name: "retry-after", value: "30" }]);
  assert.throws(() => tool.invoke("{{crate}}_lookup", '{"query":"x"}', target), (f) => f.tag === "rate-limited" && f.val.retryAfterSeconds === 30);
  globalThis.upstream = answer(401, '{"error":"bad key"}');
  assert.throws(() => tool.invoke("{{crate}}_lookup", '{"query":"x"}', target), (f) => f.tag === "unauthorized");
  globalThis.upstream = answer(502, "<html>bad gateway</html>");
  assert.throws(() => tool.invoke("{{crate}}_lookup", '{"query":"x"}', target), (f) => f.tag === "unavailable");
});

test("the caller's mistakes are invalid requests", () => {
  assert.throws(() => tool.invoke("{{crate}}_lookup", '{"query":"  "}', target), (f) => f.tag === "invalid-request");
  assert.throws(() => tool.invoke("other", "{}", target), (f) => f.tag === "invalid-request");
});
