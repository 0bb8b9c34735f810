"""The gateway over HTTPS as the official OpenAI Python SDK sees it.

Run by tests/tests/tls.rs against a live gateway serving TLS:
  AIGW_BASE_URL  the gateway's https://.../v1 URL
  AIGW_CA_FILE   the PEM of the CA that issued the gateway's certificate
  AIGW_MODEL     a model answering "mock reply to: <last user message>"
Prints one `ok ...` line per check; any failure exits non-zero.
"""

import os

import httpx
import openai
from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
CA_FILE = os.environ["AIGW_CA_FILE"]
MODEL = os.environ.get("AIGW_MODEL", "fast")

assert BASE_URL.startswith("https://"), BASE_URL

client = OpenAI(
    base_url=BASE_URL,
    api_key="dummy-key-the-gateway-ignores",
    max_retries=0,
    timeout=30,
    http_client=httpx.Client(verify=CA_FILE),
)


def non_stream():
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello tls"}]
    )
    assert r.choices[0].message.content == "mock reply to: hello tls", r


def stream():
    chunks = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "streamed tls"}],
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "mock reply to: streamed tls", text


def untrusted():
    # The system's roots do not include the test CA: the SDK must refuse the certificate.
    bare = OpenAI(
        base_url=BASE_URL, api_key="dummy", max_retries=0, timeout=30, http_client=httpx.Client()
    )
    try:
        bare.models.list()
    except openai.APIConnectionError:
        return
    raise AssertionError("a client without the CA connected")


for name, check in [
    ("https non-stream", non_stream),
    ("https stream", stream),
    ("untrusted certificate refused", untrusted),
]:
    check()
    print(f"ok {name}", flush=True)
