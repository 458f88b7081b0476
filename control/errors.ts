// The Cloud Controller's coded errors. Each carries the HTTP status the API answers with, so a
// handler throws a CcError and the server turns it into `{errors:[{code,title,detail}]}`.
// Codes of the parts that talk to DEAs (KILN_CC_NO_DEA, …) are declared with those parts; the
// server answers any KilnError that has a status the same way.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const CcCodes = defineCodes("control", {
  KILN_CC_UNAUTHENTICATED: {
    status: 401,
    summary: "No, unknown, revoked or expired token, or a wrong username or password; log in again.",
  },
  KILN_CC_FORBIDDEN: {
    status: 403,
    summary: "Only an admin may do this (create users or spaces, add members).",
  },
  KILN_CC_NOT_FOUND: {
    status: 404,
    summary: "No such resource or route, or it belongs to a space you are not a member of.",
  },
  KILN_CC_BODY_TOO_LARGE: {
    status: 413,
    summary: "The JSON body is over the controller's limit (KILN_CC_MAX_JSON_BYTES).",
  },
  KILN_CC_PACKAGE_TOO_LARGE: {
    status: 413,
    summary: "The uploaded package is over KILN_CC_MAX_PACKAGE_MB.",
  },
  KILN_CC_INVALID: {
    status: 422,
    summary: "The body is not JSON or a field is missing or malformed; the detail names the field.",
  },
  KILN_CC_NAME_TAKEN: {
    status: 422,
    summary: "An app (in this space), user or space of this name already exists; pick another name.",
  },
  KILN_CC_ROUTE_TAKEN: {
    status: 422,
    summary: "The host (and path) is held by a route of another space; pick another host.",
  },
  KILN_CC_CONFLICT: {
    status: 409,
    summary: "The record kept changing under concurrent writes and the update gave up; retry it.",
  },
  KILN_CC_STORE_UNAVAILABLE: {
    status: 503,
    summary: "JetStream (NATS) did not answer the controller; check that NATS is up and JetStream enabled.",
  },
  KILN_CC_INTERNAL: { status: 500, summary: "The controller failed unexpectedly; its log has the cause." },
  KILN_CC_CONFIG: {
    summary:
      "A setting of `kiln cc` (flag or KILN_CC_* environment variable) is malformed; the message names it.",
  },
  KILN_CC_LISTEN_FAILED: {
    summary: "The controller could not listen on its port (--port, --host); is it already taken?",
  },
  KILN_CC_DATA_DIR: {
    summary:
      "The controller cannot write <data dir>/admin-credentials.json; check --data-dir and its permissions.",
  },
});

export type CcCode = keyof typeof CcCodes;

export class CcError extends KilnError {
  declare readonly code: CcCode;
  /** HTTP status of the answer (every API code has one; config errors answer 500 if ever sent). */
  declare readonly status: number;

  constructor(code: CcCode, message: string, cause?: unknown) {
    super(code, message, {
      status: (CcCodes[code] as { status?: number }).status ?? 500,
      ...(cause === undefined ? {} : { cause }),
    });
    this.name = "CcError";
  }
}

/** 422 naming the field (`detail` says what is wrong with it). */
export function invalid(field: string, what: string): CcError {
  return new CcError("KILN_CC_INVALID", `${field} ${what}`);
}

/** 404 for a guid the caller may not see or that does not exist: the two look the same. */
export function notFound(kind: string, guid: string): CcError {
  return new CcError("KILN_CC_NOT_FOUND", `${kind} ${guid} not found`);
}
