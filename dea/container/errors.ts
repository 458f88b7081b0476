// Coded errors of the DEA's container layer (runc, cgroups, the isolation probe).
import { defineCodes } from "../../kernel/errors.js";
import { DeaError } from "../errors.js";

export const ContainerCodes = defineCodes("dea container", {
  KILN_DEA_CONTAINER_UNAVAILABLE: {
    summary:
      "runc cannot run a container on this machine (no runc, no cgroups or no namespaces); the message says why. Install runc and run as root, or start the DEA with --isolation none.",
  },
  KILN_DEA_CONTAINER_SPEC: {
    summary:
      "A container's specification is malformed (id, memory, pids, user or paths); the message names the field.",
  },
  KILN_DEA_CONTAINER_RUNC: {
    summary: "A runc command failed; the message carries runc's own error line.",
  },
  KILN_DEA_CONTAINER_NOT_FOUND: {
    summary: "No container with this id is known to runc under the DEA's runc root.",
  },
  KILN_DEA_CONTAINER_CGROUP: {
    summary: "A container's cgroup cannot be found or read; the container may already be deleted.",
  },
});

export type ContainerCode = keyof typeof ContainerCodes;

export class ContainerError extends DeaError<ContainerCode> {}
