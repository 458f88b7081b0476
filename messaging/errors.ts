// Coded errors of the messaging layer: payload decoding (protobuf and gorouter JSON),
// the NATS connection, and the private nats-server launcher.
import { defineCodes, KilnError } from "../kernel/errors.js";

export const MessagingCodes = defineCodes("messaging", {
  KILN_MSG_BAD_PROTOBUF: { summary: "A NATS payload is not a valid protobuf message of its subject's type." },
  KILN_MSG_INVALID_FIELD: {
    summary: "A NATS payload decoded but a field is missing, empty or out of range; see the message.",
  },
  KILN_MSG_TOO_LARGE: { summary: "A NATS payload is larger than its subject allows; it was not parsed." },
  KILN_MSG_NOT_JSON: { summary: "A router.* payload is not a JSON object (gorouter format)." },
  KILN_MSG_MISSING_HOST: { summary: "A router.register/unregister message has no `host`." },
  KILN_MSG_BAD_PORT: {
    summary: "A router.register/unregister `port` (or `tls_port`) is not an integer in 1..65535.",
  },
  KILN_MSG_BAD_URIS: {
    summary: "A router.register/unregister `uris` is missing, empty or not all non-empty strings.",
  },
  KILN_MSG_BAD_OPTIONS: {
    summary:
      "A router.register `options` is invalid (loadbalancing, hash_header, hash_balance or max_conns_per_backend).",
  },
  KILN_MSG_BAD_HEADER_VALUE: {
    summary:
      "A router.register `app` / `private_instance_id` is not a visible-ASCII token of at most 128 characters, or `private_instance_index` is not 1-10 digits (they go into X-CF-* headers and the `__VCAP_ID__` cookie).",
  },
  KILN_MSG_BAD_ROUTE_SERVICE_URL: {
    summary:
      "A router.register `route_service_url` is not an absolute http(s) URL of visible ASCII (at most 2048 characters, no user info).",
  },
  KILN_MSG_BAD_SUBJECT_TOKEN: {
    summary: "A subject token (app guid, DEA id) is empty or holds `.`, `*`, `>` or whitespace.",
  },
  KILN_MSG_UNKNOWN_SUBJECT: { summary: "No payload type is defined for this NATS subject." },
  KILN_MSG_BUFFER_FULL: {
    summary: "NATS is unreachable and the reconnect buffer is full; the publish was refused.",
  },
  KILN_MSG_CONNECTION_CLOSED: { summary: "The NATS connection was closed; create a new one." },
  KILN_MSG_CONNECT_FAILED: { summary: "Could not connect to NATS; check the URL, user and password." },
  KILN_MSG_JETSTREAM: {
    summary: "A JetStream stream or the object store could not be opened or created; the message says why.",
  },
  KILN_NATS_START_FAILED: {
    summary: "The private nats-server did not start; the message holds the tail of its output.",
  },
  KILN_NATS_NOT_INSTALLED: {
    summary: "nats-server is not installed; run `npm run setup` (or apt-get install nats-server).",
  },
  KILN_NATS_BAD_CREDENTIALS_FILE: {
    summary: "The data dir's credentials.json is unreadable or malformed; fix or delete it.",
  },
  KILN_NATS_UNKNOWN_COMPONENT: {
    summary: "No NATS user exists for this component (router, cc, dea, hm, cli, admin).",
  },
});

export type MessagingCode = keyof typeof MessagingCodes;

export class MessagingError extends KilnError {
  override readonly code: MessagingCode;

  constructor(code: MessagingCode, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = "MessagingError";
    this.code = code;
  }
}
