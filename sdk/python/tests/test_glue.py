"""The export glue and the host imports against the bindings componentize-py really generates
(`componentize-py bindings` for each world, from the repository's WIT): types converted both
ways, a raised Failure as the WIT error, `http.send` over `outbound`, the `memory` wrapper.
The generated import functions are replaced by fakes that play the host. Needs the pinned
toolchain (`cargo xtask test` runs these with its venv's python)."""

import importlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import unittest

SDK = pathlib.Path(__file__).resolve().parents[1]
WIT = SDK.parents[1] / "wit"


def componentize_py() -> str:
    beside = pathlib.Path(sys.executable).with_name("componentize-py")
    found = str(beside) if beside.is_file() else shutil.which("componentize-py")
    if found is None:
        raise RuntimeError(
            "componentize-py is not installed: run these tests with the toolchain venv's python "
            "(target/toolchains/python/bin/python, which `cargo xtask examples` installs)"
        )
    return found


def _purge():
    for name in list(sys.modules):
        if name.split(".")[0] in ("wit_world", "componentize_py_types", "componentize_py_runtime", "aigw_plugin"):
            del sys.modules[name]


class Bindings:
    """The generated bindings of `world` on sys.path, with a fresh aigw_plugin on top."""

    def __init__(self, world: str):
        self.dir = tempfile.mkdtemp(prefix=f"aigw-{world}-")
        subprocess.run(
            [componentize_py(), "-d", str(WIT), "-w", world, "bindings", self.dir],
            check=True,
            capture_output=True,
        )
        _purge()
        sys.path.insert(0, self.dir)

    def close(self):
        sys.path.remove(self.dir)
        _purge()
        shutil.rmtree(self.dir, ignore_errors=True)


class ToolGlueTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bindings = Bindings("tool-plugin")
        cls.outbound = importlib.import_module("wit_world.imports.outbound")
        cls.memory_host = importlib.import_module("wit_world.imports.memory")
        cls.types = importlib.import_module("wit_world.imports.types")
        cls.Err = importlib.import_module("componentize_py_types").Err
        cls.sent = []

        def send(request):
            cls.sent.append(request)
            if "fail" in request.url:
                raise cls.Err(cls.types.Failure_RateLimited(cls.types.RateLimit(7, "slow down")))
            return cls.types.HttpResponse(200, [cls.types.Header("content-type", "application/json")], b'{"answer":"42"}')

        cls.outbound.send = send
        cls.aigw = importlib.import_module("aigw_plugin")

    @classmethod
    def tearDownClass(cls):
        cls.bindings.close()

    def plugin(self):
        aigw = self.aigw
        from aigw_plugin import answer, http, schema

        class Lookup(aigw.ToolPlugin):
            name = "lookup"
            upstreams = [aigw.Upstream("example", [aigw.NamedUrl("base", "https://api.example.com")], aigw.CredentialPlacement.query("key"), True)]

            @aigw.tool(name="lookup_term", title="Look up", description="Looks up", parameters=schema.object({"q": schema.string("q")}, ["q"]), output=schema.object({"answer": schema.string("a")}), cache_ttl_seconds=5)
            def term(self, args, target):
                url = target.endpoint("base") + "/v1?q=" + args.required_string("q")
                return answer.json_body("example", http.get(url))

        return aigw.export_tool(Lookup)()

    def test_describe_converts_to_the_wit_records(self):
        descriptor = self.plugin().describe()
        tool = importlib.import_module("wit_world.exports.tool")
        self.assertIsInstance(descriptor, tool.Descriptor)
        spec = descriptor.tools[0]
        self.assertEqual((spec.name, spec.cache_ttl_seconds), ("lookup_term", 5))
        self.assertEqual(json.loads(spec.parameters_schema)["required"], ["q"])
        self.assertEqual(json.loads(spec.output_schema)["type"], "object")
        upstream = descriptor.upstreams[0]
        self.assertIsInstance(upstream.credential, self.types.CredentialPlacement_Query)
        self.assertEqual(upstream.credential.value, "key")
        self.assertEqual(upstream.endpoints[0].url, "https://api.example.com")

    def test_invoke_sends_through_outbound_and_answers_compact_json(self):
        tool = importlib.import_module("wit_world.exports.tool")
        target = tool.Target("example", [self.types.NamedUrl("base", "http://127.0.0.1:9/")])
        self.sent.clear()
        self.assertEqual(self.plugin().invoke("lookup_term", '{"q":"x"}', target), '{"answer":"42"}')
        self.assertEqual(self.sent[0].url, "http://127.0.0.1:9/v1?q=x")
        self.assertIsInstance(self.sent[0], self.types.HttpRequest)

    def test_failures_become_wit_errors(self):
        tool = importlib.import_module("wit_world.exports.tool")
        target = tool.Target("example", [self.types.NamedUrl("base", "http://fail.test")])
        with self.assertRaises(self.Err) as raised:
            self.plugin().invoke("lookup_term", '{"q":"x"}', target)
        self.assertEqual(raised.exception.value, self.types.Failure_RateLimited(self.types.RateLimit(7, "slow down")))
        with self.assertRaises(self.Err) as unknown:
            self.plugin().invoke("nope", "{}", target)
        self.assertIsInstance(unknown.exception.value, self.types.Failure_InvalidRequest)
        with self.assertRaises(self.Err) as bad_json:
            self.plugin().invoke("lookup_term", "{", target)
        self.assertIsInstance(bad_json.exception.value, self.types.Failure_InvalidRequest)

    def test_memory_over_the_import(self):
        host = self.memory_host
        memory = importlib.import_module("aigw_plugin.memory")
        calls = []

        def put(path, key, value_json, ttl, if_version):
            calls.append(("put", path, key, value_json, ttl, if_version))
            if if_version == 0:
                raise self.Err(host.MemoryError_Conflict(3))
            return 4

        def get(path, key):
            if key == "missing":
                return None
            return host.Entry(path, key, '{"a":1}', 4, 10, 20, None, "plugin:lookup")

        def search(prefix, query, filter_json, limit):
            calls.append(("search", prefix, query, filter_json, limit))
            return [host.SearchHit(get(["p"], "k"), 0.5)]

        def append_items(conversation, items):
            if conversation == "conv_gone":
                raise self.Err(host.MemoryError_NotFound())
            return [f"msg_{i}" for i, _ in enumerate(items)]

        host.put, host.get, host.search, host.append_items = put, get, search, append_items
        self.assertEqual(memory.put(("p",), "k", {"a": 1}, ttl_seconds=60), 4)
        self.assertEqual(calls[-1], ("put", ["p"], "k", '{"a":1}', 60, None))
        with self.assertRaises(memory.MemoryRefused) as conflict:
            memory.put(["p"], "k", {}, if_version=0)
        self.assertEqual((conflict.exception.kind, conflict.exception.version), ("conflict", 3))
        entry = memory.get(["p"], "k")
        self.assertEqual((entry.value, entry.version, entry.agent), ({"a": 1}, 4, "plugin:lookup"))
        self.assertIsNone(memory.get(["p"], "missing"))
        hits = memory.search(["p"], query="tea", filter={"rank": {"$gt": 3}}, limit=2)
        self.assertEqual(calls[-1], ("search", ["p"], "tea", '{"rank":{"$gt":3}}', 2))
        self.assertEqual((hits[0].score, hits[0].entry.key), (0.5, "k"))
        self.assertEqual(memory.append_items("conv_1", [{"type": "message"}, {"type": "message"}]), ["msg_0", "msg_1"])
        with self.assertRaises(memory.MemoryRefused) as gone:
            memory.append_items("conv_gone", [])
        self.assertEqual(gone.exception.kind, "not-found")


class ProviderGlueTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bindings = Bindings("provider-plugin")
        cls.types = importlib.import_module("wit_world.imports.types")
        cls.provider = importlib.import_module("wit_world.exports.provider")
        cls.Err = importlib.import_module("componentize_py_types").Err
        aigw = importlib.import_module("aigw_plugin")
        from aigw_plugin.openai import Compatible

        class Local(Compatible):
            def describe(self):
                return aigw.Descriptor("local", "0.1.0", "http://127.0.0.1:8000/v1", credential_required=False, models=["m"])

        cls.export = aigw.export_provider(Local)()
        cls.StreamDecoder = importlib.import_module("aigw_plugin.export").StreamDecoder

    @classmethod
    def tearDownClass(cls):
        cls.bindings.close()

    def test_describe_and_encode(self):
        descriptor = self.export.describe()
        self.assertIsInstance(descriptor, self.provider.Descriptor)
        self.assertIsInstance(descriptor.credential, self.types.CredentialPlacement_Header)
        self.assertEqual(descriptor.credential.value, self.types.HeaderCredential("authorization", "Bearer "))
        request = self.export.encode(self.provider.Target("http://h/v1", "m2"), '{"messages":[]}')
        self.assertIsInstance(request, self.types.HttpRequest)
        self.assertEqual((request.url, json.loads(request.body)["model"]), ("http://h/v1/chat/completions", "m2"))
        with self.assertRaises(self.Err) as raised:
            self.export.encode(self.provider.Target("http://h/v1", "m"), "[]")
        self.assertIsInstance(raised.exception.value, self.types.Failure_InvalidRequest)

    def test_decode_gives_a_step_or_the_classified_failure(self):
        target = self.provider.Target("http://h/v1", "m")
        body = b'{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}'
        step = self.export.decode(target, self.types.HttpResponse(200, [], body))
        self.assertIsInstance(step, self.provider.Step_Done)
        self.assertEqual(step.value.usage, self.types.Usage(1, 2, 3))
        with self.assertRaises(self.Err) as raised:
            self.export.decode(target, self.types.HttpResponse(429, [self.types.Header("retry-after", "9")], b'{"error":{"message":"slow"}}'))
        self.assertEqual(raised.exception.value, self.types.Failure_RateLimited(self.types.RateLimit(9, "slow")))

    def test_the_stream_decoder_resource(self):
        head = self.provider.ResponseHead(200, [self.types.Header("content-type", "text/event-stream")])
        decoder = self.StreamDecoder(self.provider.Target("http://h/v1", "m"), head)
        chunks = decoder.feed(b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\ndata: [DO')
        self.assertEqual(len(chunks), 1)
        self.assertIsInstance(chunks[0], self.provider.Chunk)
        self.assertEqual(decoder.feed(b"NE]\n\n"), [])
        self.assertEqual(decoder.finish(), self.provider.StreamEnd_Done([]))
        cut = self.StreamDecoder(self.provider.Target("http://h/v1", "m"), head)
        with self.assertRaises(self.Err) as raised:
            cut.finish()
        self.assertEqual(raised.exception.value, self.types.Failure_Unavailable("stream ended before completion"))


if __name__ == "__main__":
    unittest.main()
