// The coded error base of every Kiln component. Each area declares its codes once
// with `defineCodes` (in its own errors.ts); a duplicate code anywhere throws at load,
// and test/kernel/errors.test.ts checks every code is unique and documented.

export interface CodeSpec {
  /** HTTP status the code maps to, where one applies. */
  status?: number;
  /** One line a user can act on; also the documentation of the code. */
  summary: string;
}

const registry = new Map<string, CodeSpec & { area: string }>();

/** Registers an area's codes; throws when a code is already taken. */
export function defineCodes<const T extends Record<string, CodeSpec>>(area: string, codes: T): T {
  for (const [code, spec] of Object.entries(codes)) {
    if (!/^KILN_[A-Z0-9]+(_[A-Z0-9]+)+$/.test(code)) {
      throw new Error(`error code ${code} of ${area} is not of the form KILN_AREA_NAME`);
    }
    const held = registry.get(code);
    if (held !== undefined) throw new Error(`error code ${code} of ${area} already defined by ${held.area}`);
    registry.set(code, { ...spec, area });
  }
  return codes;
}

/** Every registered code (for the uniqueness/documentation test and `kiln --help errors`). */
export function allCodes(): ReadonlyMap<string, CodeSpec & { area: string }> {
  return registry;
}

export class KilnError extends Error {
  readonly code: string;
  readonly status: number | undefined;

  constructor(code: string, message: string, options?: { status?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KilnError";
    this.code = code;
    this.status = options?.status ?? registry.get(code)?.status;
  }

  toJSON(): { code: string; message: string; status?: number } {
    return this.status === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, status: this.status };
  }
}

export const KernelCodes = defineCodes("kernel", {
  KILN_KERNEL_CHILD_FAILED: { summary: "A component of the kernel exited unexpectedly; see its log lines." },
  KILN_KERNEL_DATA_DIR: { summary: "The data directory cannot be created or written; check --data-dir." },
  KILN_KERNEL_CONFIG: {
    summary:
      "A setting of `kiln up` or `kiln nats` (flag or KILN_* environment variable) is malformed; the message names it.",
  },
  KILN_KERNEL_STATUS_CREDENTIALS: {
    summary:
      "<data dir>/router/status-credentials.json is unreadable or malformed; fix it or delete it to generate new ones.",
  },
});
