// What a droplet says about itself: the start command chosen at staging (a Procfile's web
// line over the buildpack's default_process_types.web) and how a runner launches it, kept in
// the droplet as .kiln/droplet.json.
import { parse } from "yaml";

/** .kiln/droplet.json inside every droplet. */
export interface DropletInfo {
  startCommand: string;
  buildpack: string;
  /** Process types of the Procfile and the release, the Procfile's winning. */
  processTypes: Record<string, string>;
}

export const dropletInfoPath = ".kiln/droplet.json";

/** The `name: command` lines of a Procfile. */
export function parseProcfile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z0-9_-]+):\s*(.*?)\s*$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined && m[2] !== "") out[m[1]] = m[2];
  }
  return out;
}

/**
 * default_process_types of bin/release's YAML; null when the YAML is not a mapping (a
 * release that prints nothing has no defaults, which is fine).
 */
export function parseRelease(text: string): Record<string, string> | null {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch {
    return null;
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) return null;
  const types = (doc as Record<string, unknown>).default_process_types;
  if (types === undefined || types === null) return {};
  if (typeof types !== "object" || Array.isArray(types)) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(types)) if (typeof v === "string" && v !== "") out[k] = v;
  return out;
}

/**
 * argv that runs `startCommand` in the app's folder as Cloud Foundry does: the buildpacks'
 * .profile.d scripts first (PYTHONPATH, node_modules/.bin), then the command through sh. A
 * simple command is exec'd so the app itself gets the stop signal (dash does not exec the
 * last command of `sh -c` on its own); a compound one (`a && b`, a pipe) runs under sh.
 */
export function launchArgv(startCommand: string): string[] {
  return [
    "/bin/sh",
    "-c",
    'for f in .profile.d/*.sh; do if [ -r "$f" ]; then . "./$f"; fi; done\n' +
      'case "$0" in *[\\;\\&\\|\\<\\>\\(\\)\\`]*) eval "$0" ;; *) eval "exec $0" ;; esac',
    startCommand,
  ];
}
