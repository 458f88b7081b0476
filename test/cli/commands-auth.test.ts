// Login, targets, spaces and users, and the errors every client command shares, run as a user
// runs them: the compiled `kiln` in a child process against a real `kiln cc` and nats-server.
// What a command did is read back through the controller's API.
import { spawn } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import t from "tap";
import { kilnBin } from "../../kernel/paths.js";
import { call } from "../control/harness.js";
import { guardChildren } from "../helpers/children.js";
import { harness } from "./harness.js";

guardChildren(t);

const { cc, admin, api, home, configFile, config, kiln } = await harness(t);
const password = admin.password;
const devGuid = (await api("POST", "/v3/spaces", { name: "dev" })).body.guid as string;
/** What the controller answers to GET /v3/spaces with this token: 200 while it is valid, 401 once revoked. */
const spacesWith = (token: string) => call(cc.url, "GET", "/v3/spaces", { token });

t.test("login writes config.json with mode 0600 and targets the only space", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", password]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, `Logged in to ${cc.url} as admin`);
  t.match(r.stdout, "Targeted space dev");
  t.equal(statSync(configFile).mode & 0o777, 0o600);
  t.equal(statSync(home).mode & 0o077, 0, "KILN_HOME is private too");
  const c = config();
  t.equal(c.api, cc.url);
  t.equal(c.user, "admin");
  t.equal((await spacesWith(String(c.token))).status, 200, "the controller knows the token");
  t.strictSame(c.space, { name: "dev", guid: devGuid });
});

t.test("a bad password is the controller's detail and code, exit 1", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin", "-p", "wrong"]);
  t.equal(r.status, 1);
  t.equal(r.stderr, "kiln: wrong username or password (KILN_CC_UNAUTHENTICATED)\n");
});

t.test("a missing login flag off a terminal is a usage error", async (t) => {
  const r = await kiln(["login", "-a", cc.url, "-u", "admin"]);
  t.equal(r.status, 2);
  t.match(r.stderr, /kiln login: -p PASSWORD is required \(KILN_CLI_USAGE\)/);
});

// script(1), from util-linux, gives the child a terminal.
const script = ["/usr/bin/script", "/bin/script"].find((p) => existsSync(p)) ?? "";
t.test(
  "on a terminal, login asks for a missing password without echoing it",
  { skip: script === "" },
  async (t) => {
    const line = [process.execPath, kilnBin, "login", "-a", cc.url, "-u", "admin"]
      .map((a) => `'${a}'`)
      .join(" ");
    const child = spawn(script, ["-qec", line, "/dev/null"], {
      env: { ...process.env, KILN_HOME: home },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Password: ") && !out.includes("typed")) {
        out += "typed";
        child.stdin.write(`${password}\r`);
      }
    });
    const status = await new Promise<number | null>((resolve) => child.on("close", resolve));
    t.equal(status, 0, out);
    t.match(out, /Password: /);
    t.notOk(out.includes(password), "the password is not echoed");
    t.match(out, /Logged in to .* as admin/);
  },
);

t.test("an API that does not answer is named in a coded error", async (t) => {
  // A port that was free a moment ago: nothing listens there.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const nowhere = `http://127.0.0.1:${port}`;
  const r = await kiln(["login", "-a", nowhere, "-u", "admin", "-p", password]);
  t.equal(r.status, 1);
  t.equal(
    r.stderr,
    `kiln: cannot reach the Cloud Controller at ${nowhere}: connection refused (KILN_CLI_API_UNREACHABLE)\n`,
  );
});

t.test("spaces: more than a page of them, as a table and as JSON; target -s switches", async (t) => {
  // 51 spaces: more than the controller's default page of 50, so a client that took the first
  // page alone would miss some (the CLI asks for 5000 to a page and follows `next`).
  const names = [
    "prod",
    "staging",
    ...Array.from({ length: 48 }, (_, i) => `s${String(i).padStart(2, "0")}`),
  ];
  const made = await Promise.all(names.map((name) => api("POST", "/v3/spaces", { name })));
  t.strictSame(
    made.map((r) => r.status),
    names.map(() => 201),
  );
  t.equal((await api("GET", "/v3/spaces")).body.pagination.total_pages, 2, "two pages at the default size");
  const table = await kiln(["spaces"]);
  t.equal(table.status, 0, table.stderr);
  const lines = table.stdout.trimEnd().split("\n");
  t.match(lines[0], /^name\s+targeted\s+created$/);
  t.equal(lines.length, 52, "51 spaces");
  t.match(lines[1], /^dev\s+\*\s+\d{4}-/, "oldest first, the targeted one marked");
  const json = await kiln(["spaces", "--json"]);
  const listed = (JSON.parse(json.stdout) as { name: string }[]).map((s) => s.name);
  t.equal(listed[0], "dev", "oldest first");
  t.strictSame(listed.sort(), ["dev", ...names].sort());
  const r = await kiln(["target", "-s", "prod"]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /space:\s+prod/);
  t.equal((config().space as { name: string }).name, "prod");
  const missing = await kiln(["target", "-s", "nope"]);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /space nope not found \(KILN_CLI_NOT_FOUND\)/);
  await kiln(["target", "-s", "dev"]);
  const shown = await kiln(["target", "--json"]);
  t.strictSame(JSON.parse(shown.stdout), { api: cc.url, user: "admin", space: "dev" });
});

t.test("create-space, create-user and add-member; a taken name is the controller's error", async (t) => {
  t.equal((await kiln(["create-space", "qa"])).status, 0);
  const taken = await kiln(["create-space", "qa"]);
  t.equal(taken.status, 1);
  t.equal(taken.stderr, "kiln: space qa already exists (KILN_CC_NAME_TAKEN)\n");
  const u = await kiln(["create-user", "ann", "-p", "pw"]);
  t.equal(u.status, 0, u.stderr);
  const ann = await call(cc.url, "POST", "/v3/tokens", { body: { username: "ann", password: "pw" } });
  t.equal(ann.status, 201, "ann can log in");
  t.equal(ann.body.user.admin, false, "and is no admin");
  t.equal((await kiln(["create-user", "ann"])).status, 2, "no password: usage");
  t.strictSame((await spacesWith(ann.body.token as string)).body.resources, [], "no space of her own yet");
  const m = await kiln(["add-member", "qa", "ann"]);
  t.equal(m.status, 0, m.stderr);
  const seen = await spacesWith(ann.body.token as string);
  t.strictSame(
    (seen.body.resources as { name: string }[]).map((s) => s.name),
    ["qa"],
    "ann sees the space she was added to, and only it",
  );
});

t.test("a revoked token: one coded line, exit 1", async (t) => {
  t.equal(
    (await call(cc.url, "DELETE", "/v3/tokens/current", { token: String(config().token) })).status,
    204,
  );
  const r = await kiln(["apps"]);
  t.equal(r.status, 1);
  t.equal(r.stderr, "kiln: not logged in or token expired: run kiln login (KILN_CLI_NOT_LOGGED_IN)\n");
  const json = await kiln(["apps", "--json"]);
  t.equal(json.stdout, "", "nothing on stdout");
});

t.test("logout revokes the token and forgets it", async (t) => {
  await kiln(["login", "-a", cc.url, "-u", "admin", "-p", password, "-s", "dev"]);
  const token = String(config().token);
  t.equal((await spacesWith(token)).status, 200);
  const r = await kiln(["logout"]);
  t.equal(r.status, 0, r.stderr);
  t.equal((await spacesWith(token)).status, 401, "revoked");
  t.equal(config().token, undefined);
  t.equal(config().api, cc.url, "the API is kept for the next login");
  t.equal(statSync(configFile).mode & 0o777, 0o600);
  const after = await kiln(["apps"]);
  t.equal(after.status, 1);
  t.match(after.stderr, /KILN_CLI_NOT_LOGGED_IN/);
});

t.test("a malformed config.json is a coded error", async (t) => {
  writeFileSync(configFile, "{not json");
  const r = await kiln(["apps"]);
  t.equal(r.status, 1);
  t.match(r.stderr, /config\.json is not JSON \(KILN_CLI_CONFIG\)/);
});
