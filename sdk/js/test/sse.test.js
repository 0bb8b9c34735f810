// The incremental SSE parser: the same events however the body is cut (at every byte, byte by
// byte, LF or CRLF), events as soon as their blank line arrives, the spec's field rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SseParser, utf8Encode } from "../aigw-plugin.js";

const BODY =
  'data: {"a":"héllo 🌍"}\n\n: keep-alive comment\n\nevent: output\nid: 7\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n';

const EXPECTED = [
  { name: null, data: '{"a":"héllo 🌍"}', id: null },
  { name: "output", data: "line one\nline two", id: "7" },
  { name: null, data: "[DONE]", id: "7" },
];

function parseInOne(bytes) {
  const parser = new SseParser();
  return [...parser.feed(bytes), ...parser.finish()];
}

test("data, comments, names, ids and multi-line data", () => {
  assert.deepEqual(parseInOne(utf8Encode(BODY)), EXPECTED);
});

test("a split at every byte offset gives the same events, LF and CRLF", () => {
  for (const body of [BODY, BODY.replaceAll("\n", "\r\n")]) {
    const bytes = utf8Encode(body);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parser = new SseParser();
      const events = [
        ...parser.feed(bytes.subarray(0, cut)),
        ...parser.feed(bytes.subarray(cut)),
        ...parser.finish(),
      ];
      assert.deepEqual(events, EXPECTED, `split at byte ${cut}`);
    }
  }
});

test("byte-by-byte feeding gives the same events", () => {
  const parser = new SseParser();
  const events = [];
  for (const byte of utf8Encode(BODY.replaceAll("\n", "\r\n"))) {
    events.push(...parser.feed([byte]));
  }
  events.push(...parser.finish());
  assert.deepEqual(events, EXPECTED);
});

test("events are returned as soon as their blank line arrives", () => {
  const parser = new SseParser();
  const data = (events) => events.map((event) => event.data);
  assert.deepEqual(parser.feed(utf8Encode("data: one\n")), []);
  assert.deepEqual(data(parser.feed(utf8Encode("\ndata: tw"))), ["one"]);
  assert.deepEqual(parser.feed(utf8Encode("o\n")), []);
  assert.deepEqual(data(parser.feed(utf8Encode("\n"))), ["two"]);
  assert.deepEqual(parser.finish(), []);
});

test("a value keeps all but one leading space, and colons inside", () => {
  const events = parseInOne(utf8Encode("data:no-space\n\ndata:  two spaces: and a colon\n\n"));
  assert.deepEqual(
    events.map((event) => event.data),
    ["no-space", " two spaces: and a colon"],
  );
});

test("an empty data line dispatches an empty event; no data dispatches nothing", () => {
  const events = parseInOne(utf8Encode("data\n\nevent: ping\n\nretry: 10\n\n"));
  assert.deepEqual(events, [{ name: null, data: "", id: null }]);
});

test("the last event without its blank line is delivered on finish", () => {
  const parser = new SseParser();
  assert.equal(parser.feed(utf8Encode("data: a\n\ndata: last")).length, 1);
  assert.deepEqual(
    parser.finish().map((event) => event.data),
    ["last"],
  );
});

test("a leading BOM is skipped even when split", () => {
  const parser = new SseParser();
  const events = [
    ...parser.feed([0xef]),
    ...parser.feed([0xbb]),
    ...parser.feed([0xbf, ...utf8Encode("data: x\n\n")]),
  ];
  assert.deepEqual(
    events.map((event) => event.data),
    ["x"],
  );
});

test("invalid UTF-8 is replaced, not fatal", () => {
  const events = parseInOne([...utf8Encode("data: "), 0xff, 0xfe, ...utf8Encode("ok\n\n")]);
  assert.deepEqual(
    events.map((event) => event.data),
    ["\uFFFD\uFFFDok"],
  );
});
