// Picks the load generator of a run: wrk when installed (higher rates, lower own cost),
// else autocannon; one generator for every case of a run so results stay comparable.
import { versionOf, which } from "../debian.js";
import { autocannonGenerator } from "./autocannon.js";
import type { LoadGenerator } from "./types.js";
import { wrkGenerator } from "./wrk.js";

export type { LatencyMs, LoadGenerator, LoadResult, LoadSpec } from "./types.js";

export function pickGenerator(prefer: "auto" | "wrk" | "autocannon" = "auto"): LoadGenerator {
  const wrk = prefer === "autocannon" ? undefined : which("wrk");
  if (wrk !== undefined) return wrkGenerator(wrk, versionOf(wrk, ["-v"]).split(" [")[0] ?? "wrk");
  return autocannonGenerator();
}
