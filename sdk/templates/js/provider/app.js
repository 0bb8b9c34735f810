// The {{name}} provider plugin: translates between the OpenAI chat-completions API and an
// OpenAI-compatible upstream. Built into a WebAssembly component of the `provider-plugin` world
// (`aigw plugin build`); the gateway loads it and does all the I/O. The plugin never sees the
// credential: the host adds it where `credential` says.
//
// `aigw-plugin.js` is the SDK, vendored by `aigw plugin new` (the guide:
// docs/plugins/javascript.md). Every hook below but `describe` is optional.

import { compatibleProvider, credential, failure } from "./aigw-plugin.js";

export const provider = compatibleProvider({
  describe: () => ({
    name: "{{name}}",
    version: "0.1.0",
    // Where requests go when the operator sets no `base_url`.
    defaultBaseUrl: "https://api.example.com/v1",
    origins: [],
    credential: credential.bearer(),
    credentialRequired: true,
    models: [],
  }),

  // Check or rewrite the request body (already pointed at the target's model). Refuse what the
  // upstream would reject with a clear reason; the client hears it as a 400.
  adjustRequest(body) {
    if (body.n !== undefined && body.n !== 1) {
      throw failure.invalidRequest("{{name}} answers one choice per request (`n` must be 1)");
    }
  },
});
