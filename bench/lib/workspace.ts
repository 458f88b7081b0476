// The temp workspace of a scenario bench (bench/push.ts, bench/heal.ts): its folder, removed at
// the end or on SIGINT/SIGTERM after every started process is stopped; the signal that cut the
// run short, so the bench exits with it after its cleanup; and a copy of the node example that
// answers with what identifies its instance.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { projectRoot } from "../../kernel/paths.js";
import { stopAll, stopAllOnSignal } from "./procs.js";

export interface Workspace {
  dir: string;
  /** The signal that interrupted the run, if one did. */
  signalled(): NodeJS.Signals | undefined;
  /**
   * Runs the bench's steps: every process stopped and the folder removed afterwards; an error
   * caused by the interrupting signal is no error of its own. Exits 130/143 after a signal.
   */
  run(steps: () => Promise<void>): Promise<void>;
}

export function workspace(name: string): Workspace {
  const dir = mkdtempSync(join(tmpdir(), `kiln-bench-${name}-`));
  // Retried: files under the DEA's directory may still be going away as kiln up finishes.
  const remove = (): void => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  // SIGINT/SIGTERM: kiln up gets SIGTERM and is waited for, leftover containers are removed.
  stopAllOnSignal(remove);
  let signalled: NodeJS.Signals | undefined;
  for (const s of ["SIGINT", "SIGTERM"] as const)
    process.once(s, () => {
      signalled = s;
    });
  return {
    dir,
    signalled: () => signalled,
    run: async (steps) => {
      try {
        await steps();
      } catch (err) {
        if (signalled === undefined) throw err;
      } finally {
        await stopAll();
        remove();
      }
      if (signalled !== undefined) process.exit(signalled === "SIGINT" ? 130 : 143);
    },
  };
}

/**
 * examples/node copied into `dir`, its server answering `body` (a JavaScript expression over
 * process.env) so the bench can tell instances apart by their answers.
 */
export function identifyingApp(dir: string, what: string, body: string): string {
  cpSync(join(projectRoot, "examples/node"), dir, { recursive: true });
  writeFileSync(
    join(dir, "server.js"),
    [
      `// The node example answering ${what}.`,
      `const me = String(${body});`,
      'require("node:http")',
      "  .createServer((_req, res) => res.end(me))",
      "  .listen(Number(process.env.PORT ?? 8080));",
      "",
    ].join("\n"),
  );
  return dir;
}
