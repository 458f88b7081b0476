// docs/config.md, built from each component's one config table (defaults, environment variables,
// flags) and the doc comment of each option in its config.ts, so the reference cannot drift from
// the code. Read by scripts/config-doc.mjs and its test only: it loads the TypeScript compiler.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { ccDefaults, ccEnv, ccFlags } from "../control/config.js";
import { deaDefaults, deaEnv, deaFlags } from "../dea/config.js";
import { hmDefaults, hmEnv, hmFlags } from "../hm/config.js";
import { routerDefaults, routerEnv, routerFlags } from "../router/config.js";
import { kernelDefaults, kernelEnv, kernelFlags, processDefaults, processEnv } from "./config.js";
import { projectRoot } from "./paths.js";

/** One component's table: where its options are declared and the maps that say how to set them. */
interface Table {
  title: string;
  intro: string;
  /** Source file and interface whose doc comments give each option's meaning. */
  source: string;
  iface: string;
  defaults: object;
  env: Partial<Record<string, string>>;
  flags: Partial<Record<string, string>>;
  /** Defaults that depend on the machine, described instead of printed. */
  computed?: Record<string, string>;
}

const tables: Table[] = [
  {
    title: "Every process",
    intro: "Read from the environment by every `kiln` command and every component.",
    source: "kernel/config.ts",
    iface: "ProcessSettings",
    defaults: processDefaults,
    env: processEnv,
    flags: {},
  },
  {
    title: "`kiln up` (the kernel on one machine)",
    intro:
      "`kiln up` turns these into its children's flags (ports, data directories, the NATS URL); every " +
      "other setting below reaches its children through the environment and is checked before " +
      "anything starts. `kiln nats` takes " +
      "`--data-dir` and `--port` (the NATS port).",
    source: "kernel/config.ts",
    iface: "KernelConfig",
    defaults: kernelDefaults,
    env: kernelEnv,
    flags: kernelFlags,
  },
  {
    title: "`kiln router`",
    intro: "The HTTP router ([router/README.md](../router/README.md)). Lists are comma separated.",
    source: "router/config.ts",
    iface: "RouterConfig",
    defaults: routerDefaults,
    env: routerEnv,
    flags: routerFlags,
    computed: { threads: "one per core" },
  },
  {
    title: "`kiln cc`",
    intro: "The Cloud Controller ([control/README.md](../control/README.md)).",
    source: "control/config.ts",
    iface: "CcConfig",
    defaults: ccDefaults,
    env: ccEnv,
    flags: ccFlags,
  },
  {
    title: "`kiln dea`",
    intro: "The Droplet Execution Agent ([dea/README.md](../dea/README.md)). Lists are comma separated.",
    source: "dea/config.ts",
    iface: "DeaConfig",
    defaults: deaDefaults,
    env: deaEnv,
    flags: deaFlags,
  },
  {
    title: "`kiln hm`",
    intro: "The Health Manager ([hm/README.md](../hm/README.md)).",
    source: "hm/config.ts",
    iface: "HmConfig",
    defaults: hmDefaults,
    env: hmEnv,
    flags: hmFlags,
  },
];

/**
 * The doc comment of each property of `iface` in `text`, on one line. Throws naming the first
 * property without one: every option must say what it means.
 */
export function optionDocs(text: string, iface: string, file = "config.ts"): Map<string, string> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const decl = sf.statements.find((s) => ts.isInterfaceDeclaration(s) && s.name.text === iface);
  if (decl === undefined || !ts.isInterfaceDeclaration(decl))
    throw new Error(`${file}: no interface ${iface}`);
  const docs = new Map<string, string>();
  for (const m of decl.members) {
    if (!ts.isPropertySignature(m) || !ts.isIdentifier(m.name)) continue;
    const comment = ts
      .getJSDocCommentsAndTags(m)
      .filter(ts.isJSDoc)
      .map((d) => ts.getTextOfJSDocComment(d.comment) ?? "")
      .join(" ")
      .replace(/\s+/g, " ")
      .trim();
    if (comment === "") throw new Error(`${file}: ${iface}.${m.name.text} has no doc comment`);
    docs.set(m.name.text, comment);
  }
  return docs;
}

function defaultText(value: unknown): string {
  if (value === "" || (Array.isArray(value) && value.length === 0)) return "(none)";
  if (typeof value === "number") return String(value);
  if (Array.isArray(value)) return `\`${value.join(",")}\``;
  return `\`${String(value)}\``;
}

const cell = (s: string): string => s.replaceAll("|", "\\|");

/** The whole of docs/config.md, before the formatter aligns its tables. */
export function configDoc(root: string = projectRoot): string {
  const lines = [
    "# Kiln configuration",
    "",
    "Every setting of every component: its flag, its environment variable, its default and what it",
    "means. Generated from each component's `config.ts` (its one table of defaults, variables and",
    "flags, and the doc comment of each option) by `npm run docs:config`; a test fails when this",
    "file differs from what the code gives.",
    "",
    "A flag wins over the environment, which wins over the default. A malformed value stops the",
    "component before it starts anything: one line naming the setting and its value, the",
    "component's `KILN_*_CONFIG` code, exit 2. A component started alone reads its NATS user and",
    "password from `KILN_NATS_USER` and `KILN_NATS_PASS`; `kiln up` generates them into",
    "`<data dir>/nats/credentials.json`.",
  ];
  for (const t of tables) {
    const docs = optionDocs(readFileSync(join(root, t.source), "utf8"), t.iface, t.source);
    lines.push("", `## ${t.title}`, "", t.intro, "");
    lines.push("| setting | flag | environment variable | default | meaning |", "|---|---|---|---|---|");
    for (const [key, value] of Object.entries(t.defaults)) {
      const env = t.env[key];
      const flag = t.flags[key];
      // Internal values no one can set (kernelDefaults.stopTimeoutMs) are not configuration.
      if (env === undefined && flag === undefined) continue;
      const meaning = docs.get(key);
      if (meaning === undefined) throw new Error(`${t.source}: ${key} is not a property of ${t.iface}`);
      const def = t.computed?.[key] ?? defaultText(value);
      lines.push(
        `| \`${key}\` | ${flag === undefined ? "" : `\`--${flag}\``} | ${env === undefined ? "" : `\`${env}\``} | ${cell(def)} | ${cell(meaning)} |`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
