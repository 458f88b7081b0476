// Loads uWebSockets.js and refuses its slow Node.js fallback: the package silently
// falls back ("Falling back to a NodeJS implementation") when its binary does not load.
import { createRequire } from "node:module";
import uWS from "@trufflesuite/uws-js-unofficial";
import { RouterError } from "./errors.js";

export type Uws = typeof uWS;

export function loadUws(): Uws {
  const require = createRequire(import.meta.url);
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  let native: unknown;
  try {
    native = require(`@trufflesuite/uws-js-unofficial/binaries/${name}`);
  } catch (err) {
    throw new RouterError(
      "KILN_ROUTER_UWS_UNAVAILABLE",
      `uWebSockets.js has no working binary ${name} for Node ${process.version}: ${(err as Error).message}`,
      err,
    );
  }
  if (native !== uWS) {
    throw new RouterError(
      "KILN_ROUTER_UWS_UNAVAILABLE",
      "uWebSockets.js fell back to its Node.js implementation",
    );
  }
  return uWS;
}
