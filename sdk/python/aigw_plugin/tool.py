"""Tool plugins in plain Python: the ``tool`` interface of ``wit/tool.wit``.

Subclass :class:`ToolPlugin`, give ``name``, ``version`` and ``upstreams``, and mark each tool
method with :func:`tool`; export it from ``app.py`` with ``Tool = export_tool(MyTools)``::

    class Weather(ToolPlugin):
        name = "weather"
        version = "0.1.0"
        upstreams = [Upstream("open-meteo", [NamedUrl("forecast", "https://api.open-meteo.com")])]

        @tool(name="weather_current", title="Current weather", description="…",
              parameters=schema.object({...}), output=schema.object({...}), cache_ttl_seconds=600)
        def current(self, args: Args, target: ToolTarget) -> dict:
            ...

A tool method gets the arguments (already checked against its schema by the host) and the
upstream the call is for, and returns the result object or raises a classified ``Failure``
(see :mod:`aigw_plugin.answer`) so the host can fail over. The plugin never sees a key: it
builds URLs only from ``target``'s endpoints and the host adds the upstream's credential.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .args import Args
from .types import Failure, ToolTarget, Upstream


@dataclass
class ToolSpec:
    """One tool a plugin offers."""

    name: str
    title: str
    description: str
    parameters: Dict[str, Any]
    output: Optional[Dict[str, Any]] = None
    cache_ttl_seconds: int = 0


@dataclass
class ToolDescriptor:
    """What a tool plugin says about itself."""

    name: str
    version: str
    tools: List[ToolSpec] = field(default_factory=list)
    upstreams: List[Upstream] = field(default_factory=list)


def tool(
    *,
    name: str,
    title: str,
    description: str,
    parameters: Dict[str, Any],
    output: Optional[Dict[str, Any]] = None,
    cache_ttl_seconds: int = 0,
) -> Callable[[Callable], Callable]:
    """Marks a method of a :class:`ToolPlugin` as the tool ``name``."""

    def mark(method: Callable) -> Callable:
        method.__aigw_tool__ = ToolSpec(  # type: ignore[attr-defined]
            name, title, description, parameters, output, cache_ttl_seconds
        )
        return method

    return mark


class ToolPlugin:
    """A tool plugin. The host reuses warm instances for any caller: keep no per-call state."""

    name: str = ""
    version: str = "0.1.0"
    upstreams: List[Upstream] = []

    def _tools(self) -> Dict[str, Callable]:
        """The marked methods by tool name, in definition order (base classes first)."""
        found: Dict[str, Callable] = {}
        for cls in reversed(type(self).__mro__):
            for attribute in vars(cls).values():
                spec = getattr(attribute, "__aigw_tool__", None)
                if isinstance(spec, ToolSpec):
                    found[spec.name] = attribute
        return found

    def describe(self) -> ToolDescriptor:
        specs = [method.__aigw_tool__ for method in self._tools().values()]
        return ToolDescriptor(self.name, self.version, specs, list(self.upstreams))

    def invoke(self, name: str, args: Any, target: ToolTarget) -> Dict[str, Any]:
        """Runs tool ``name``: the result object, or a raised ``Failure``."""
        method = self._tools().get(name)
        if method is None:
            raise Failure.invalid_request(
                f"the {self.name} plugin has no tool named {json.dumps(name)}"
            )
        return method(self, Args(args), target)
