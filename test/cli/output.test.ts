// Output helpers and the config file: aligned tables, cf-style log lines, API error bodies,
// config.json written with mode 0600 whatever the umask.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { apiError } from "../../cli/client/api.js";
import { configPath, kilnHome, loadConfig, saveConfig } from "../../cli/client/config.js";
import { formatLogLine, formatLogTime } from "../../cli/output/logs.js";
import { formatFields, formatTable } from "../../cli/output/table.js";
import { formatMb } from "../../cli/push/size.js";
import { KilnError } from "../../kernel/errors.js";

t.test("tables: columns padded to the widest cell, no trailing blanks", async (t) => {
  t.equal(
    formatTable(
      ["name", "state", "urls"],
      [
        ["web", "started", "web.localhost"],
        ["a-longer-name", "stopped", null],
      ],
    ),
    "name           state    urls\nweb            started  web.localhost\na-longer-name  stopped\n",
  );
  t.equal(formatTable(["a"], [["x\ny"]]), "a\nx y\n", "a line break in a cell stays on its row");
  t.equal(
    formatFields([
      ["name", "web"],
      ["memory", "256M"],
      ["command", null],
    ]),
    "name:     web\nmemory:   256M\ncommand:\n",
  );
});

t.test("sizes print as cf writes them", async (t) => {
  t.equal(formatMb(256), "256M");
  t.equal(formatMb(1024), "1G");
  t.equal(formatMb(1536), "1536M");
});

t.test("log lines look like cf's", async (t) => {
  t.equal(formatLogTime("2026-12-07T10:00:00.123Z"), "2026-12-07T10:00:00.12+0000");
  t.equal(
    formatLogLine({
      seq: 1,
      at: "2026-12-07T10:00:00Z",
      source: "APP",
      index: 0,
      stream: "stdout",
      text: "hello\n",
    }),
    "2026-12-07T10:00:00.00+0000 [APP/0] OUT hello",
  );
  t.equal(
    formatLogLine({
      seq: 2,
      at: "2026-12-07T10:00:00Z",
      source: "STG",
      index: null,
      stream: "stderr",
      text: "oops",
    }),
    "2026-12-07T10:00:00.00+0000 [STG] ERR oops",
  );
});

t.test("API error bodies become one coded error", async (t) => {
  const e = apiError(
    422,
    JSON.stringify({ errors: [{ code: "KILN_CC_NAME_TAKEN", title: "t", detail: "app name web is taken" }] }),
    "POST x",
  );
  t.ok(e instanceof KilnError);
  t.match(e, { code: "KILN_CC_NAME_TAKEN", message: "app name web is taken", status: 422 });
  t.match(apiError(422, JSON.stringify({ errors: [{ code: "KILN_CC_INVALID", title: "invalid" }] }), "x"), {
    message: "invalid",
  });
  t.match(apiError(502, "<html>bad gateway</html>", "GET http://cc/v3/apps"), {
    code: "KILN_CLI_API_RESPONSE",
    message: "GET http://cc/v3/apps: HTTP 502 without the API's error JSON",
  });
});

t.test("config.json: 0600 under a permissive umask, read back, malformed is coded", async (t) => {
  const home = mkdtempSync(join(tmpdir(), "kiln-config-"));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const env = { KILN_HOME: join(home, "nested") };
  t.equal(kilnHome(env), join(home, "nested"));
  t.equal(kilnHome({}).endsWith(".kiln"), true);
  const path = configPath(env);
  const old = process.umask(0);
  try {
    saveConfig({ api: "http://cc", token: "tok", user: "ann", space: { name: "dev", guid: "g" } }, path);
  } finally {
    process.umask(old);
  }
  t.equal(statSync(path).mode & 0o777, 0o600);
  t.strictSame(loadConfig(path), {
    api: "http://cc",
    token: "tok",
    user: "ann",
    space: { name: "dev", guid: "g" },
  });
  t.strictSame(JSON.parse(readFileSync(path, "utf8")).token, "tok");
  t.strictSame(loadConfig(join(home, "missing.json")), {});
  writeFileSync(path, "[1]");
  t.throws(() => loadConfig(path), { code: "KILN_CLI_CONFIG" });
});
