// The generic OpenAI-compatible provider plugin in JavaScript: the twin of
// `plugins/providers/openai-compatible` (Rust), for any server speaking the OpenAI
// chat-completions API (vLLM, Ollama, llama.cpp server, LM Studio). The SDK's translator as is:
// it tolerates servers that never send usage or omit `[DONE]` (a `finish_reason` ends a stream).

import { compatibleProvider, credential } from "./aigw-plugin.js";

export const provider = compatibleProvider({
  describe: () => ({
    name: "openai-compatible-js",
    version: "0.1.0",
    // vLLM's default; the operator configures the real server.
    defaultBaseUrl: "http://127.0.0.1:8000/v1",
    origins: [],
    credential: credential.bearer(),
    // Local servers usually run without a key.
    credentialRequired: false,
    models: [],
  }),
});
