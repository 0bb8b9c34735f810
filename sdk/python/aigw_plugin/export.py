"""Exporting a plain-Python provider or tool as the component's ``aigw:plugin`` interface.

componentize-py looks for the export's class in the app module under the interface's PascalCase
name, so ``app.py`` ends with ``Provider = export_provider(MyProvider)`` or
``Tool = export_tool(MyTools)``. A provider project also has a ``provider.py`` module (the
interface's name) holding the ``StreamDecoder`` resource's class:
``from aigw_plugin.export import StreamDecoder``.

Everything the glue needs at run time is imported while ``app.py`` runs (``export_provider``
and ``export_tool`` import it): componentize-py snapshots the interpreter at build time, and the
component has no filesystem to import from afterwards.

The glue converts types with :mod:`aigw_plugin.wit` and turns a raised
:class:`~aigw_plugin.types.Failure` into the WIT error. Any other exception is a bug in the
plugin: it traps the call (the host answers it as the plugin's fault and replaces the instance),
as a panic does in a Rust plugin.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Type

from . import types as plain
from .provider import Provider
from .tool import ToolPlugin

_provider: Optional[Provider] = None
#: `wit_world.exports.provider` and `aigw_plugin.wit`, kept by `export_provider` for the stream
#: decoder's calls (they cannot be imported on a request: see above).
_wit_provider: Any = None
_wit: Any = None


def export_provider(cls: Type[Provider]) -> type:
    """The class componentize-py calls for the ``provider`` interface, over an instance of
    ``cls``."""
    from wit_world import exports
    from wit_world.exports import provider as wit_provider

    from . import wit

    global _provider, _wit_provider, _wit
    _provider = cls()
    _wit_provider, _wit = wit_provider, wit
    implementation = _provider

    class ProviderExport(exports.Provider):
        def describe(self) -> Any:
            d = implementation.describe()
            return wit_provider.Descriptor(
                d.name,
                d.version,
                d.default_base_url,
                list(d.origins),
                wit.credential(d.credential),
                d.credential_required,
                list(d.models),
            )

        def encode(self, t: Any, request_json: str) -> Any:
            target = plain.Target(t.base_url, t.model)
            request = _call(lambda: implementation.encode(target, request_json), wit)
            return wit.http_request(request)

        def decode(self, t: Any, response: Any) -> Any:
            target = plain.Target(t.base_url, t.model)
            answer = wit.plain_http_response(response)
            step = _call(lambda: implementation.decode(target, answer), wit)
            if isinstance(step, plain.FollowRequest):
                return wit_provider.Step_Follow(_follow(step, wit, wit_provider))
            return wit_provider.Step_Done(
                wit_provider.Completion(step.json, wit.usage(step.usage))
            )

    ProviderExport.__name__ = "Provider"
    return ProviderExport


def _follow(step: plain.FollowRequest, wit: Any, wit_provider: Any) -> Any:
    return wit_provider.FollowRequest(wit.http_request(step.request), max(0, int(step.after_ms)))


def _call(run: Callable[[], Any], wit: Any) -> Any:
    try:
        return run()
    except plain.Failure as failure:
        raise wit.err(failure) from None


def _stream_decoder_base() -> type:
    try:
        from wit_world.exports import provider as wit_provider
    except ImportError:  # outside a provider component: nothing to export
        return object
    return wit_provider.StreamDecoder


class StreamDecoder(_stream_decoder_base()):  # type: ignore[misc]
    """The ``stream-decoder`` resource: a decoder from the exported provider's
    ``stream_decoder``, fed and finished through the WIT types."""

    def __init__(self, t: Any, head: Any) -> None:
        if _provider is None:
            raise RuntimeError("export_provider() was not called in app.py")
        target = plain.Target(t.base_url, t.model)
        response_head = plain.ResponseHead(head.status, [plain.Header(h.name, h.value) for h in head.headers])
        self._decoder = _provider.stream_decoder(target, response_head)

    def feed(self, piece: bytes) -> Any:
        chunks = _call(lambda: self._decoder.feed(bytes(piece)), _wit)
        return [_wit_provider.Chunk(c.json, _wit.usage(c.usage)) for c in chunks]

    def finish(self) -> Any:
        end = _call(self._decoder.finish, _wit)
        if isinstance(end, plain.FollowRequest):
            return _wit_provider.StreamEnd_Follow(_follow(end, _wit, _wit_provider))
        return _wit_provider.StreamEnd_Done(
            [_wit_provider.Chunk(c.json, _wit.usage(c.usage)) for c in end]
        )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def export_tool(cls: Type[ToolPlugin]) -> type:
    """The class componentize-py calls for the ``tool`` interface, over an instance of ``cls``."""
    from wit_world import exports
    from wit_world.exports import tool as wit_tool

    from . import wit

    implementation = cls()

    class ToolExport(exports.Tool):
        def describe(self) -> Any:
            d = implementation.describe()
            return wit_tool.Descriptor(
                d.name,
                d.version,
                [
                    wit_tool.ToolSpec(
                        spec.name,
                        spec.title,
                        spec.description,
                        _compact(spec.parameters),
                        _compact(spec.output) if spec.output is not None else None,
                        spec.cache_ttl_seconds,
                    )
                    for spec in d.tools
                ],
                [
                    wit_tool.Upstream(
                        u.name,
                        [wit.named_url(e) for e in u.endpoints],
                        wit.credential(u.credential),
                        u.credential_required,
                    )
                    for u in d.upstreams
                ],
            )

        def invoke(self, name: str, args_json: str, target: Any) -> str:
            def run() -> str:
                try:
                    args = json.loads(args_json)
                except ValueError as error:
                    raise plain.Failure.invalid_request(
                        f"the arguments are not valid JSON: {error}"
                    ) from None
                call_target = plain.ToolTarget(
                    target.upstream, [plain.NamedUrl(e.name, e.url) for e in target.endpoints]
                )
                return _compact(implementation.invoke(name, args, call_target))

            return _call(run, wit)

    ToolExport.__name__ = "Tool"
    return ToolExport
