// `kiln push [NAME]`: deploys the app of manifest.yml (or NAME with flags) from its folder.
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseCommand } from "../args.js";
import { session } from "../client/session.js";
import type { Command } from "../command.js";
import { CliError } from "../errors.js";
import { ok, output } from "../output/print.js";
import type { AppManifest } from "../push/manifest.js";
import { countFlag, sizeFlag } from "./apps.js";

export const pushCommand: Command = {
  summary: "deploy an app: upload, stage, start and print its URL",
  usage:
    "[NAME] [-f manifest.yml] [-p PATH] [-i N] [-m 256M] [-k 1G] [-c CMD] [-b BUILDPACK]… [--no-route] [--random-route]",
  async run(argv) {
    const { flags: f, args } = parseCommand(
      "push",
      argv,
      {
        manifest: { type: "string", short: "f" },
        path: { type: "string", short: "p" },
        instances: { type: "string", short: "i" },
        memory: { type: "string", short: "m" },
        disk: { type: "string", short: "k" },
        command: { type: "string", short: "c" },
        buildpack: { type: "string", short: "b", multiple: true },
        "no-route": { type: "boolean" },
        "random-route": { type: "boolean" },
      },
      0,
      1,
    );
    const flags = {
      path: f.path,
      instances: countFlag("push", "-i", f.instances),
      memoryMb: sizeFlag("push", "-m", f.memory),
      diskMb: sizeFlag("push", "-k", f.disk),
      command: f.command,
      buildpacks: f.buildpack,
      noRoute: f["no-route"],
      randomRoute: f["random-route"],
    };
    // The YAML and tar modules load only for a push, not for every command.
    const [{ applyFlags, readManifest }, { deploy }] = await Promise.all([
      import("../push/manifest.js"),
      import("../push/deploy.js"),
    ]);
    const name = args[0];
    const manifestPath = f.manifest ?? (existsSync("manifest.yml") ? "manifest.yml" : undefined);
    if (f.manifest !== undefined && !existsSync(f.manifest)) {
      throw new CliError("KILN_CLI_USAGE", `kiln push: -f ${JSON.stringify(f.manifest)}: no such file`);
    }
    let m: AppManifest;
    let base = process.cwd();
    if (manifestPath !== undefined) {
      m = readManifest(manifestPath, name);
      if (name !== undefined) m.name = name;
      base = dirname(resolve(manifestPath));
    } else if (name !== undefined) {
      m = { name };
    } else {
      throw new CliError("KILN_CLI_USAGE", "kiln push: give an app NAME or a manifest.yml");
    }
    m = applyFlags(m, flags);
    // A path from the manifest is relative to it; one from -p to where kiln runs.
    const dir = f.path !== undefined ? resolve(f.path) : resolve(base, m.path ?? ".");
    const s = session();
    const urls = await deploy(s, m, { dir, tty: output(false).tty });
    ok(`${m.name} is running`);
    for (const url of urls) ok(url);
    return 0;
  },
};
