"""Failure classification: the table of statuses and envelopes the Rust SDK's failure.rs and
answer.rs decide, with the waits read from headers and messages."""

import email.utils
import unittest

from aigw_plugin import answer
from aigw_plugin.failure import (
    UpstreamError,
    classify,
    classify_error,
    classify_error_value,
    parse_go_duration,
    retry_after_seconds,
)
from aigw_plugin.types import Failure, Header, HttpResponse

NOW = 1_750_000_000.0


def response(status, body, headers=()):
    return HttpResponse(status, [Header(n, v) for n, v in headers], body.encode())


def openai_error(message, code=None, kind="invalid_request_error"):
    import json

    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


class ClassifyTest(unittest.TestCase):
    def test_the_status_table(self):
        table = [
            (429, openai_error("slow down", "rate_limit_exceeded"), "rate-limited"),
            (429, openai_error("You exceeded your current quota", "insufficient_quota"), "no-credit"),
            (403, '{"code":403,"reason":"NOT_ENOUGH_BALANCE","message":"top up"}', "no-credit"),
            (402, '{"error":"Payment Required"}', "no-credit"),
            (401, openai_error("Invalid API Key", "invalid_api_key"), "unauthorized"),
            (403, openai_error("forbidden"), "unauthorized"),
            (400, openai_error("This model's maximum context length is 8192 tokens"), "context-length-exceeded"),
            (400, openai_error("flagged", "content_policy_violation"), "content-filtered"),
            (400, openai_error("bad temperature"), "invalid-request"),
            (404, openai_error("no such model"), "invalid-request"),
            (413, openai_error("Request too large", "rate_limit_exceeded"), "rate-limited"),
            (500, "oops", "unavailable"),
            (503, "<html>down</html>", "unavailable"),
            (529, '{"error":{"message":"overloaded"}}', "unavailable"),
            (408, "", "unavailable"),
            (302, "", "bad-response"),
        ]
        for status, body, kind in table:
            with self.subTest(status=status, body=body):
                self.assertEqual(classify(response(status, body)).kind, kind)

    def test_the_message_comes_from_every_envelope(self):
        cases = [
            (openai_error("plain openai"), "plain openai"),
            ('{"message":"flat cerebras","type":"x","code":"y"}', "flat cerebras"),
            ('{"error":"hugging face text"}', "hugging face text"),
            ('[{"error":{"message":"gemini list","status":"INVALID_ARGUMENT"}}]', "gemini list"),
            ('{"title":"Bad","detail":"replicate detail","status":400}', "replicate detail"),
            ('{"detail":[{"loc":["body"],"msg":"field required"},{"msg":"and another"}]}', "field required; and another"),
            ("  not json at all  ", "not json at all"),
        ]
        for body, message in cases:
            with self.subTest(body=body):
                self.assertEqual(classify(response(400, body)).message, message)
        self.assertEqual(classify(response(400, "")).message, "upstream answered HTTP 400")
        self.assertEqual(UpstreamError.parse(b'{"code":1234}').code, "1234")
        long = classify(response(500, "x" * 600)).message
        self.assertEqual(len(long), 501)
        self.assertTrue(long.endswith("…"))

    def test_waits_from_headers_and_messages(self):
        def wait(headers=(), message=None):
            return retry_after_seconds([Header(n, v) for n, v in headers], message, NOW)

        self.assertEqual(wait([("Retry-After", "30")]), 30)
        self.assertEqual(wait([("retry-after", "1.2")]), 2)
        date = email.utils.formatdate(NOW + 90, usegmt=True)
        self.assertEqual(wait([("retry-after", date)]), 90)
        self.assertEqual(wait(message="Please try again in 5.289s."), 6)
        self.assertEqual(wait(message="Please try again in 1m30s"), 90)
        self.assertEqual(wait(message="Your rate limit resets in ~30s"), 30)
        exhausted = [
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-remaining-requests", "5"),
            ("x-ratelimit-reset-tokens", "7.66s"),
            ("x-ratelimit-remaining-tokens", "0"),
        ]
        self.assertEqual(wait(exhausted), 8)
        self.assertEqual(wait([("x-ratelimit-reset-requests", "6ms")]), 1)
        self.assertEqual(wait([("x-ratelimit-reset", str(int(NOW * 1000) + 4000))]), 4)
        self.assertIsNone(wait())
        self.assertEqual(parse_go_duration("1h0m0s"), 3600.0)
        self.assertIsNone(parse_go_duration("soon"))
        limited = classify_error(
            429, [Header("retry-after", "12")], UpstreamError(message="slow"), NOW
        )
        self.assertEqual(limited, Failure.rate_limited("slow", 12))

    def test_an_error_frame_on_a_200(self):
        self.assertEqual(
            classify_error_value({"error": {"message": "boom", "code": 503}}).kind, "unavailable"
        )
        self.assertEqual(
            classify_error_value({"error": {"message": "no", "code": 401}}).kind, "unauthorized"
        )
        self.assertEqual(
            classify_error_value({"error": {"message": "x", "code": "rate_limit_exceeded"}}).kind,
            "rate-limited",
        )
        self.assertEqual(classify_error_value({"error": {"message": "?"}}).kind, "unavailable")


class ToolAnswerTest(unittest.TestCase):
    def test_statuses_map_to_classes(self):
        def of(status):
            return answer.failure("api", response(status, '{"error":"nope"}'))

        self.assertEqual(of(429), Failure.rate_limited("api: nope", None))
        self.assertEqual(of(401).kind, "unauthorized")
        self.assertEqual(of(403).kind, "unauthorized")
        self.assertEqual(of(402).kind, "no-credit")
        self.assertEqual(of(503).kind, "unavailable")
        self.assertEqual(of(400).kind, "invalid-request")
        self.assertEqual(of(404).message, "api: nope")

    def test_html_is_unavailable_whatever_the_status(self):
        page = response(200, "<!doctype html><p>checking</p>", [("content-type", "text/html; charset=utf-8")])
        with self.assertRaises(Failure) as raised:
            answer.json_body("stooq", page)
        self.assertEqual(raised.exception.kind, "unavailable")
        self.assertIn("HTML", raised.exception.message)
        with self.assertRaises(Failure) as untyped:
            answer.json_body("x", response(502, "  <html>bad gateway</html>"))
        self.assertEqual(untyped.exception.kind, "unavailable")

    def test_a_2xx_that_is_not_json_is_a_bad_response(self):
        with self.assertRaises(Failure) as raised:
            answer.json_body("x", response(200, "Symbol,Date\nAAPL,N/D"))
        self.assertEqual(raised.exception.kind, "bad-response")
        self.assertEqual(answer.json_body("x", response(200, '{"a":1}')), {"a": 1})

    def test_multi_window_resets_pick_the_exhausted_window(self):
        def headers(*pairs):
            return [Header(n, v) for n, v in pairs]

        per_second = headers(("X-RateLimit-Reset", "1, 1419704"), ("X-RateLimit-Remaining", "0, 14000"))
        self.assertEqual(answer.retry_after(per_second, NOW), 1)
        monthly = headers(("X-RateLimit-Reset", "1, 1419704"), ("X-RateLimit-Remaining", "1, 0"))
        self.assertEqual(answer.retry_after(monthly, NOW), 1_419_704)
        self.assertEqual(answer.retry_after(headers(("x-ratelimit-reset", "0.4, 90")), NOW), 1)
        both = headers(("retry-after", "12"), ("x-ratelimit-reset", "1, 5"))
        self.assertEqual(answer.retry_after(both, NOW), 12)
        self.assertIsNone(answer.retry_after([], NOW))


if __name__ == "__main__":
    unittest.main()
