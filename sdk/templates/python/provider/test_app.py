"""{{name}}'s translation, tested with plain CPython (no wasm): `python -m unittest`."""

import json
import unittest

from aigw_plugin import Failure, HttpResponse, Target
from aigw_plugin.testing import decode_in_pieces, sse_head

from app import {{class}}

TARGET = Target("https://api.example.com/v1", "some-model")
STREAM = (
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
    'data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
    "data: [DONE]\n\n"
)


class {{class}}Test(unittest.TestCase):
    def test_encode_sets_the_model_and_the_url(self):
        request = {{class}}().encode(TARGET, '{"model":"x","messages":[{"role":"user","content":"hi"}]}')
        self.assertEqual(request.url, "https://api.example.com/v1/chat/completions")
        self.assertEqual(json.loads(request.body)["model"], "some-model")

    def test_more_than_one_choice_is_refused(self):
        with self.assertRaises(Failure) as raised:
            {{class}}().encode(TARGET, '{"messages":[],"n":2}')
        self.assertEqual(raised.exception.kind, "invalid-request")

    def test_the_stream_decodes_whatever_the_split(self):
        for piece in (1, 4, 1000):
            chunks = decode_in_pieces({{class}}().stream_decoder(TARGET, sse_head()), STREAM, piece)
            self.assertEqual(len(chunks), 3)
            self.assertEqual(chunks[2].usage.total_tokens, 5)

    def test_a_cut_stream_is_unavailable(self):
        cut = STREAM[: STREAM.index("\n\n") + 2]
        with self.assertRaises(Failure) as raised:
            decode_in_pieces({{class}}().stream_decoder(TARGET, sse_head()), cut, 7)
        self.assertEqual(raised.exception.kind, "unavailable")

    def test_upstream_errors_are_classified(self):
        for status, kind in [(429, "rate-limited"), (401, "unauthorized"), (402, "no-credit"), (503, "unavailable"), (400, "invalid-request")]:
            body = json.dumps({"error": {"message": "nope", "type": "x", "code": None}}).encode()
            with self.assertRaises(Failure) as raised:
                {{class}}().decode(TARGET, HttpResponse(status, [], body))
            self.assertEqual(raised.exception.kind, kind, status)


if __name__ == "__main__":
    unittest.main()
