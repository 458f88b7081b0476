// proxy.test.ts with the native upstream client but without the native request path, so
// every request goes through the JavaScript handler (router/worker.ts) as before.
process.env.KILN_TEST_FAST_PATH = "off";
await import("./proxy.test.js");
