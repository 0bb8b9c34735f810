// UTF-8 without TextEncoder/TextDecoder (QuickJS has neither): the same bytes and text as
// node's Buffer, and replacement instead of exceptions for invalid input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { utf8Decode, utf8Encode } from "../aigw-plugin.js";

const SAMPLES = ["", "plain ascii", "héllo", "€ 100", "🌍 emoji", "São Paulo", "日本語", "a\u0000b"];

test("encoding matches Buffer for every sample", () => {
  for (const text of SAMPLES) {
    assert.deepEqual([...utf8Encode(text)], [...Buffer.from(text, "utf8")], text);
  }
});

test("decoding round-trips every sample", () => {
  for (const text of SAMPLES) {
    assert.equal(utf8Decode(Buffer.from(text, "utf8")), text);
  }
});

test("a long text decodes whole (pieces are flushed)", () => {
  const text = "añ🌍".repeat(5000);
  assert.equal(utf8Decode(utf8Encode(text)), text);
});

test("invalid and truncated sequences become U+FFFD", () => {
  assert.equal(utf8Decode([0xff, 0x61]), "\uFFFDa");
  assert.equal(utf8Decode([0xe2, 0x82, 0x61]), "\uFFFDa"); // a cut-short €, then 'a'
  assert.equal(utf8Decode([0xe2, 0x82]), "\uFFFD");
  assert.equal(utf8Decode([0xc0, 0xaf]), "\uFFFD\uFFFD"); // overlong '/'
  assert.equal(utf8Decode([0xf0, 0x9f, 0x8c]), "\uFFFD");
});

test("a lone surrogate is encoded as U+FFFD", () => {
  assert.deepEqual([...utf8Encode("\ud800x")], [0xef, 0xbf, 0xbd, 0x78]);
});
