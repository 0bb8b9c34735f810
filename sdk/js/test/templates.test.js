// The JS project templates (sdk/templates/js/<kind>/) as `aigw plugin new` writes them: every
// placeholder replaced, the SDK vendored beside app.js, and the project's own tests passing
// under plain `node --test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const sdk = join(here, "..", "aigw-plugin.js");
const templates = join(here, "..", "..", "templates", "js");

function render(kind, name) {
  const project = mkdtempSync(join(tmpdir(), `aigw-js-${kind}-`));
  const values = { name, crate: name.replaceAll("-", "_"), class: name.split("-").map((w) => w[0].toUpperCase() + w.slice(1)).join("") };
  for (const file of readdirSync(join(templates, kind))) {
    const text = readFileSync(join(templates, kind, file), "utf8").replace(/\{\{(\w+)\}\}/g, (_, key) => {
      assert.ok(key in values, `${kind}/${file}: unknown placeholder {{${key}}}`);
      return values[key];
    });
    writeFileSync(join(project, file), text);
  }
  copyFileSync(sdk, join(project, "aigw-plugin.js"));
  return project;
}

for (const kind of ["provider", "tool"]) {
  test(`the ${kind} template's own tests pass in a fresh project`, () => {
    const project = render(kind, `my-${kind}`);
    try {
      const manifest = readFileSync(join(project, "aigw-plugin.toml"), "utf8");
      assert.match(manifest, new RegExp(`^name = "my-${kind}"$`, "m"));
      assert.match(manifest, new RegExp(`^kind = "${kind}"$`, "m"));
      assert.match(manifest, /^lang = "js"$/m);
      // Throws (with the child's output) when any of the project's tests fails.
      // A fresh runner: without NODE_TEST_CONTEXT the child does not take itself for a subtest.
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const out = execFileSync(process.execPath, ["--test"], { cwd: project, encoding: "utf8", env });
      assert.match(out, /# fail 0/);
      assert.doesNotMatch(out, /# pass 0\b/);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
}
