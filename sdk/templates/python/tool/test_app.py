"""{{name}}'s tool logic, tested with plain CPython (no wasm): `python -m unittest`. The SDK's
`testing.Upstream` answers the plugin's requests in the host's place."""

import unittest

from aigw_plugin import Failure, NamedUrl, ToolTarget
from aigw_plugin.testing import Upstream

from app import {{class}}

TARGET = ToolTarget("example", [NamedUrl("base", "http://example.test/")])


def call(upstream, arguments):
    return upstream.run(lambda: {{class}}().invoke("{{crate}}_lookup", arguments, TARGET))


class {{class}}Test(unittest.TestCase):
    def test_describes_its_tool(self):
        descriptor = {{class}}().describe()
        self.assertEqual([t.name for t in descriptor.tools], ["{{crate}}_lookup"])
        self.assertFalse(descriptor.tools[0].parameters["additionalProperties"])

    def test_a_lookup_encodes_the_query_and_reads_the_answer(self):
        upstream = Upstream().json("/v1/lookup", 200, '{"answer":"forty-two"}')
        result, sent = call(upstream, {"query": "life & more"})
        self.assertEqual(result, {"query": "life & more", "answer": "forty-two"})
        self.assertEqual(sent[0].url, "http://example.test/v1/lookup?q=life%20%26%20more")

    def test_upstream_failures_are_classified_for_failover(self):
        for status, kind in [(429, "rate-limited"), (401, "unauthorized"), (503, "unavailable"), (400, "invalid-request")]:
            result, _ = call(Upstream().json("/v1/lookup", status, '{"error":"nope"}'), {"query": "x"})
            self.assertIsInstance(result, Failure)
            self.assertEqual(result.kind, kind, status)


if __name__ == "__main__":
    unittest.main()
