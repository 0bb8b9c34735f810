"""{{name}}: a tool plugin on aigw_plugin (the Python SDK).

One tool, `{{crate}}_lookup`, over one upstream, `example`: it sends `GET <base>/v1/lookup?q=…`
and returns what the upstream found. The host validates the arguments against the schema before
`invoke`, sends the request only to the upstream's endpoints, adds its key there, and fails over
on the failure classes `answer.json_body` raises (rate limited, bad key, unavailable).
"""

from typing import Any, Dict

from aigw_plugin import Args, CredentialPlacement, NamedUrl, ToolPlugin, ToolTarget, Upstream
from aigw_plugin import Failure, answer, export_tool, http, schema, tool
from aigw_plugin.query import Url


class {{class}}(ToolPlugin):
    name = "{{name}}"
    version = "0.1.0"
    upstreams = [
        Upstream(
            "example",
            [NamedUrl("base", "https://api.example.com")],
            credential=CredentialPlacement.header("x-api-key"),
            credential_required=True,
        )
    ]

    @tool(
        name="{{crate}}_lookup",
        title="Look something up",
        description="Looks up a term and returns what the example API knows about it.",
        parameters=schema.object({"query": schema.text("What to look up", 200)}, ["query"]),
        output=schema.object(
            {"query": schema.string("The term"), "answer": schema.nullable_string("What was found")},
            ["query", "answer"],
        ),
        cache_ttl_seconds=300,
    )
    def lookup(self, args: Args, target: ToolTarget) -> Dict[str, Any]:
        query = args.required_string("query")
        url = Url(target.endpoint("base"), "/v1/lookup").param("q", query).build()
        body = answer.json_body("example", http.get(url))
        if not isinstance(body, dict):
            raise Failure.bad_response("example answered something other than a JSON object")
        found = body.get("answer")
        return {"query": query, "answer": found if isinstance(found, str) else None}


Tool = export_tool({{class}})
