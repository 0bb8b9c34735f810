"""Virtual keys as the official OpenAI Python SDK sees them.

Run by tests/tests/keys.rs against a live gateway with authentication on:
  AIGW_BASE_URL      the gateway's /v1 URL
  AIGW_MODEL         a model answering "mock reply to: <last user message>"
  AIGW_KEY           a key that may use every model
  AIGW_NARROW_KEY    a key that may use only AIGW_NARROW_MODEL (a `provider/*` grant)
  AIGW_NARROW_MODEL  the one listed model the narrow key may use
  AIGW_REVOKED_KEY   a key revoked through the admin API
  AIGW_ROTATED_OLD   the old secret of a key rotated through the admin API
  AIGW_ROTATED_NEW   its new secret
  AIGW_ADMIN_KEY     the admin key (refused on client calls)
Prints one `ok ...` line per check; any failure exits non-zero.
"""

import os

import openai
from openai import OpenAI

BASE_URL = os.environ["AIGW_BASE_URL"]
MODEL = os.environ["AIGW_MODEL"]
NARROW_MODEL = os.environ["AIGW_NARROW_MODEL"]


def client(key):
    return OpenAI(base_url=BASE_URL, api_key=key, max_retries=0, timeout=30)


def chat(key, model=MODEL, text="hello keys"):
    return client(key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )


def refused(error_class, key, model=MODEL):
    try:
        chat(key, model)
    except error_class as e:
        return e
    raise AssertionError(f"{error_class.__name__} expected")


def with_a_key():
    r = chat(os.environ["AIGW_KEY"])
    assert r.choices[0].message.content == "mock reply to: hello keys", r
    print("ok chat with a virtual key")


def models_per_key():
    every = [m.id for m in client(os.environ["AIGW_KEY"]).models.list()]
    assert MODEL in every and NARROW_MODEL in every, every
    narrow = [m.id for m in client(os.environ["AIGW_NARROW_KEY"]).models.list()]
    assert NARROW_MODEL in narrow, narrow
    assert MODEL not in narrow, narrow
    provider = NARROW_MODEL.split("/")[0] + "/"
    assert all(m.startswith(provider) for m in narrow), narrow
    print("ok models listed per key")


def wrong_key():
    for key in ["sk-aigw-wrongwrongwrongwrongwrongwrongwrongwrong123", "not-even-ours"]:
        e = refused(openai.AuthenticationError, key)
        assert e.status_code == 401, e
        assert e.code == "invalid_api_key", e.body
        assert key not in str(e.body), e.body
        assert e.response.headers.get("www-authenticate") == "Bearer", e.response.headers
    print("ok wrong key is AuthenticationError")


def model_not_granted():
    e = refused(openai.PermissionDeniedError, os.environ["AIGW_NARROW_KEY"])
    assert e.status_code == 403, e
    assert e.code == "model_not_allowed", e.body
    assert "aigw" in e.message, e.message
    r = chat(os.environ["AIGW_NARROW_KEY"], NARROW_MODEL)
    assert r.choices[0].message.content == "mock reply to: hello keys", r
    print("ok model not granted is PermissionDeniedError")


def revoked():
    e = refused(openai.AuthenticationError, os.environ["AIGW_REVOKED_KEY"])
    assert e.code == "invalid_api_key", e.body
    print("ok revoked key is AuthenticationError")


def rotated():
    e = refused(openai.AuthenticationError, os.environ["AIGW_ROTATED_OLD"])
    assert e.code == "invalid_api_key", e.body
    r = chat(os.environ["AIGW_ROTATED_NEW"])
    assert r.choices[0].message.content == "mock reply to: hello keys", r
    print("ok rotated key: the old secret stops, the new one works")


def admin_key_on_a_client_call():
    e = refused(openai.AuthenticationError, os.environ["AIGW_ADMIN_KEY"])
    assert e.code == "invalid_api_key", e.body
    assert "admin key" in e.message, e.message
    assert os.environ["AIGW_ADMIN_KEY"] not in str(e.body), e.body
    print("ok admin key is refused on client calls")


with_a_key()
models_per_key()
wrong_key()
model_not_granted()
revoked()
rotated()
admin_key_on_a_client_call()
