// The platform as a user runs it, for the files under test/platform: one `kiln up` per file on
// free ports in a temp dir, driven through the kiln binary with a KILN_HOME per user and no
// terminal, apps fetched through the kernel's router. Teardown leaves no kernel, component or
// container behind, whatever state a failure left it in.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { containerRoot } from "../../dea/config.js";
import { Runc } from "../../dea/container/runc.js";
import { kilnBin, projectRoot } from "../../kernel/paths.js";
import { type StartedUp, startUp } from "./kernel.js";
import { freePort } from "./ports.js";
import { until } from "./until.js";

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface PlatformPorts {
  nats: number;
  router: number;
  status: number;
  cc: number;
}

export interface InstanceView {
  index: number;
  state: string;
  version?: string;
  crashes?: number;
}

export interface AppView {
  app: { guid: string; name: string; version: string; instances: number };
  routes: { host: string }[];
  instances: InstanceView[];
}

export interface Platform {
  /** The temp dir holding the data dir and the users' homes; removed on teardown. */
  base: string;
  dataDir: string;
  ports: PlatformPorts;
  /** The controller's URL, for `kiln login -a`. */
  api: string;
  /** The running `kiln up` (a new one after `restart`). */
  kernel(): StartedUp;
  /** Why kiln up left its DEAs out (runc cannot run here), or null when they run. */
  deaUnable: string | null;
  /** The environment every kiln process here runs with. */
  childEnv: NodeJS.ProcessEnv;
  /** SIGTERM to kiln up and its exit code. */
  stop(): Promise<number | null>;
  /** `kiln up` again on the same data dir and ports (after `stop`). */
  restart(): Promise<StartedUp>;
  /** The runc roots of the kernel's DEAs (`dea`, `dea-2`, …). */
  containerRoots(): string[];
  /** `kiln ...args` as `home`'s user, stdin closed, to its exit (SIGKILLed after `timeoutMs`). */
  kiln(home: string, args: string[], opts?: { cwd?: string; timeoutMs?: number }): Promise<Run>;
  /** `kiln ...args` must exit 0; its output is in the failure's diagnostics. */
  succeeds(t: Test, home: string, args: string[], opts?: { cwd?: string }): Promise<Run>;
  /** `kiln ...args` must fail as the CLI promises: exit 1 and one `kiln: … (CODE)` line on stderr. */
  failsWith(t: Test, home: string, args: string[], code: string): Promise<Run>;
  /** GET `path` through the router for `host`.localhost on a fresh connection; status 0 when nothing answered. */
  viaRouter(
    host: string,
    path?: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }>;
  /** The body `host` answers through the router once it answers 200. */
  answer(host: string): Promise<string>;
  /** `kiln app NAME --json` as `home`'s user; throws when it fails (polled, so it asserts nothing). */
  appView(home: string, name: string): Promise<AppView>;
  /** Logs `home` in as the admin, with the password kiln up wrote. */
  loginAdmin(t: Test, home: string): Promise<Run>;
}

/**
 * `kiln ...args` with `env` as `home`'s user (KILN_HOME), stdin closed, to its exit; SIGKILLed
 * after `timeoutMs` (60 s).
 */
export function runKiln(
  env: NodeJS.ProcessEnv,
  home: string,
  args: string[],
  o: { cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [kilnBin, ...args], {
      cwd: o.cwd ?? projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...env, KILN_HOME: home },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    const kill = setTimeout(() => child.kill("SIGKILL"), o.timeoutMs ?? 60_000);
    child.once("close", (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * `kiln up` for one test file (with `args` and `env` added), ready once its controller listens and
 * its DEAs started or were left out. Stopped and cleaned on `t`'s teardown.
 */
export async function startPlatform(
  t: Test,
  opts: { args?: string[]; env?: Record<string, string> } = {},
): Promise<Platform> {
  const base = await mkdtemp(join(tmpdir(), "kiln-platform-"));
  const dataDir = join(base, "data");
  const ports: PlatformPorts = {
    nats: await freePort(),
    router: await freePort(),
    status: await freePort(),
    cc: await freePort(),
  };
  // Every kiln process here runs without the hook tap puts in NODE_OPTIONS: it adds about a
  // second to each of the many short CLI runs, and coverage is not counted through child
  // processes anyway.
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: "" };
  const containerRoots = (): string[] => {
    let names: string[] = [];
    try {
      names = readdirSync(dataDir).filter((n) => /^dea(-\d+)?$/.test(n));
    } catch {}
    return names.map((n) => containerRoot(join(dataDir, n)));
  };
  let kernel: StartedUp | undefined;
  t.teardown(async () => {
    // Should a failure leave the kernel running, or a SIGKILL stop a DEA before its instances,
    // the containers would outlive the file: no later DEA adopts them from a temp dir.
    if (kernel !== undefined && kernel.up.exitCode === null && kernel.up.signalCode === null) {
      kernel.up.kill("SIGKILL");
      await kernel.exited;
    }
    for (const root of containerRoots()) {
      const runc = new Runc({ root });
      for (const c of await runc.list().catch(() => [])) await runc.delete(c.id).catch(() => {});
    }
    rmSync(base, { recursive: true, force: true });
  });

  const up = async (): Promise<StartedUp> => {
    const k = await startUp(t, dataDir, ports, {
      args: opts.args ?? [],
      env: { NODE_OPTIONS: "", ...opts.env },
    });
    kernel = k;
    await k.until("its Cloud Controller listening", () => k.stderr().includes('"event":"cc_listening"'));
    await k.until("its DEA started or left out", () =>
      /"event":"(dea_started|dea_not_started)"/.test(k.stderr()),
    );
    return k;
  };
  const first = await up();
  // Where runc cannot run, kiln up leaves the DEA out and there is nothing to push to.
  const unable = /\{[^\n]*"event":"dea_not_started"[^\n]*\}/.exec(first.stderr());
  const deaUnable =
    unable === null ? null : ((JSON.parse(unable[0]) as { reason?: string }).reason ?? "no reason given");

  const kiln = (home: string, args: string[], o: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> =>
    runKiln(childEnv, home, args, o);

  const succeeds = async (t: Test, home: string, args: string[], o: { cwd?: string } = {}) => {
    const r = await kiln(home, args, o);
    t.equal(r.code, 0, `kiln ${args.join(" ")}: exit 0`, { stdout: r.stdout, stderr: r.stderr });
    return r;
  };

  const viaRouter: Platform["viaRouter"] = (host, path = "/", headers = {}) =>
    new Promise((resolve) => {
      // node:http sends the Host header given (fetch() would replace it); a fresh connection
      // each time so every request is balanced on its own.
      const req = request(
        {
          host: "127.0.0.1",
          port: ports.router,
          path,
          agent: false,
          timeout: 5000,
          headers: { ...headers, host: `${host}.localhost:${ports.router}` },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (d: string) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
          res.on("error", () => resolve({ status: 0, body, headers: res.headers }));
        },
      );
      req.on("error", () => resolve({ status: 0, body: "", headers: {} }));
      req.on("timeout", () => req.destroy());
      req.end();
    });

  return {
    base,
    dataDir,
    ports,
    api: `http://127.0.0.1:${ports.cc}`,
    kernel: () => kernel as StartedUp,
    deaUnable,
    childEnv,
    containerRoots,
    stop: async () => {
      const k = kernel as StartedUp;
      k.up.kill("SIGTERM");
      return k.exited;
    },
    restart: up,
    kiln,
    succeeds,
    failsWith: async (t, home, args, code) => {
      const r = await kiln(home, args);
      t.equal(r.code, 1, `kiln ${args.join(" ")}: exit 1`, { stdout: r.stdout, stderr: r.stderr });
      t.match(r.stderr, new RegExp(`^kiln: [^\\n]+ \\(${code}\\)\\n$`), `one line with ${code}`);
      return r;
    },
    viaRouter,
    answer: (host) =>
      until(`${host} to answer through the router`, async () => {
        const r = await viaRouter(host);
        return r.status === 200 ? r.body : undefined;
      }),
    appView: async (home, name) => {
      const r = await kiln(home, ["app", name, "--json"]);
      if (r.code !== 0) throw new Error(`kiln app ${name} --json: exit ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as AppView;
    },
    loginAdmin: (t, home) => {
      const admin = JSON.parse(readFileSync(join(dataDir, "admin-credentials.json"), "utf8")) as {
        user: string;
        password: string;
      };
      return succeeds(t, home, [
        "login",
        "-a",
        `http://127.0.0.1:${ports.cc}`,
        "-u",
        admin.user,
        "-p",
        admin.password,
      ]);
    },
  };
}
