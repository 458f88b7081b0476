// What `kiln bench` loads: a URL as given, or an app of the targeted space reached through the
// router at its first route; and a connect check first, so a wrong address fails in a second.
import { connect } from "node:net";
import { findApp, q, session } from "../client/session.js";
import type { Info, Route } from "../client/types.js";
import { CliError } from "../errors.js";
import { appUrl } from "../push/deploy.js";
import type { Target } from "./load.js";

/** How long the connect check waits for the target to accept a connection. */
const PROBE_TIMEOUT_MS = 5000;

/** A URL argument: http(s) only; anything else is a usage error. */
export function urlTarget(given: string, name: string = given): Target {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new CliError("KILN_CLI_USAGE", `kiln bench: "${given}" is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new CliError("KILN_CLI_USAGE", `kiln bench: "${given}" is not an http or https URL`);
  }
  // `*.localhost` names are the loopback address (RFC 6761) and are how the router is reached
  // locally (http://NAME.localhost:8080), but the resolver here need not know them: connect
  // to localhost and keep the name in the Host header, as browsers and curl do.
  if (url.hostname.endsWith(".localhost")) {
    const host = url.host;
    url.hostname = "localhost";
    return { name, url: url.href, host };
  }
  return { name, url: url.href, host: undefined };
}

/** An app NAME of the targeted space: its first route, through the router. */
export async function appTarget(name: string): Promise<Target> {
  const s = session();
  const app = await findApp(s, name);
  const [routes, info] = await Promise.all([
    s.client.list<Route>(`/v3/routes?app_guids=${q(app.guid)}&per_page=5000`),
    s.client.json<Info>("GET", "/v3/info", { auth: false }).catch(() => ({}) as Info),
  ]);
  const route = routes[0];
  if (route === undefined) {
    throw new CliError(
      "KILN_CLI_NOT_FOUND",
      `app ${name} has no route: map one with kiln map-route ${name} HOST`,
    );
  }
  return urlTarget(appUrl({ host: route.host, path: route.path }, info), name);
}

export function resolveTarget(arg: string): Promise<Target> {
  return arg.includes("://") ? Promise.resolve(urlTarget(arg)) : appTarget(arg);
}

/** Resolves once the target accepts a TCP connection; a coded error when it does not. */
export function probe(target: Target): Promise<void> {
  const url = new URL(target.url);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const at = target.host === undefined ? target.url : `${target.url} (Host: ${target.host})`;
  const where = target.name === target.url ? target.url : `${target.name} at ${at}`;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port });
    const fail = (why: string) => {
      socket.destroy();
      reject(new CliError("KILN_CLI_BENCH_UNREACHABLE", `cannot reach ${where}: ${why}`));
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () => fail(`no connection in ${PROBE_TIMEOUT_MS / 1000}s`));
    socket.once("error", (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
  });
}
