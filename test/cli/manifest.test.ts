// manifest.yml: good manifests become the app to push, bad ones one line naming file, line and field.
import t from "tap";
import { type AppManifest, applyFlags, parseManifest } from "../../cli/push/manifest.js";
import { parseSizeMb } from "../../cli/push/size.js";
import { KilnError } from "../../kernel/errors.js";

const good: [string, string, AppManifest][] = [
  ["name only", "applications:\n- name: web\n", { name: "web" }],
  [
    "every field",
    `applications:
- name: web
  path: ./app
  instances: 3
  memory: 256M
  disk_quota: 1g
  command: node server.js
  buildpacks: [node]
  env:
    GREETING: hello
    PORTS: 2
    DEBUG: true
  routes:
  - route: web.localhost
  - route: api/v1
  random-route: false
  no-route: false
  health-check-type: http
  health-check-http-endpoint: /health
  timeout: 30
`,
    {
      name: "web",
      path: "./app",
      instances: 3,
      memoryMb: 256,
      diskMb: 1024,
      command: "node server.js",
      buildpacks: ["node"],
      env: { GREETING: "hello", PORTS: "2", DEBUG: "true" },
      routes: ["web.localhost", "api/v1"],
      randomRoute: false,
      noRoute: false,
      healthCheckType: "http",
      healthCheckHttpEndpoint: "/health",
      timeout: 30,
    },
  ],
  [
    "legacy buildpack",
    "applications:\n- name: w\n  buildpack: python\n",
    { name: "w", buildpacks: ["python"] },
  ],
  [
    "sizes in any case",
    "applications:\n- name: w\n  memory: 1GB\n  disk_quota: 512mb\n",
    { name: "w", memoryMb: 1024, diskMb: 512 },
  ],
];

for (const [label, text, want] of good) {
  t.test(`good: ${label}`, async (t) => {
    t.strictSame(parseManifest(text, "manifest.yml"), want);
  });
}

t.test("an application chosen by name", async (t) => {
  const text = "applications:\n- name: a\n  instances: 1\n- name: b\n  instances: 2\n";
  t.equal(parseManifest(text, "m.yml", "b").instances, 2);
  t.equal(parseManifest(text, "m.yml").name, "a");
});

const bad: [string, string, string][] = [
  [
    "memory not a size",
    "applications:\n- name: w\n  memory: lots\n",
    'manifest.yml:3: applications[0].memory: "lots" is not a size like 256M',
  ],
  [
    "disk without unit",
    "applications:\n- name: w\n  disk_quota: 1024\n",
    'manifest.yml:3: applications[0].disk_quota: "1024" is not a size like 256M',
  ],
  ["no applications", "name: w\n", "manifest.yml:1: applications: must be a list"],
  ["not a map", "- a\n- b\n", "manifest.yml:1: manifest: must be a map"],
  ["missing name", "applications:\n- memory: 1G\n", "manifest.yml:2: applications[0].name: is required"],
  [
    "instances negative",
    "applications:\n- name: w\n  instances: -1\n",
    "manifest.yml:3: applications[0].instances: -1 is not a whole number",
  ],
  [
    "instances text",
    "applications:\n- name: w\n  instances: two\n",
    'manifest.yml:3: applications[0].instances: "two" is not a whole number',
  ],
  [
    "unknown field",
    "applications:\n- name: w\n  memroy: 1G\n",
    "manifest.yml:3: applications[0].memroy: is not a field kiln knows",
  ],
  [
    "bad health check",
    "applications:\n- name: w\n  health-check-type: tcp\n",
    'manifest.yml:3: applications[0].health-check-type: "tcp" is not port, process or http',
  ],
  [
    "route without route key",
    "applications:\n- name: w\n  routes:\n  - host: x\n",
    "manifest.yml:4: applications[0].routes[0].route: is required",
  ],
  [
    "bad route",
    "applications:\n- name: w\n  routes:\n  - route: 'a b'\n",
    "manifest.yml:4: applications[0].routes[0].route:",
  ],
  [
    "env not a map",
    "applications:\n- name: w\n  env: [a]\n",
    "manifest.yml:3: applications[0].env: a list is not a map",
  ],
  [
    "env value a map",
    "applications:\n- name: w\n  env:\n    A: {b: 1}\n",
    "manifest.yml:4: applications[0].env.A:",
  ],
  [
    "both buildpack forms",
    "applications:\n- name: w\n  buildpacks: [a]\n  buildpack: b\n",
    "manifest.yml:4: applications[0].buildpack: cannot be given together",
  ],
  [
    "no-route not boolean",
    "applications:\n- name: w\n  no-route: maybe\n",
    'manifest.yml:3: applications[0].no-route: "maybe" is not true or false',
  ],
  [
    "endpoint without slash",
    "applications:\n- name: w\n  health-check-http-endpoint: health\n",
    "manifest.yml:3: applications[0].health-check-http-endpoint: must start with /",
  ],
  ["timeout zero", "applications:\n- name: w\n  timeout: 0\n", "manifest.yml:3: applications[0].timeout:"],
  ["not YAML", "applications:\n- name: w\n  memory: [1G\n", "manifest.yml:"],
  ["duplicate key", "applications:\n- name: w\n  name: v\n", "manifest.yml:3:"],
];

for (const [label, text, want] of bad) {
  t.test(`bad: ${label}`, async (t) => {
    try {
      parseManifest(text, "manifest.yml");
      t.fail("parsed");
    } catch (err) {
      t.ok(err instanceof KilnError);
      t.equal((err as KilnError).code, "KILN_CLI_MANIFEST");
      const message = (err as Error).message;
      t.ok(message.startsWith(want), `${message} starts with ${want}`);
      t.notMatch(message, /\n/, "one line");
    }
  });
}

t.test("flags win over the manifest", async (t) => {
  const m = parseManifest(
    "applications:\n- name: w\n  memory: 1G\n  instances: 2\n  buildpacks: [a]\n",
    "m.yml",
  );
  t.strictSame(applyFlags(m, { memoryMb: 256, buildpacks: ["b"], noRoute: true, instances: undefined }), {
    name: "w",
    memoryMb: 256,
    instances: 2,
    buildpacks: ["b"],
    noRoute: true,
  });
});

t.test("sizes: M, MB, G, GB in any case; anything else is null", async (t) => {
  const cases: [string, number | null][] = [
    ["256M", 256],
    ["256m", 256],
    ["256MB", 256],
    ["1G", 1024],
    ["2gb", 2048],
    ["1Gb", 1024],
    ["256", null],
    ["lots", null],
    ["1.5G", null],
    ["0M", null],
    ["-1G", null],
    ["1T", null],
    ["", null],
  ];
  for (const [text, mb] of cases) t.equal(parseSizeMb(text), mb, text);
});
