// Loads the kiln_native addon, or the TypeScript fallback of the same interface.
// KILN_NATIVE=0 forces the fallback, KILN_NATIVE=1 requires the addon; any load
// error other than "the addon is not built" is rethrown, never silently hidden.
import { createRequire } from "node:module";
import { join } from "node:path";
import { projectRoot } from "../kernel/paths.js";
import { NativeError } from "./errors.js";

/** Must equal kiln::kAddonAbi in native/src/modules.h. */
export const ADDON_ABI = 4;

export interface AddonInfo {
  abi: number;
  napiVersion: number;
}

/** The raw exports of the addon (each concern adds its own entries). */
export interface NativeBinding {
  addonInfo(): AddonInfo;
  [name: string]: unknown;
}

export const addonPath = join(projectRoot, "build", "Release", "kiln_native.node");

function isNotFound(err: unknown, path: string): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; message?: unknown };
  return e.code === "MODULE_NOT_FOUND" && typeof e.message === "string" && e.message.includes(path);
}

/** Loads the addon at `path`: the binding, null when not built, or throws a coded error. */
export function loadAddon(path: string = addonPath, mode = process.env.KILN_NATIVE): NativeBinding | null {
  if (mode === "0") return null;
  const require = createRequire(import.meta.url);
  let binding: NativeBinding;
  try {
    binding = require(path) as NativeBinding;
  } catch (err) {
    if (isNotFound(err, path)) {
      if (mode === "1")
        throw new NativeError("KILN_NATIVE_REQUIRED", `KILN_NATIVE=1 but ${path} is not built`);
      return null;
    }
    throw new NativeError("KILN_NATIVE_LOAD_FAILED", `cannot load ${path}: ${(err as Error).message}`, err);
  }
  const info = binding.addonInfo();
  if (info.abi !== ADDON_ABI) {
    throw new NativeError(
      "KILN_NATIVE_ABI_MISMATCH",
      `${path} has ABI ${info.abi}, the code expects ${ADDON_ABI}; run npm run build`,
    );
  }
  return binding;
}

/** The addon of this thread, or null when the fallback is in use. */
export const binding: NativeBinding | null = loadAddon();

/** "native" or "fallback": what this thread runs on. */
export const implementation: "native" | "fallback" = binding === null ? "fallback" : "native";
