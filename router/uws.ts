// uWebSockets.js as Kiln builds it: from the vendored sources in native/uws (binding.gyp
// target kiln_uws, built by the set-up with the native addon). Built here, not taken from
// npm, because the only Node 20 build there from a known publisher (20.30) closes the
// connection on a malformed request instead of answering 400/431; see native/uws/README.md.
import { createRequire } from "node:module";
import { join } from "node:path";
import { projectRoot } from "../kernel/paths.js";
import type * as UwsModule from "../native/uws/binding/index.js";
import { RouterError } from "./errors.js";

export type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  us_listen_socket,
  us_socket_context_t,
  WebSocket,
  WebSocketBehavior,
} from "../native/uws/binding/index.js";

export type Uws = typeof UwsModule;

/** The built uWebSockets.js binary. */
export const uwsBinary = join(projectRoot, "build", "Release", "kiln_uws.node");

/**
 * Loads uWebSockets.js in this thread. The header size limit is read once per process when
 * the binary first loads, from UWS_HTTP_MAX_HEADERS_SIZE (the router's main thread sets it
 * from --max-header-bytes before any worker starts).
 */
export function loadUws(): Uws {
  const require = createRequire(import.meta.url);
  try {
    return require(uwsBinary) as Uws;
  } catch (err) {
    throw new RouterError(
      "KILN_ROUTER_UWS_UNAVAILABLE",
      `uWebSockets.js is not built at ${uwsBinary} (run npm run build): ${(err as Error).message}`,
      err,
    );
  }
}
