// The `kiln` command: component entry points (up, nats, router, cc, dea, hm) and,
// as their issues land, the push/scale client commands. Exit codes: 0 ok, 1 failure, 2 usage.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { checkProcessEnv } from "../kernel/config.js";
import { KilnError } from "../kernel/errors.js";
import { createLogger } from "../kernel/log.js";
import { projectRoot } from "../kernel/paths.js";
import { stopWhenSupervisorGoes } from "../kernel/supervised.js";
import type { Command } from "./command.js";
import {
  appCommand,
  appsCommand,
  deleteCommand,
  restartCommand,
  scaleCommand,
  startCommand,
  stopCommand,
} from "./commands/apps.js";
import { loginCommand, logoutCommand, targetCommand } from "./commands/auth.js";
import { benchCommand } from "./commands/bench.js";
import { ccCommand } from "./commands/cc.js";
import { deaCommand } from "./commands/dea.js";
import { envCommand, setEnvCommand, unsetEnvCommand } from "./commands/env.js";
import { eventsCommand } from "./commands/events.js";
import { hmCommand } from "./commands/hm.js";
import { natsCommand, upCommand } from "./commands/kernel.js";
import { logsCommand } from "./commands/logs.js";
import { pushCommand } from "./commands/push.js";
import { routerCommand } from "./commands/router.js";
import { mapRouteCommand, routesCommand, unmapRouteCommand } from "./commands/routes.js";
import { addMemberCommand, createSpaceCommand, createUserCommand, spacesCommand } from "./commands/spaces.js";

export const commands: Record<string, Command> = {
  up: upCommand,
  nats: natsCommand,
  router: routerCommand,
  cc: ccCommand,
  dea: deaCommand,
  hm: hmCommand,
  login: loginCommand,
  logout: logoutCommand,
  target: targetCommand,
  push: pushCommand,
  apps: appsCommand,
  app: appCommand,
  start: startCommand,
  stop: stopCommand,
  restart: restartCommand,
  scale: scaleCommand,
  delete: deleteCommand,
  bench: benchCommand,
  logs: logsCommand,
  events: eventsCommand,
  env: envCommand,
  "set-env": setEnvCommand,
  "unset-env": unsetEnvCommand,
  routes: routesCommand,
  "map-route": mapRouteCommand,
  "unmap-route": unmapRouteCommand,
  spaces: spacesCommand,
  "create-space": createSpaceCommand,
  "create-user": createUserCommand,
  "add-member": addMemberCommand,
};

/** Codes that mean "the command line or environment was wrong": exit 2, like an unknown command. */
const usageCodes = new Set([
  "KILN_CLI_USAGE",
  "KILN_KERNEL_CONFIG",
  "KILN_ROUTER_CONFIG",
  "KILN_DEA_CONFIG",
  "KILN_CC_CONFIG",
  "KILN_HM_CONFIG",
]);

/** A usage error quotes the value it was given, which may hold line breaks: escaped, it stays one line. */
export function oneLine(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    out += c === 10 ? "\\n" : c < 0x20 || c === 0x7f ? `\\u${c.toString(16).padStart(4, "0")}` : ch;
  }
  return out;
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export function helpText(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = [
    `kiln ${version()} — an open PaaS kernel`,
    "",
    "Usage: kiln <command> [flags]",
    "",
    "Commands:",
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Flags: --help (this text, or a command's with `kiln <command> --help`), --version",
  ];
  return `${lines.join("\n")}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === "--help" || first === "-h" || first === "help") {
    process.stdout.write(helpText());
    return first === undefined ? 2 : 0;
  }
  if (first === "--version" || first === "-v") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(commands, first) ? commands[first] : undefined;
  if (command === undefined) {
    const what = first.startsWith("-") ? `unknown flag ${first}` : `unknown command ${first}`;
    process.stderr.write(`kiln: ${what} (KILN_CLI_USAGE); run kiln --help\n`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`Usage: kiln ${first} ${command.usage}\n  ${command.summary}\n`);
    return 0;
  }
  try {
    checkProcessEnv();
    stopWhenSupervisorGoes(createLogger(first));
    return await command.run(rest);
  } catch (err) {
    if (err instanceof KilnError) {
      if (!usageCodes.has(err.code)) {
        process.stderr.write(`kiln: ${err.message} (${err.code})\n`);
        return 1;
      }
      process.stderr.write(`kiln: ${oneLine(err.message)} (${err.code})\n`);
      return 2;
    }
    throw err;
  }
}
