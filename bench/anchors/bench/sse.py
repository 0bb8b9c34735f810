"""sse.py CHUNKS PATH: the mock's streamed answer, one role chunk, CHUNKS-2 content chunks, one
with finish_reason and usage, then [DONE] (bench-anchors.sh and callgrind.sh serve it as a static
body)."""
import json, sys
n, path = int(sys.argv[1]), sys.argv[2]
def chunk(delta, finish=None, usage=None):
    c = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "mock", "system_fingerprint": None,
         "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    return "data: " + json.dumps(c, separators=(",", ":")) + "\n\n"
body = chunk({"role": "assistant", "content": ""})
body += "".join(chunk({"content": "Hello from the mock. " if i == 0 else "word "}) for i in range(n - 2))
body += chunk({}, "stop", {"prompt_tokens": 8, "completion_tokens": n - 2, "total_tokens": n + 6})
body += "data: [DONE]\n\n"
open(path, "w").write(body)
