// Every coded error is unique across areas and documented in docs/errors.md.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import t from "tap";
import { allCodes, defineCodes } from "../../kernel/errors.js";
import { distPath, projectRoot } from "../../kernel/paths.js";

const areas = ["kernel", "native", "messaging", "router", "control", "dea", "hm", "cli", "bench"];

function errorModules(): string[] {
  const found: string[] = [];
  for (const area of areas) {
    const walk = (dir: string) => {
      let entries: import("node:fs").Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory() && e.name !== "generated") walk(p);
        // Found among the sources (what exists), loaded compiled (what runs).
        else if (e.name === "errors.ts")
          found.push(distPath(relative(projectRoot, p)).replace(/\.ts$/, ".js"));
      }
    };
    walk(join(projectRoot, area));
  }
  return found;
}

t.test("every area's codes load together without a clash", async (t) => {
  const modules = errorModules();
  t.ok(modules.length >= 3, `found ${modules.map((m) => relative(projectRoot, m)).join(", ")}`);
  for (const m of modules) await import(m);
  t.ok(allCodes().size > 0);
});

t.test("a second definition of a code is refused", async (t) => {
  const [code] = [...allCodes().keys()];
  t.throws(() => defineCodes("test", { [code as string]: { summary: "again" } }), /already defined/);
  t.throws(() => defineCodes("test", { kiln_lower: { summary: "bad form" } }), /not of the form/);
});

t.test("every code is documented in docs/errors.md with its summary", async (t) => {
  for (const m of errorModules()) await import(m);
  const doc = readFileSync(join(projectRoot, "docs", "errors.md"), "utf8");
  for (const [code, spec] of allCodes()) {
    t.ok(doc.includes(`\`${code}\``), `${code} is listed`);
    t.ok(spec.summary.length > 10, `${code} has a summary a user can act on`);
  }
});
