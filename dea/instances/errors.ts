// Coded errors of the DEA's running instances: a droplet that cannot be fetched or trusted,
// an instance that cannot be given a user, a port or a container, and one that never
// became healthy. Each ends in a droplet.exited CRASHED carrying the message.
import { defineCodes } from "../../kernel/errors.js";
import { DeaError } from "../errors.js";

export const InstanceCodes = defineCodes("dea instances", {
  KILN_DEA_INSTANCE_DROPLET_NOT_FOUND: {
    summary:
      "The droplet named by a start request is not in the kiln_blobs object store; stage the app again.",
  },
  KILN_DEA_INSTANCE_DROPLET_SHA1: {
    summary:
      "The droplet fetched from the object store does not have the SHA-1 the start request names; it was replaced or damaged, stage the app again.",
  },
  KILN_DEA_INSTANCE_DROPLET_FETCH: {
    summary:
      "Downloading or unpacking a droplet failed (object store unreachable, disk full, a damaged archive); the message says which.",
  },
  KILN_DEA_INSTANCE_NO_COMMAND: {
    summary:
      "Neither the start request nor the droplet's .kiln/droplet.json gives a start command; set one on the app.",
  },
  KILN_DEA_INSTANCE_NO_UID: {
    summary: "Every user id of the DEA's instance uid range is taken; stop instances or widen the range.",
  },
  KILN_DEA_INSTANCE_START: {
    summary:
      "The instance's directory or container could not be set up or started; the message carries the cause.",
  },
  KILN_DEA_INSTANCE_HEALTH: {
    summary:
      "The instance did not pass its health check (port accepting, or the HTTP endpoint answering 2xx) within its health check timeout.",
  },
});

export type InstanceCode = keyof typeof InstanceCodes;

export class InstanceError extends DeaError<InstanceCode> {}
