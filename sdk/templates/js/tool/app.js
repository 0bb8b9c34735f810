// The {{name}} tool plugin: a tool agents can call, over one upstream HTTP API. Built into a
// WebAssembly component of the `tool-plugin` world (`aigw plugin build`). The plugin builds the
// upstream requests and reads the answers; the host sends them (`outbound`), only to the
// endpoints of the upstream a call is for, and adds that upstream's key itself.
//
// `aigw-plugin.js` is the SDK, vendored by `aigw plugin new` (the guide:
// docs/plugins/javascript.md).

import outbound from "aigw:plugin/outbound@0.1.0";
import { Args, answer, credential, failure, httpClient, schema, toolPlugin, toolSpec, url } from "./aigw-plugin.js";

const http = httpClient(outbound);

const UPSTREAM = "{{name}}";
const ENDPOINT = "base";

const lookupSpec = () =>
  toolSpec({
    // Unique in the gateway: start it with the plugin's subject.
    name: "{{crate}}_lookup",
    title: "Look something up",
    description: "Looks up a term and returns what the upstream knows about it.",
    parameters: schema.object({ query: schema.text("What to look up", 200) }, ["query"]),
    output: schema.object({ query: schema.string("The term asked for"), answer: schema.string("What was found") }, [
      "query",
      "answer",
    ]),
    // The host answers equal arguments from its cache this long.
    cacheTtlSeconds: 300,
  });

export const tool = toolPlugin({
  describe: () => ({
    name: "{{name}}",
    version: "0.1.0",
    tools: [lookupSpec()],
    upstreams: [
      {
        name: UPSTREAM,
        endpoints: [{ name: ENDPOINT, url: "https://api.example.com" }],
        credential: credential.bearer(),
        credentialRequired: false,
      },
    ],
  }),

  invoke(name, rawArgs, target) {
    if (name !== "{{crate}}_lookup") {
      throw failure.invalidRequest(`{{name}} has no tool named ${JSON.stringify(name)}`);
    }
    const query = new Args(rawArgs).requiredString("query");
    // `answer.json` throws the classified failure of a bad answer (429, 401, 5xx, HTML…), so the
    // host fails over to the next upstream or tells the caller.
    const body = answer.json("{{name}}", http.get(url(target.endpoint(ENDPOINT), "/v1/lookup", { q: query })));
    if (typeof body.answer !== "string") {
      throw failure.badResponse(`{{name}} answered without an "answer"`);
    }
    return { query, answer: body.answer };
  },
});
