// The OpenAI-compatible dialect: encode (URL, model, stream options, no credential), decode
// (verbatim completions, usage, errors in a 200), and the stream decoder's endings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { compatibleProvider, contentText, credential, failure, utf8Decode, utf8Encode } from "../aigw-plugin.js";

const provider = compatibleProvider({
  describe: () => ({
    name: "test",
    version: "0.1.0",
    defaultBaseUrl: "http://127.0.0.1:8000/v1",
    origins: [],
    credential: credential.bearer(),
    credentialRequired: false,
    models: [],
  }),
});
const target = { baseUrl: "http://127.0.0.1:11434/v1/", model: "llama3.2" };
const sseHead = { status: 200, headers: [{ name: "content-type", value: "text/event-stream" }] };
const jsonHead = { status: 200, headers: [{ name: "Content-Type", value: "application/json; charset=utf-8" }] };

const bodyOf = (request) => JSON.parse(utf8Decode(request.body));

test("encode: one slash before chat/completions, only the model replaced, no credential", () => {
  const request = provider.encode(
    target,
    '{"model":"local","messages":[{"role":"user","content":"hi","name":"bob"}],"logprobs":true,"n":2}',
  );
  assert.equal(request.method, "POST");
  assert.equal(request.url, "http://127.0.0.1:11434/v1/chat/completions");
  assert.deepEqual(bodyOf(request), {
    model: "llama3.2",
    messages: [{ role: "user", content: "hi", name: "bob" }],
    logprobs: true,
    n: 2,
  });
  assert.deepEqual(request.headers, [{ name: "content-type", value: "application/json" }]);
  assert.ok(!request.headers.some((h) => h.name.toLowerCase() === "authorization"));
});

test("encode: a stream asks for the usage chunk and for an event stream", () => {
  const request = provider.encode(target, '{"model":"x","stream":true,"stream_options":"junk","messages":[]}');
  assert.deepEqual(bodyOf(request).stream_options, { include_usage: true });
  assert.ok(request.headers.some((h) => h.name === "accept" && h.value === "text/event-stream"));
  const kept = provider.encode(target, '{"stream":true,"stream_options":{"x":1},"messages":[]}');
  assert.deepEqual(bodyOf(kept).stream_options, { x: 1, include_usage: true });
});

test("encode: a body that is not a JSON object is an invalid request", () => {
  for (const bad of ["[1]", "nope", "null"]) {
    assert.throws(() => provider.encode(target, bad), (thrown) => thrown.tag === "invalid-request", bad);
  }
});

const COMPLETION =
  '{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}';

test("decode: a completion passes verbatim with its usage (a missing total is the sum)", () => {
  const step = provider.decode(target, { status: 200, headers: [], body: utf8Encode(COMPLETION) });
  assert.equal(step.tag, "done");
  assert.equal(step.val.json, COMPLETION);
  assert.deepEqual(step.val.usage, { promptTokens: 3, completionTokens: 2, totalTokens: 5 });
});

test("decode: errors are classified, in a non-2xx or in a 200", () => {
  const limited = () =>
    provider.decode(target, { status: 429, headers: [{ name: "retry-after", value: "3" }], body: utf8Encode('{"error":{"message":"slow"}}') });
  assert.throws(limited, (thrown) => assert.deepEqual(thrown, failure.rateLimited("slow", 3)) ?? true);
  const inOk = () => provider.decode(target, { status: 200, headers: [], body: utf8Encode('{"error":{"message":"boom","code":503}}') });
  assert.throws(inOk, (thrown) => thrown.tag === "unavailable" && thrown.val === "boom");
  const noChoices = () => provider.decode(target, { status: 200, headers: [], body: utf8Encode('{"id":"x"}') });
  assert.throws(noChoices, (thrown) => thrown.tag === "bad-response");
  const garbage = () => provider.decode(target, { status: 200, headers: [], body: utf8Encode("<html>") });
  assert.throws(garbage, (thrown) => thrown.tag === "bad-response");
});

const chunk = (delta, finish = null, extra = {}) =>
  `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
const USAGE = 'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}\n\n';

/// Feeds `body` to a fresh decoder in pieces of `size` bytes; the chunks, or the thrown failure.
function decodeInPieces(body, size, head = sseHead) {
  const decoder = new provider.StreamDecoder(target, head);
  const bytes = utf8Encode(body);
  const chunks = [];
  for (let at = 0; at < bytes.length; at += size) {
    chunks.push(...decoder.feed(bytes.subarray(at, at + size)));
  }
  const end = decoder.finish();
  assert.equal(end.tag, "done");
  return [...chunks, ...end.val];
}

test("stream: chunks verbatim, the usage chunk marked, [DONE] ends it, in any pieces", () => {
  const body = chunk({ role: "assistant", content: "Hel" }) + chunk({ content: "lo" }, "stop") + USAGE + "data: [DONE]\n\n" + chunk({ content: "after" });
  for (const size of [1, 3, 7, 1000]) {
    const chunks = decodeInPieces(body, size);
    assert.equal(chunks.length, 3, `pieces of ${size}`);
    assert.equal(JSON.parse(chunks[0].json).choices[0].delta.content, "Hel");
    assert.deepEqual(chunks.map((c) => c.usage), [null, null, { promptTokens: 4, completionTokens: 2, totalTokens: 6 }]);
  }
});

test("stream: without [DONE] it ends cleanly only after a finish_reason", () => {
  const ollama = chunk({ content: "Hel" }) + chunk({ content: "lo" }, "stop");
  assert.equal(decodeInPieces(ollama, 5).length, 2);
  assert.throws(
    () => decodeInPieces(chunk({ content: "Hel" }), 5),
    (thrown) => assert.deepEqual(thrown, failure.unavailable("stream ended before completion")) ?? true,
  );
});

test("stream: an error frame is a failure", () => {
  const decoder = new provider.StreamDecoder(target, sseHead);
  decoder.feed(utf8Encode(chunk({ content: "a" })));
  assert.throws(
    () => decoder.feed(utf8Encode('data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')),
    (thrown) => thrown.tag === "unavailable" && thrown.val === "overloaded",
  );
  assert.throws(() => new provider.StreamDecoder(target, sseHead).feed(utf8Encode("data: {nope\n\n")), (t) => t.tag === "bad-response");
});

test("stream: usage riding on a content chunk becomes a separate usage chunk at the end", () => {
  const body = chunk({ content: "x" }, "stop", { usage: { prompt_tokens: 1, completion_tokens: 1 } }) + "data: [DONE]\n\n";
  const chunks = decodeInPieces(body, 4);
  assert.equal(chunks.length, 2);
  assert.equal(JSON.parse(chunks[0].json).usage, null);
  assert.equal(chunks[0].usage, null);
  assert.deepEqual(JSON.parse(chunks[1].json).choices, []);
  assert.deepEqual(chunks[1].usage, { promptTokens: 1, completionTokens: 1, totalTokens: 2 });
});

test("stream: a JSON answer to a streamed request is replayed as chunks", () => {
  const withCall =
    '{"id":"c1","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}';
  const chunks = decodeInPieces(withCall, 9, jsonHead);
  assert.equal(chunks.length, 2);
  const first = JSON.parse(chunks[0].json);
  assert.equal(first.object, "chat.completion.chunk");
  assert.equal(first.choices[0].finish_reason, "stop");
  assert.equal(first.choices[0].delta.tool_calls[0].index, 0);
  assert.deepEqual(chunks[1].usage, { promptTokens: 3, completionTokens: 2, totalTokens: 5 });
});

test("content text: strings and text parts; other parts refused naming the provider", () => {
  assert.equal(contentText("hi", 0, "p"), "hi");
  assert.equal(contentText(null, 0, "p"), "");
  assert.equal(contentText([{ type: "text", text: "a" }, { type: "text", text: "b" }], 0, "p"), "ab");
  assert.throws(() => contentText([{ type: "image_url" }], 2, "replicate"), (t) => t.tag === "invalid-request" && t.val.includes("replicate") && t.val.includes("messages[2]"));
  assert.throws(() => contentText(7, 1, "p"), (t) => t.tag === "invalid-request");
});
