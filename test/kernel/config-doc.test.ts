// docs/config.md is what the code gives now: every component's settings, each with the doc
// comment of its option (`npm run docs:config` rewrites it).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { configDoc, optionDocs } from "../../kernel/config-doc.js";
import { projectRoot } from "../../kernel/paths.js";

t.test("docs/config.md is what npm run docs:config writes now", async (t) => {
  // The script formats what it writes with Biome (aligned tables); the same formatter here.
  const formatted = spawnSync(
    join(projectRoot, "node_modules", ".bin", "biome"),
    ["format", "--stdin-file-path=docs/config.md"],
    { input: configDoc(), encoding: "utf8" },
  );
  t.equal(formatted.status, 0, formatted.stderr);
  const doc = readFileSync(join(projectRoot, "docs", "config.md"), "utf8");
  t.equal(doc, formatted.stdout, "docs/config.md is stale: run npm run docs:config");
  for (const name of ["KILN_DATA_DIR", "KILN_ROUTER_THREADS", "KILN_CC_DOMAIN", "KILN_DEA_ISOLATION"])
    t.ok(doc.includes(`\`${name}\``), `${name} is listed`);
  t.notOk(doc.includes("stopTimeoutMs"), "a default no one can set is not listed");
});

t.test("an option without a doc comment is refused", async (t) => {
  const source = "export interface C {\n  /** Documented. */\n  a: number;\n  b: string;\n}\n";
  t.throws(() => optionDocs(source, "C"), /C\.b has no doc comment/);
  t.same(
    [...optionDocs(source.replace("  b: string;", "  /** Also\n   * documented. */\n  b: string;"), "C")],
    [
      ["a", "Documented."],
      ["b", "Also documented."],
    ],
  );
  t.throws(() => optionDocs(source, "Missing"), /no interface Missing/);
});
