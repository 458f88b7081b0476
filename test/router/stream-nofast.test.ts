// stream.test.ts with the native upstream client driven from JavaScript (router/proxy/native-exchange.ts)
// instead of the native request path, which carries GETs in the default setup.
process.env.KILN_TEST_FAST_PATH = "off";
await import("./stream.test.js");
