"""The generic OpenAI-compatible provider in Python: any server speaking the OpenAI
chat-completions API (vLLM, Ollama, llama.cpp server, LM Studio). The SDK's dialect as is, the
twin of plugins/providers/openai-compatible (Rust): the same descriptor but its name."""

from aigw_plugin import CredentialPlacement, Descriptor, export_provider
from aigw_plugin.openai import Compatible


class OpenAiCompatible(Compatible):
    def describe(self) -> Descriptor:
        return Descriptor(
            name="openai-compatible-python",
            version="0.1.0",
            # vLLM's default; the operator configures the real server.
            default_base_url="http://127.0.0.1:8000/v1",
            credential=CredentialPlacement.bearer(),
            # Local servers usually run without a key.
            credential_required=False,
        )


Provider = export_provider(OpenAiCompatible)
