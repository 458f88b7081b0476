// stream.test.ts against the router's JavaScript upstream client (net sockets) instead of the native one.
process.env.KILN_TEST_UPSTREAM = "js";
await import("./stream.test.js");
