// The kiln entry point as a user runs it: the compiled bin in a child process.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { kilnBin, projectRoot } from "../../kernel/paths.js";
import { guardChildren } from "../helpers/children.js";

guardChildren(t);

const kiln = (...args: string[]) =>
  spawnSync(process.execPath, [kilnBin, ...args], { encoding: "utf8", timeout: 20_000 });

t.test("--help lists every component command and exits 0", async (t) => {
  const r = kiln("--help");
  t.equal(r.status, 0);
  for (const c of ["up", "nats", "router", "cc", "dea", "hm"])
    t.match(r.stdout, new RegExp(`^  ${c}\\s`, "m"), c);
});

t.test("--help lists the client commands too", async (t) => {
  const r = kiln("--help");
  for (const c of [
    "login",
    "logout",
    "target",
    "push",
    "apps",
    "app",
    "scale",
    "logs",
    "map-route",
    "add-member",
  ])
    t.match(r.stdout, new RegExp(`^  ${c}\\s`, "m"), c);
  const push = kiln("push", "--help");
  t.equal(push.status, 0);
  t.match(push.stdout, /Usage: kiln push \[NAME\] \[-f manifest\.yml\]/);
});

t.test("a command's --help prints its usage", async (t) => {
  const r = kiln("nats", "--help");
  t.equal(r.status, 0);
  t.match(r.stdout, /Usage: kiln nats/);
});

t.test("--version prints package.json's version", async (t) => {
  const pkg = JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string };
  const r = kiln("--version");
  t.equal(r.status, 0);
  t.equal(r.stdout.trim(), pkg.version);
});

t.test("an unknown command is a one-line error with exit 2", async (t) => {
  const r = kiln("frobnicate");
  t.equal(r.status, 2);
  t.equal(r.stdout, "");
  t.equal(r.stderr.trim().split("\n").length, 1);
  t.match(r.stderr, /unknown command frobnicate.*KILN_CLI_USAGE/);
});

t.test("an unknown top-level flag is a one-line error with exit 2", async (t) => {
  const r = kiln("--frobnicate");
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown flag --frobnicate/);
});

t.test("an unknown flag of a command is a one-line error with exit 2", async (t) => {
  const r = kiln("nats", "--no-such-flag");
  t.equal(r.status, 2);
  t.equal(r.stderr.trim().split("\n").length, 1);
  t.match(r.stderr, /kiln nats: .*--no-such-flag.*KILN_CLI_USAGE/);
});

t.test("an unknown flag of a component is a one-line error with exit 2", async (t) => {
  const r = kiln("router", "--no-such-flag");
  t.equal(r.status, 2);
  t.equal(r.stderr.trim().split("\n").length, 1);
  t.match(r.stderr, /--no-such-flag/);
});

t.test("a bad flag value is a usage error", async (t) => {
  const r = kiln("nats", "--port", "70000");
  t.equal(r.status, 2);
  t.match(r.stderr, /--port must be an integer/);
});

t.test("no arguments prints help and exits 2", async (t) => {
  const r = kiln();
  t.equal(r.status, 2);
  t.match(r.stdout, /Usage: kiln <command>/);
});

t.test("kiln hm with a malformed flag exits 2 with its config code", async (t) => {
  const r = kiln("hm", "--nats", "nats://127.0.0.1:4222", "--heartbeat-ms", "soon");
  t.equal(r.status, 2);
  t.match(r.stderr, /KILN_HM_CONFIG/);
  t.match(r.stderr, /--heartbeat-ms must be an integer/);
});
