// app.kilnAny's handshake (native/src/fast_abi.h Handshake): the uWS binding reads the tag at
// the address it is given before any virtual call, so a bad address is a JavaScript error, not
// a crash. Only addresses that can be read safely are tried: 0n, values that are no address,
// and a readable address inside a FastBackend that is not its Handshake.
import t from "tap";
import { createNativeTable } from "../../native/table.js";
import { routerConfig } from "../../router/config.js";
import { ProxyContext } from "../../router/proxy/context.js";
import { FastPath } from "../../router/proxy/fast.js";
import { loadUws, type TemplatedApp } from "../../router/uws.js";

const uWS = loadUws();
const table = createNativeTable({ emptyPoolTimeoutMs: 0 });
const fast = new FastPath(new ProxyContext(routerConfig({}, {}), table, null), table.id);
const apps: TemplatedApp[] = [];
t.teardown(() => {
  // The backend must outlive the apps that were given its address.
  for (const app of apps) (app as TemplatedApp & { close(): void }).close();
  fast.close();
  table.close();
});

function app(): TemplatedApp {
  const a = uWS.App();
  apps.push(a);
  return a;
}

const handler = (): void => {};

t.test("a FastBackend's address is accepted", async (t) => {
  const a = app();
  t.equal(a.kilnAny("/*", fast.address(), handler), a);
});

t.test("values that are no address are refused", async (t) => {
  for (const bad of [0n, -8n, 2n ** 64n, 8n + 1n]) {
    t.throws(() => app().kilnAny("/*", bad, handler), /not a FastBackend address/, `${bad}n`);
  }
  t.throws(() => app().kilnAny("/*", 4096 as unknown as bigint, handler), /must be a BigInt/, "a number");
});

t.test("a readable address that does not hold the handshake is refused", async (t) => {
  // 8 bytes into the Handshake: its abi, size and backend fields are read as the magic.
  t.throws(() => app().kilnAny("/*", fast.address() + 8n, handler), /wrong magic/);
});
