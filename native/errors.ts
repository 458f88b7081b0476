// Coded errors of the native addon loader and the route table.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const NativeCodes = defineCodes("native", {
  KILN_NATIVE_LOAD_FAILED: {
    summary: "The native addon exists but failed to load; rebuild it with `npm run build`.",
  },
  KILN_NATIVE_ABI_MISMATCH: {
    summary: "The built addon is older than the code; rebuild it with `npm run build`.",
  },
  KILN_NATIVE_REQUIRED: { summary: "KILN_NATIVE=1 was set but the native addon is not built." },
  KILN_TABLE_CLOSED: { summary: "The route table was closed; create a new one." },
  KILN_TABLE_BAD_ROUTE: { summary: "A route must be host[/path] with a non-empty host." },
  KILN_TABLE_NOT_SHARED: { summary: "The fallback route table cannot be attached from another thread." },
  KILN_TABLE_BAD_ENDPOINT: {
    summary: "An endpoint needs a host, a port in 1-65535 and a non-negative endpoint_updated_at_ns.",
  },
  KILN_TABLE_NO_LAST_ENDPOINT: {
    summary: "Internal: registerLast() was called in a thread whose last register() did not succeed.",
  },
  KILN_TABLE_BAD_OPTION: {
    summary:
      "A route table option is out of range: emptyPoolTimeoutMs must be a finite number of ms, 0 or more.",
  },
  KILN_TABLE_UNKNOWN: { summary: "No open native route table has this id; it was closed or never created." },
  KILN_NATIVE_UNAVAILABLE: {
    summary: "The native addon is not loaded (not built, or KILN_NATIVE=0); use the fallback table.",
  },
});

export class NativeError extends KilnError {
  constructor(code: keyof typeof NativeCodes, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = "NativeError";
  }
}
