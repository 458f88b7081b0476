// The environment of an instance as Cloud Foundry sets it: PORT, VCAP_APPLICATION,
// VCAP_SERVICES, CF_INSTANCE_*, MEMORY_LIMIT and the app's own variables. Built from the
// start request alone, never from the DEA's environment, so no NATS credential or KILN_*
// setting of the DEA can reach an app.
import type { StartRequest } from "../../messaging/codec.js";

export interface InstanceEnvInput {
  req: Pick<
    StartRequest,
    "app" | "appName" | "space" | "version" | "memoryMb" | "diskMb" | "env" | "uris" | "servicesJson"
  >;
  index: number;
  instanceId: string;
  /** Host port the instance listens on (instances share the host network). */
  port: number;
  /** Address the DEA's instances are reached on (router.register's host). */
  host: string;
  /** The app directory as the app sees it (/home/vcap/app in a container). */
  home: string;
  /** Most open files (the container's RLIMIT_NOFILE). */
  fds: number;
}

/**
 * Every variable of the instance. The app's own variables come first and the platform's
 * over them, so an app cannot break PORT or VCAP_APPLICATION by accident.
 */
export function instanceEnv(input: InstanceEnvInput): Record<string, string> {
  const { req, index, instanceId, port, host } = input;
  const vcapApplication = {
    application_id: req.app,
    application_name: req.appName,
    application_uris: req.uris,
    application_version: req.version,
    instance_id: instanceId,
    instance_index: index,
    space_name: req.space,
    name: req.appName,
    uris: req.uris,
    version: req.version,
    limits: { mem: req.memoryMb, disk: req.diskMb, fds: input.fds },
    host: "0.0.0.0",
    port,
  };
  return {
    ...req.env,
    PORT: String(port),
    VCAP_APP_PORT: String(port),
    VCAP_APP_HOST: "0.0.0.0",
    VCAP_APPLICATION: JSON.stringify(vcapApplication),
    VCAP_SERVICES: req.servicesJson === "" ? "{}" : req.servicesJson,
    CF_INSTANCE_INDEX: String(index),
    CF_INSTANCE_GUID: instanceId,
    CF_INSTANCE_IP: host,
    CF_INSTANCE_PORT: String(port),
    CF_INSTANCE_ADDR: `${host}:${port}`,
    HOME: input.home,
    TMPDIR: "/tmp",
    MEMORY_LIMIT: `${req.memoryMb}m`,
  };
}
