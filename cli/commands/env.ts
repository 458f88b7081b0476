// An app's environment variables: show, set and unset one.
import { parseCommand } from "../args.js";
import { findApp, q, session } from "../client/session.js";
import type { Command } from "../command.js";
import { ok, output, printJson, printTable } from "../output/print.js";

interface EnvVars {
  var?: Record<string, string>;
}

export const envCommand: Command = {
  summary: "show an app's environment variables",
  usage: "NAME [--json]",
  async run(argv) {
    const { flags, args } = parseCommand("env", argv, { json: { type: "boolean" } }, 1, 1);
    const s = session();
    const app = await findApp(s, args[0] ?? "");
    const env = await s.client.get<EnvVars>(`/v3/apps/${q(app.guid)}/environment_variables`);
    const vars = env?.var ?? {};
    if (output(flags.json).json) printJson(vars);
    else
      printTable(
        ["name", "value"],
        Object.keys(vars)
          .sort()
          .map((k) => [k, vars[k]]),
      );
    return 0;
  },
};

export const setEnvCommand: Command = {
  summary: "set an app's environment variable (restart to apply)",
  usage: "NAME KEY VALUE",
  async run(argv) {
    const { args } = parseCommand("set-env", argv, {}, 3, 3);
    const [name = "", key = "", value = ""] = args;
    const s = session();
    const app = await findApp(s, name);
    await s.client.patch(`/v3/apps/${q(app.guid)}/environment_variables`, { var: { [key]: value } });
    ok(`${app.name}: ${key} set; kiln restart ${app.name} to apply`);
    return 0;
  },
};

export const unsetEnvCommand: Command = {
  summary: "remove an app's environment variable (restart to apply)",
  usage: "NAME KEY",
  async run(argv) {
    const { args } = parseCommand("unset-env", argv, {}, 2, 2);
    const [name = "", key = ""] = args;
    const s = session();
    const app = await findApp(s, name);
    await s.client.patch(`/v3/apps/${q(app.guid)}/environment_variables`, { var: { [key]: null } });
    ok(`${app.name}: ${key} removed; kiln restart ${app.name} to apply`);
    return 0;
  },
};
