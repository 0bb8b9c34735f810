// Failure classification (mirrors sdk/rust/tests/failure.rs): statuses, the error envelopes,
// where the wait is said, and the tool answer table.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  answer,
  classify,
  classifyErrorValue,
  failure,
  parseGoDuration,
  retryAfterSeconds,
  upstreamError,
  utf8Encode,
} from "../aigw-plugin.js";

const response = (status, headers, body) => ({
  status,
  headers: Object.entries(headers).map(([name, value]) => ({ name, value })),
  body: utf8Encode(body),
});

const GROQ_429 =
  '{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier on_demand on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}';

test("429: the retry-after header in seconds wins, the OpenAI envelope's message kept", () => {
  const got = classify(response(429, { "Retry-After": "17" }, GROQ_429));
  assert.equal(got.tag, "rate-limited");
  assert.equal(got.val.retryAfterSeconds, 17);
  assert.ok(got.val.message.startsWith("Rate limit reached for model"));
});

test("429: an HTTP-date retry-after, a past date meaning now", () => {
  const now = 1445412480000; // Wed, 21 Oct 2015 07:28:00 GMT
  const headers = [{ name: "retry-after", value: "Wed, 21 Oct 2015 07:28:42 GMT" }];
  assert.equal(retryAfterSeconds(headers, null, now), 42);
  assert.equal(retryAfterSeconds(headers, null, now + 3600_000), 0);
});

test("429: the delay in Groq's message, rounded up, and in other forms", () => {
  assert.equal(classify(response(429, {}, GROQ_429)).val.retryAfterSeconds, 6);
  const inMessage = (message) => retryAfterSeconds([], message);
  assert.equal(inMessage("Please try again in 1m30.5s."), 91);
  assert.equal(inMessage("Please try again in 850ms"), 1);
  assert.equal(inMessage("Request was throttled. Your rate limit resets in ~30s."), 30);
  assert.equal(inMessage("Slow down"), null);
});

test("429: x-ratelimit-reset-* headers, the exhausted dimension first, else the soonest", () => {
  const tokens = classify(
    response(
      429,
      {
        "x-ratelimit-remaining-requests": "14370",
        "x-ratelimit-reset-requests": "2m59.56s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "7.66s",
      },
      '{"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}',
    ),
  );
  assert.deepEqual(tokens, failure.rateLimited("Rate limit reached", 8));
  const requests = classify(
    response(
      429,
      {
        "x-ratelimit-reset-tokens": "7.66s",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2m59.56s",
      },
      "{}",
    ),
  );
  assert.equal(requests.val.retryAfterSeconds, 180);
  const cerebras = classify(
    response(
      429,
      { "x-ratelimit-reset-requests-day": "33011.38", "x-ratelimit-reset-tokens-minute": "11.38" },
      '{"message":"Tokens per minute limit exceeded","type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}',
    ),
  );
  assert.deepEqual(cerebras, failure.rateLimited("Tokens per minute limit exceeded", 12));
  // OpenRouter's bare reset is an epoch in milliseconds.
  const headers = [{ name: "X-RateLimit-Reset", value: "1700000004500" }];
  assert.equal(retryAfterSeconds(headers, null, 1700000000000), 5);
  assert.deepEqual(classify(response(429, {}, "Too Many Requests")), failure.rateLimited("Too Many Requests", null));
});

test("Go durations", () => {
  assert.equal(parseGoDuration("7.66s"), 7.66);
  assert.equal(parseGoDuration("2m59.56s"), 179.56);
  assert.equal(parseGoDuration("6ms"), 0.006);
  assert.equal(parseGoDuration("1h0m0s"), 3600);
  assert.equal(parseGoDuration("11.38"), 11.38);
  for (const bad of ["", "soon", "5x", "s"]) assert.equal(parseGoDuration(bad), null, bad);
});

test("401 and 403 are unauthorized, 402 and the no-credit codes are no credit", () => {
  assert.deepEqual(
    classify(response(401, {}, '{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}')),
    failure.unauthorized("Invalid API Key"),
  );
  assert.deepEqual(classify(response(403, {}, '{"error":"forbidden"}')), failure.unauthorized("forbidden"));
  assert.deepEqual(
    classify(response(403, {}, '{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"Your balance is not enough","metadata":{}}')),
    failure.noCredit("Your balance is not enough"),
  );
  assert.deepEqual(
    classify(response(403, {}, '{"code":403,"reason":"model_access_denied","message":"no access","metadata":{}}')),
    failure.unauthorized("no access"),
  );
  assert.deepEqual(
    classify(
      response(
        429,
        { "retry-after": "20" },
        '{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}',
      ),
    ),
    failure.noCredit("You exceeded your current quota."),
  );
  for (const [body, message] of [
    ['{"error":{"code":402,"message":"Insufficient credits"}}', "Insufficient credits"],
    ['{"error":"You have exceeded your monthly included credits"}', "You have exceeded your monthly included credits"],
    [
      '{"title":"Insufficient credit","detail":"You have insufficient credit to run this model.","status":402}',
      "You have insufficient credit to run this model.",
    ],
    ["", "upstream answered HTTP 402"],
  ]) {
    assert.deepEqual(classify(response(402, {}, body)), failure.noCredit(message), body);
  }
});

test("400 is an invalid request with the message verbatim; context length and filters recognised", () => {
  assert.deepEqual(
    classify(response(400, {}, '{"error":{"message":"`temperature` must be at most 2","type":"invalid_request_error"}}')),
    failure.invalidRequest("`temperature` must be at most 2"),
  );
  assert.deepEqual(
    classify(response(400, {}, '{"error":{"message":"too long","code":"context_length_exceeded"}}')),
    failure.contextLengthExceeded("too long"),
  );
  const text = "This model's maximum context length is 8192 tokens.";
  assert.deepEqual(
    classify(response(400, {}, JSON.stringify({ error: { message: text } }))),
    failure.contextLengthExceeded(text),
  );
  assert.deepEqual(
    classify(response(400, {}, '{"error":{"message":"blocked","code":"content_policy_violation"}}')),
    failure.contentFiltered("blocked"),
  );
  assert.deepEqual(
    classify(response(422, {}, '{"detail":[{"loc":["body","n"],"msg":"n must be 1"},{"msg":"and more"}]}')),
    failure.invalidRequest("n must be 1; and more"),
  );
});

test("transient statuses are unavailable; HTML is shortened; unexpected statuses are bad responses", () => {
  for (const status of [408, 409, 425, 498, 500, 502, 503, 504, 529]) {
    assert.deepEqual(
      classify(response(status, {}, '{"error":{"message":"overloaded","type":"server_error"}}')),
      failure.unavailable("overloaded"),
      `status ${status}`,
    );
  }
  const html = `<html><body>${"x".repeat(2000)}</body></html>`;
  const got = classify(response(502, {}, html));
  assert.equal(got.tag, "unavailable");
  assert.ok(got.val.startsWith("<html><body>xxx"));
  assert.equal(Array.from(got.val).length, 501);
  assert.deepEqual(classify(response(503, {}, "")), failure.unavailable("upstream answered HTTP 503"));
  assert.deepEqual(
    classify(response(500, {}, '{"error":{"code":"server_error"}}')),
    failure.unavailable("upstream answered HTTP 500 (server_error)"),
  );
  const redirect = classify(response(302, {}, ""));
  assert.equal(redirect.tag, "bad-response");
  assert.ok(redirect.val.includes("302"));
});

test("every error envelope is read", () => {
  const parse = (body) => upstreamError.parse(utf8Encode(body));
  assert.deepEqual(parse('{"error":{"message":"m1","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'), {
    message: "m1",
    code: "invalid_api_key",
    kind: "invalid_request_error",
  });
  assert.equal(parse('{"message":"Wrong API Key","type":"invalid_request_error","code":"wrong_api_key"}').code, "wrong_api_key");
  assert.equal(parse('{"error":{"code":402,"message":"Insufficient credits"}}').code, "402");
  assert.equal(parse('{"error":{"code":400,"message":"bad key","status":"INVALID_ARGUMENT"}}').code, "INVALID_ARGUMENT");
  assert.equal(parse('{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"low"}').code, "NOT_ENOUGH_BALANCE");
  assert.deepEqual(parse('{"title":"Unauthenticated","status":401}'), { message: "Unauthenticated", code: null, kind: null });
  assert.equal(parse('{"error":"Model is currently loading","estimated_time":20.0}').message, "Model is currently loading");
  assert.equal(parse('[{"error":{"message":"gemini list"}}]').message, "gemini list");
  assert.equal(parse("  upstream timeout \n").message, "upstream timeout");
  assert.deepEqual(parse(""), { message: null, code: null, kind: null });
  assert.deepEqual(parse("null"), { message: null, code: null, kind: null });
});

test("an error frame with a 2xx: a numeric HTTP code decides, else the known codes", () => {
  assert.deepEqual(classifyErrorValue({ error: { code: 402, message: "out of credits" } }), failure.noCredit("out of credits"));
  assert.deepEqual(classifyErrorValue({ error: { code: "insufficient_quota", message: "quota gone" } }), failure.noCredit("quota gone"));
  assert.deepEqual(classifyErrorValue({ error: { code: 429, message: "slow" } }), failure.rateLimited("slow", null));
  assert.deepEqual(classifyErrorValue({ error: { message: "boom" } }), failure.unavailable("boom"));
  assert.equal(classifyErrorValue({ error: { code: "rate_limit_exceeded", message: "try again in 2s" } }).val.retryAfterSeconds, 2);
});

test("tool answers: statuses, HTML anywhere, a 2xx that is not JSON, multi-window resets", () => {
  const of = (status) => answer.failure("api", response(status, {}, '{"error":"nope"}'));
  assert.deepEqual(of(429), failure.rateLimited("api: nope", null));
  assert.equal(of(401).tag, "unauthorized");
  assert.equal(of(403).tag, "unauthorized");
  assert.equal(of(402).tag, "no-credit");
  assert.equal(of(503).tag, "unavailable");
  assert.equal(of(408).tag, "unavailable");
  assert.deepEqual(of(404), failure.invalidRequest("api: nope"));
  const wall = response(200, { "content-type": "text/html; charset=utf-8" }, "<!doctype html><p>checking</p>");
  assert.throws(() => answer.json("stooq", wall), (thrown) => thrown.tag === "unavailable" && thrown.val.includes("HTML"));
  assert.throws(() => answer.json("x", response(502, {}, "  <html>bad gateway</html>")), (t) => t.tag === "unavailable");
  assert.throws(() => answer.json("x", response(200, {}, "Symbol,Date\nAAPL,N/D")), (t) => t.tag === "bad-response");
  assert.deepEqual(answer.json("x", response(200, {}, '{"a":1}')), { a: 1 });
  const headers = (pairs) => Object.entries(pairs).map(([name, value]) => ({ name, value }));
  assert.equal(answer.retryAfter(headers({ "X-RateLimit-Reset": "1, 1419704", "X-RateLimit-Remaining": "0, 14000" })), 1);
  assert.equal(answer.retryAfter(headers({ "X-RateLimit-Reset": "1, 1419704", "X-RateLimit-Remaining": "1, 0" })), 1419704);
  assert.equal(answer.retryAfter(headers({ "x-ratelimit-reset": "0.4, 90" })), 1);
  assert.equal(answer.retryAfter(headers({ "retry-after": "12", "x-ratelimit-reset": "1, 5" })), 12);
  assert.equal(answer.retryAfter([]), null);
});
