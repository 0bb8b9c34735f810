"""The OpenAI-compatible dialect: encode (URL, model, stream options, nothing else touched, no
credential), decode (a completion passed through, errors classified), the stream decoder (split
anywhere, `[DONE]` or a finish reason ends it, usage chunks, error frames, a JSON answer to a
streamed request replayed), and the tool helpers (query encoding, arguments, schemas)."""

import json
import unittest

from aigw_plugin import Args, CredentialPlacement, Descriptor, Failure, ToolPlugin, ToolTarget, tool
from aigw_plugin import schema
from aigw_plugin.openai import Compatible
from aigw_plugin.query import Url, encode, number
from aigw_plugin.types import HttpResponse, Header, NamedUrl, ResponseHead, Target


class Local(Compatible):
    def describe(self):
        return Descriptor("local", "0.1.0", "http://127.0.0.1:8000/v1", credential_required=False)


TARGET = Target("http://127.0.0.1:11434/v1/", "llama3.2")
SSE = ResponseHead(200, [Header("content-type", "text/event-stream")])
JSON = ResponseHead(200, [Header("content-type", "application/json; charset=utf-8")])


def chunk(content=None, finish=None, usage="absent"):
    frame = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "llama3.2",
        "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    if usage != "absent":
        frame["usage"] = usage
    return "data: " + json.dumps(frame) + "\n\n"


USAGE = 'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"llama3.2","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}\n\n'
STREAM = chunk("Hel") + chunk("lo", "stop") + USAGE + "data: [DONE]\n\n"


def decode(body, head=SSE, piece=5):
    decoder = Local().stream_decoder(TARGET, head)
    data = body.encode()
    chunks = []
    for at in range(0, len(data), piece):
        chunks.extend(decoder.feed(data[at : at + piece]))
    chunks.extend(decoder.finish())
    return chunks


class EncodeTest(unittest.TestCase):
    def test_only_the_model_changes_and_no_credential_is_added(self):
        request = Local().encode(
            TARGET,
            '{"model":"local","messages":[{"role":"user","content":"hi","name":"bob"}],"logprobs":true,"n":2}',
        )
        self.assertEqual(request.method, "POST")
        self.assertEqual(request.url, "http://127.0.0.1:11434/v1/chat/completions")
        self.assertEqual(
            json.loads(request.body),
            {"model": "llama3.2", "messages": [{"role": "user", "content": "hi", "name": "bob"}], "logprobs": True, "n": 2},
        )
        self.assertEqual([h.name for h in request.headers], ["content-type"])

    def test_a_stream_asks_for_usage_and_events(self):
        request = Local().encode(TARGET, '{"messages":[],"stream":true,"stream_options":"junk"}')
        body = json.loads(request.body)
        self.assertEqual(body["stream_options"], {"include_usage": True})
        self.assertEqual(request.header("accept"), "text/event-stream")

    def test_bad_json_is_the_clients_mistake(self):
        for text in ("{", "[1]"):
            with self.assertRaises(Failure) as raised:
                Local().encode(TARGET, text)
            self.assertEqual(raised.exception.kind, "invalid-request")


class DecodeTest(unittest.TestCase):
    def test_a_completion_passes_through_with_its_usage(self):
        body = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hé"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":1}}'
        completion = Local().decode(TARGET, HttpResponse(200, [], body.encode()))
        self.assertEqual(completion.json, body)
        self.assertEqual((completion.usage.prompt_tokens, completion.usage.total_tokens), (4, 5))

    def test_errors_are_classified(self):
        vllm = '{"object":"error","message":"This model\'s maximum context length is 4096 tokens. Please reduce the length of the messages or completion.","type":"BadRequestError","code":400}'
        with self.assertRaises(Failure) as raised:
            Local().decode(TARGET, HttpResponse(400, [], vllm.encode()))
        self.assertEqual(raised.exception.kind, "context-length-exceeded")
        with self.assertRaises(Failure) as in_200:
            Local().decode(TARGET, HttpResponse(200, [], b'{"error":{"message":"busy","code":503}}'))
        self.assertEqual(in_200.exception, Failure.unavailable("busy"))
        with self.assertRaises(Failure) as no_choices:
            Local().decode(TARGET, HttpResponse(200, [], b'{"id":"x"}'))
        self.assertEqual(no_choices.exception.kind, "bad-response")


class StreamTest(unittest.TestCase):
    def test_chunks_pass_verbatim_and_the_usage_chunk_is_marked(self):
        for piece in (1, 3, 7, 1000):
            chunks = decode(STREAM, piece=piece)
            self.assertEqual(len(chunks), 3, piece)
            self.assertEqual(chunks[0].json, chunk("Hel")[6:-2])
            self.assertIsNone(chunks[0].usage)
            self.assertEqual(chunks[2].usage.total_tokens, 5)

    def test_finish_reason_without_done_is_complete_but_a_cut_is_not(self):
        self.assertEqual(len(decode(chunk("Hel") + chunk("lo", "stop"))), 2)
        with self.assertRaises(Failure) as raised:
            decode(chunk("Hel"))
        self.assertEqual(raised.exception, Failure.unavailable("stream ended before completion"))

    def test_nothing_after_done_counts(self):
        self.assertEqual(len(decode(STREAM + chunk("late"))), 3)

    def test_an_error_frame_is_a_failure(self):
        frame = 'data: {"error":{"message":"Rate limit reached","type":"tokens","code":"rate_limit_exceeded"}}\n\n'
        with self.assertRaises(Failure) as raised:
            decode(chunk("Hel") + frame)
        self.assertEqual(raised.exception.kind, "rate-limited")
        with self.assertRaises(Failure) as garbage:
            decode("data: {not json\n\n")
        self.assertEqual(garbage.exception.kind, "bad-response")

    def test_usage_riding_on_a_content_chunk_becomes_a_usage_chunk_at_the_end(self):
        usage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        chunks = decode(chunk("Hi", "stop", usage) + "data: [DONE]\n\n")
        self.assertEqual(len(chunks), 2)
        self.assertIsNone(json.loads(chunks[0].json)["usage"])
        self.assertIsNone(chunks[0].usage)
        self.assertEqual(json.loads(chunks[1].json)["choices"], [])
        self.assertEqual(chunks[1].usage.total_tokens, 3)

    def test_a_json_answer_to_a_stream_is_replayed_as_chunks(self):
        body = '{"id":"c8","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
        chunks = decode(body, JSON, 6)
        self.assertEqual(len(chunks), 2)
        first = json.loads(chunks[0].json)
        self.assertEqual(first["object"], "chat.completion.chunk")
        self.assertEqual(first["choices"][0]["delta"]["content"], "Hello")
        self.assertEqual(first["choices"][0]["delta"]["tool_calls"][0]["index"], 0)
        self.assertEqual(first["choices"][0]["finish_reason"], "stop")
        self.assertEqual(chunks[1].usage.total_tokens, 4)


class Echo(ToolPlugin):
    name = "echo"

    @tool(name="echo_city", title="Echo", description="Echoes", parameters=schema.object({"city": schema.text("A city", 20)}, ["city"]))
    def city(self, args, target):
        return {"city": args.required_string("city"), "url": Url(target.endpoint("base"), "/v1").param("q", args.required_string("city")).build()}


class ToolHelpersTest(unittest.TestCase):
    def test_query_values_cannot_add_parameters_or_change_the_path(self):
        self.assertEqual(encode("São Paulo"), "S%C3%A3o%20Paulo")
        self.assertEqual(encode("a&b=c/d?e#f+g"), "a%26b%3Dc%2Fd%3Fe%23f%2Bg")
        url = Url("http://h/", "/v1/search").param("name", "New York").param_opt("x", None).build()
        self.assertEqual(url, "http://h/v1/search?name=New%20York")
        self.assertEqual(Url("http://h/b?x=1", "").param("y", "2").build(), "http://h/b?x=1&y=2")
        self.assertEqual((number(48.0), number(2.35), number(-0.5)), ("48", "2.35", "-0.5"))

    def test_arguments_name_the_field(self):
        args = Args({"city": "Berlin", "blank": "  ", "days": 20, "n": "3", "f": 7.0, "unit": "kelvin"})
        self.assertEqual(args.required_string("city"), "Berlin")
        self.assertIsNone(args.string("missing"))
        for check, text in [
            (lambda: args.string("blank"), '"blank"'),
            (lambda: args.integer("days", 1, 16), "from 1 to 16"),
            (lambda: args.integer("n", 1, 5), '"n"'),
            (lambda: args.integer("f", 1, 9), '"f"'),
            (lambda: args.number("n", -90, 90), "from -90 to 90"),
            (lambda: args.one_of("unit", ["celsius", "fahrenheit"]), "celsius, fahrenheit"),
        ]:
            with self.assertRaises(Failure) as raised:
                check()
            self.assertEqual(raised.exception.kind, "invalid-request")
            self.assertIn(text, raised.exception.message)
        with self.assertRaises(Failure) as missing:
            args.required_string("query")
        self.assertEqual(missing.exception, Failure.invalid_request('argument "query" is required'))

    def test_a_tool_plugin_describes_and_dispatches(self):
        plugin = Echo()
        descriptor = plugin.describe()
        self.assertEqual([t.name for t in descriptor.tools], ["echo_city"])
        self.assertFalse(descriptor.tools[0].parameters["additionalProperties"])
        target = ToolTarget("u", [NamedUrl("base", "http://127.0.0.1:9/")])
        self.assertEqual(
            plugin.invoke("echo_city", {"city": "a&b"}, target),
            {"city": "a&b", "url": "http://127.0.0.1:9/v1?q=a%26b"},
        )
        with self.assertRaises(Failure) as unknown:
            plugin.invoke("nope", {}, target)
        self.assertEqual(unknown.exception, Failure.invalid_request('the echo plugin has no tool named "nope"'))
        with self.assertRaises(Failure) as no_endpoint:
            ToolTarget("u", []).endpoint("base")
        self.assertEqual(no_endpoint.exception.kind, "unavailable")

    def test_descriptor_defaults(self):
        descriptor = Local().describe()
        self.assertEqual(descriptor.credential, CredentialPlacement.bearer())
        self.assertEqual(descriptor.origins, [])


if __name__ == "__main__":
    unittest.main()
