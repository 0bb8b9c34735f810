// Unit tests of the {{name}} provider's logic, run with plain `node --test` (no wasm, no
// packages): the request it builds, the answers and failures it reads, the stream decoder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { utf8Decode, utf8Encode } from "./aigw-plugin.js";
import { provider } from "./app.js";

const target = { baseUrl: "http://127.0.0.1:9/v1", model: "some-model" };
const sse = { status: 200, headers: [{ name: "content-type", value: "text/event-stream" }] };

test("describes itself", () => {
  const descriptor = provider.describe();
  assert.equal(descriptor.name, "{{name}}");
  assert.match(descriptor.version, /^\d+\.\d+\.\d+/);
});

test("encode points the request at the target, with no credential", () => {
  const request = provider.encode(target, JSON.stringify({ model: "alias", messages: [{ role: "user", content: "hi" }] }));
  assert.equal(request.url, "http://127.0.0.1:9/v1/chat/completions");
  assert.equal(JSON.parse(utf8Decode(request.body)).model, "some-model");
  assert.ok(!request.headers.some((h) => h.name.toLowerCase() === "authorization"));
});

test("encode refuses what the upstream would reject", () => {
  assert.throws(() => provider.encode(target, '{"messages":[],"n":2}'), (f) => f.tag === "invalid-request");
});

test("an upstream 429 is a rate limit with its wait", () => {
  const response = {
    status: 429,
    headers: [{ name: "retry-after", value: "7" }],
    body: utf8Encode('{"error":{"message":"slow down","type":"rate_limit"}}'),
  };
  assert.throws(() => provider.decode(target, response), (f) => f.tag === "rate-limited" && f.val.retryAfterSeconds === 7);
});

test("a stream decodes in any pieces and ends cleanly only after [DONE] or a finish_reason", () => {
  const body = utf8Encode(
    'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n' +
      'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n',
  );
  for (let cut = 0; cut <= body.length; cut++) {
    const decoder = new provider.StreamDecoder(target, sse);
    const chunks = [...decoder.feed(body.subarray(0, cut)), ...decoder.feed(body.subarray(cut))];
    const end = decoder.finish();
    assert.equal(end.tag, "done");
    assert.equal(chunks.length + end.val.length, 2, `cut at ${cut}`);
  }
  // Cut after the first event: no finish_reason, no [DONE].
  const cut = new provider.StreamDecoder(target, sse);
  cut.feed(body.subarray(0, utf8Decode(body).indexOf("\n\n") + 2));
  assert.throws(() => cut.finish(), (f) => f.tag === "unavailable");
});
