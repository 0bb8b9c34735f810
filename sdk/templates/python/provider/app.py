"""{{name}}: a provider plugin for an OpenAI-compatible API, on aigw_plugin (the Python SDK).

The SDK's dialect does the work: `encode` points the client's request at
`<base URL>/chat/completions` with the target's model (the host adds the credential), `decode`
passes a completion through or classifies the error, and the stream decoder turns the SSE body
into chunks. Override a hook (`adjust_request`, `classify`, `stream_usage`, `stream_error`) where
your API differs from OpenAI.
"""

from typing import Any, Dict

from aigw_plugin import CredentialPlacement, Descriptor, Failure, export_provider
from aigw_plugin.openai import Compatible


class {{class}}(Compatible):
    def describe(self) -> Descriptor:
        return Descriptor(
            name="{{name}}",
            version="0.1.0",
            # Where requests go when the operator sets no `base_url`.
            default_base_url="https://api.example.com/v1",
            credential=CredentialPlacement.bearer(),
            credential_required=True,
            models=[],
        )

    def adjust_request(self, body: Dict[str, Any]) -> None:
        # Refuse here what the upstream would 400 on, with a clear message.
        if body.get("n", 1) != 1:
            raise Failure.invalid_request("{{name}} answers one choice per request (n = 1)")


Provider = export_provider({{class}})
