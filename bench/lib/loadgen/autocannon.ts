// autocannon (an npm devDependency) as the portable load generator when wrk is not installed.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { compiledSibling } from "../../../kernel/paths.js";
import { BenchError } from "../errors.js";
import { startProcess } from "../procs.js";
import type { LoadGenerator, LoadResult, LoadSpec } from "./types.js";

const MARK = "AUTOCANNON_JSON ";

export function parseAutocannonLine(output: string): LoadResult | undefined {
  const line = output.split("\n").find((l) => l.startsWith(MARK));
  if (line === undefined) return undefined;
  try {
    const v = JSON.parse(line.slice(MARK.length)) as LoadResult;
    return typeof v.requests === "number" ? v : undefined;
  } catch {
    return undefined;
  }
}

function autocannonVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    const pkg = JSON.parse(readFileSync(req.resolve("autocannon/package.json"), "utf8")) as {
      version?: string;
    };
    return `autocannon ${pkg.version ?? "?"}`;
  } catch {
    return "autocannon";
  }
}

export function autocannonGenerator(): LoadGenerator {
  const script = compiledSibling(import.meta.url, "autocannon-child.js");
  return {
    name: "autocannon",
    version: autocannonVersion(),
    async run(spec: LoadSpec): Promise<LoadResult> {
      let out = "";
      const p = startProcess("autocannon", process.execPath, [script, JSON.stringify(spec)], {
        onStdout: (c) => {
          out += c.toString("utf8");
        },
      });
      const code = await p.exited;
      const result = parseAutocannonLine(out);
      if (code !== 0 || result === undefined) {
        throw new BenchError("KILN_BENCH_LOAD_FAILED", `autocannon exited ${code}:\n${p.tail()}`);
      }
      return result;
    },
  };
}
