// Typed protobuf payloads of the kernel-internal subjects. The wire format is the code
// generated from messaging/schemas/*.proto; this file maps each subject to its message
// type, converts to plain TypeScript values (no Long, enums as strings) and validates
// what proto3 cannot express (non-empty ids, enum ranges, sizes). Decode and encode
// throw MessagingError; nothing here touches the network.
import { MessagingError } from "./errors.js";
import { kiln } from "./generated/kiln.js";

// ---------------------------------------------------------------------------------------
// Plain types (what callers see). Decoded values always have every field set.

export type InstanceState = "STARTING" | "RUNNING" | "CRASHED" | "STOPPING" | "STOPPED";
export type ExitReason = "STOPPED" | "CRASHED" | "DEA_SHUTDOWN" | "DEA_EVACUATION";
export type HmOp = "START" | "STOP";
export type LogSource = "APP" | "STG" | "RTR" | "API" | "HM";

/** dea.discover (CC → every DEA, request). */
export interface DeaDiscover {
  app: string;
  version: string;
  memoryMb: number;
  diskMb: number;
  stack: string;
  excludeDeaIds: string[];
}

/** Reply to dea.discover. */
export interface DeaDiscoverReply {
  deaId: string;
  appInstances: number;
  availableMemoryMb: number;
  availableDiskMb: number;
  taintMs: number;
}

/** dea.<id>.stage (CC → one DEA, request). */
export interface StageRequest {
  app: string;
  taskId: string;
  packageKey: string;
  buildpack: string;
  stack: string;
  env: Record<string, string>;
  memoryMb: number;
  diskMb: number;
  timeoutMs: number;
}

/** Reply to dea.<id>.stage. */
export interface StageReply {
  taskId: string;
  ok: boolean;
  dropletKey: string;
  dropletSha1: string;
  detectedBuildpack: string;
  startCommand: string;
  error: string;
  /** The error's code; empty when ok. */
  errorCode: string;
  /** Last lines of the staging log (at most 20). */
  logTail: string[];
}

/** dea.<id>.start (CC → one DEA). */
export interface StartRequest {
  app: string;
  appName: string;
  space: string;
  version: string;
  dropletKey: string;
  dropletSha1: string;
  indices: number[];
  memoryMb: number;
  diskMb: number;
  startCommand: string;
  env: Record<string, string>;
  uris: string[];
  servicesJson: string;
  healthCheckType: string;
  healthCheckHttpEndpoint: string;
  healthCheckTimeoutMs: number;
}

/** dea.stop (CC/HM → every DEA). Empty indices and instanceIds = every instance of the app. */
export interface StopRequest {
  app: string;
  version: string;
  indices: number[];
  instanceIds: string[];
}

/**
 * dea.update (CC → every DEA): the complete route list of an app, for its running instances
 * of `version`; the DEA registers what is new and unregisters what is gone.
 */
export interface UpdateRequest {
  app: string;
  version: string;
  uris: string[];
}

/** One instance in a DEA heartbeat. Times are Unix ms. */
export interface InstanceHeartbeat {
  app: string;
  instanceId: string;
  index: number;
  version: string;
  state: InstanceState;
  stateSince: number;
  memoryBytes: number;
  diskBytes: number;
  cpuPermille: number;
  /** Where the instance answers: the DEA's host and its port (0 before it has one). */
  host: string;
  port: number;
}

/** dea.heartbeat (DEA → HM/CC). */
export interface DeaHeartbeat {
  deaId: string;
  at: number;
  instances: InstanceHeartbeat[];
}

/** dea.advertise (DEA → CC). */
export interface DeaAdvertise {
  deaId: string;
  host: string;
  stacks: string[];
  availableMemoryMb: number;
  availableDiskMb: number;
  appInstanceCounts: Record<string, number>;
  placementZone: string;
  at: number;
  /** "runc" or "none". */
  isolation: string;
  /** In use = capacity - available. */
  memoryCapacityMb: number;
  diskCapacityMb: number;
}

/** droplet.exited (DEA → HM/CC). `exitStatus` < 0 means killed by that signal number. */
export interface DropletExited {
  app: string;
  instanceId: string;
  index: number;
  reason: ExitReason;
  exitStatus: number;
  at: number;
  version: string;
  deaId: string;
  description: string;
}

/** cc.hm.requests (HM → one CC). */
export interface HmRequest {
  op: HmOp;
  app: string;
  indices: number[];
  version: string;
}

/** logs.<app_guid>. */
export interface LogLine {
  at: number;
  source: LogSource;
  index: number;
  stream: string;
  text: string;
}

/** Payload type of each kind of subject; `:reply` kinds are the replies to a request subject. */
export interface Payloads {
  "dea.discover": DeaDiscover;
  "dea.discover:reply": DeaDiscoverReply;
  "dea.stage": StageRequest;
  "dea.stage:reply": StageReply;
  "dea.start": StartRequest;
  "dea.stop": StopRequest;
  "dea.update": UpdateRequest;
  "dea.heartbeat": DeaHeartbeat;
  "dea.advertise": DeaAdvertise;
  "droplet.exited": DropletExited;
  "cc.hm.requests": HmRequest;
  logs: LogLine;
}

export type PayloadKind = keyof Payloads;

/** What encode accepts: the fields that must be set, the rest optional (proto3 defaults). */
type With<T, R extends keyof T> = Pick<T, R> & Partial<Omit<T, R>>;
export type InstanceHeartbeatInput = With<InstanceHeartbeat, "app" | "instanceId" | "index" | "state">;
export interface Inputs {
  "dea.discover": With<DeaDiscover, "app" | "memoryMb">;
  "dea.discover:reply": With<DeaDiscoverReply, "deaId">;
  "dea.stage": With<StageRequest, "app" | "taskId" | "packageKey">;
  "dea.stage:reply": With<StageReply, "taskId" | "ok">;
  "dea.start": With<StartRequest, "app" | "version" | "dropletKey" | "indices" | "memoryMb">;
  "dea.stop": With<StopRequest, "app">;
  "dea.update": With<UpdateRequest, "app" | "version">;
  "dea.heartbeat": With<Omit<DeaHeartbeat, "instances">, "deaId" | "at"> & {
    instances?: InstanceHeartbeatInput[];
  };
  "dea.advertise": With<DeaAdvertise, "deaId" | "host">;
  "droplet.exited": With<DropletExited, "app" | "instanceId" | "index" | "reason" | "at">;
  "cc.hm.requests": With<HmRequest, "op" | "app">;
  logs: With<LogLine, "at" | "source" | "text">;
}

// ---------------------------------------------------------------------------------------
// Limits.

/** NATS' default max_payload; no kernel-internal message may exceed it. */
export const MAX_PROTOBUF_BYTES = 1024 * 1024;
/** A log line (text included) above this is refused; the DEA splits longer lines. */
export const MAX_LOG_LINE_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Enum tables (plain string ↔ generated number). Index = wire value; 0 is "unspecified".

const INSTANCE_STATES: readonly (InstanceState | null)[] = [
  null,
  "STARTING",
  "RUNNING",
  "CRASHED",
  "STOPPING",
  "STOPPED",
];
const EXIT_REASONS: readonly (ExitReason | null)[] = [
  null,
  "STOPPED",
  "CRASHED",
  "DEA_SHUTDOWN",
  "DEA_EVACUATION",
];
const HM_OPS: readonly (HmOp | null)[] = [null, "START", "STOP"];
const LOG_SOURCES: readonly (LogSource | null)[] = [null, "APP", "STG", "RTR", "API", "HM"];

function invalid(kind: string, field: string, why: string): MessagingError {
  return new MessagingError("KILN_MSG_INVALID_FIELD", `${kind}: ${field} ${why}`);
}

function enumName<T extends string>(
  table: readonly (T | null)[],
  value: number,
  kind: string,
  field: string,
): T {
  const name = Number.isInteger(value) ? table[value] : undefined;
  if (name === undefined || name === null) throw invalid(kind, field, `has no valid value (${value})`);
  return name;
}

function enumNumber<T extends string>(
  table: readonly (T | null)[],
  name: T,
  kind: string,
  field: string,
): number {
  const n = table.indexOf(name);
  if (n <= 0) throw invalid(kind, field, `must be one of ${table.slice(1).join(", ")} (got ${String(name)})`);
  return n;
}

/** What --force-long code returns for int64 fields (a `long` Long), structurally. */
interface LongLike {
  toNumber(): number;
  toString(): string;
}

/** An int64/uint64 from the generated code as a safe JavaScript number. */
function i64(value: LongLike | number | null | undefined, kind: string, field: string): number {
  if (value === null || value === undefined) return 0;
  const n = typeof value === "number" ? value : value.toNumber();
  if (!Number.isSafeInteger(n) || (typeof value !== "number" && value.toString() !== String(n))) {
    throw invalid(kind, field, "is beyond 2^53");
  }
  return n;
}

function nonEmpty(value: string, kind: string, field: string): void {
  if (value.length === 0) throw invalid(kind, field, "must not be empty");
}

function positive(value: number, kind: string, field: string): void {
  if (!(value > 0)) throw invalid(kind, field, "must be greater than 0");
}

function uint32(value: number, kind: string, field: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw invalid(kind, field, `must be an integer in 0..2^32-1 (got ${value})`);
  }
}

function uint32s(values: readonly number[], kind: string, field: string): void {
  for (let i = 0; i < values.length; i++) uint32(values[i] as number, kind, `${field}[${i}]`);
}

function safeUint(value: number, kind: string, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw invalid(kind, field, `must be a non-negative integer`);
}

function timestamp(value: number, kind: string, field: string): void {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw invalid(kind, field, "must be a Unix time in ms (> 0)");
}

// ---------------------------------------------------------------------------------------
// Per-kind descriptors: defaults (fill), checks, and the generated type.

interface WireType {
  encode(message: object): { finish(): Uint8Array };
  decode(reader: Uint8Array): object;
}

interface Descriptor<K extends PayloadKind> {
  type: WireType;
  maxBytes: number;
  /** Input → full plain value with proto3 defaults (copies arrays/maps it keeps). */
  fill(input: Inputs[K]): Payloads[K];
  /** Throws KILN_MSG_INVALID_FIELD when the value cannot be a valid message. */
  check(value: Payloads[K]): void;
  /** Plain value → properties of the generated type (enums as numbers). */
  toWire(value: Payloads[K]): object;
  /** Decoded generated message → plain value. */
  fromWire(message: object): Payloads[K];
}

type Descriptors = { [K in PayloadKind]: Descriptor<K> };

const heartbeatInstanceFill = (i: InstanceHeartbeatInput): InstanceHeartbeat => ({
  app: i.app,
  instanceId: i.instanceId,
  index: i.index,
  version: i.version ?? "",
  state: i.state,
  stateSince: i.stateSince ?? 0,
  memoryBytes: i.memoryBytes ?? 0,
  diskBytes: i.diskBytes ?? 0,
  cpuPermille: i.cpuPermille ?? 0,
  host: i.host ?? "",
  port: i.port ?? 0,
});

const descriptors: Descriptors = {
  "dea.discover": {
    type: kiln.DeaDiscover,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      app: i.app,
      version: i.version ?? "",
      memoryMb: i.memoryMb,
      diskMb: i.diskMb ?? 0,
      stack: i.stack ?? "",
      excludeDeaIds: i.excludeDeaIds ?? [],
    }),
    check(v) {
      const k = "dea.discover";
      nonEmpty(v.app, k, "app");
      uint32(v.memoryMb, k, "memoryMb");
      positive(v.memoryMb, k, "memoryMb");
      uint32(v.diskMb, k, "diskMb");
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.DeaDiscover;
      return {
        app: w.app,
        version: w.version,
        memoryMb: w.memoryMb,
        diskMb: w.diskMb,
        stack: w.stack,
        excludeDeaIds: w.excludeDeaIds,
      };
    },
  },
  "dea.discover:reply": {
    type: kiln.DeaDiscoverReply,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      deaId: i.deaId,
      appInstances: i.appInstances ?? 0,
      availableMemoryMb: i.availableMemoryMb ?? 0,
      availableDiskMb: i.availableDiskMb ?? 0,
      taintMs: i.taintMs ?? 0,
    }),
    check(v) {
      const k = "dea.discover:reply";
      nonEmpty(v.deaId, k, "deaId");
      uint32(v.appInstances, k, "appInstances");
      uint32(v.availableMemoryMb, k, "availableMemoryMb");
      uint32(v.availableDiskMb, k, "availableDiskMb");
      uint32(v.taintMs, k, "taintMs");
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.DeaDiscoverReply;
      return {
        deaId: w.deaId,
        appInstances: w.appInstances,
        availableMemoryMb: w.availableMemoryMb,
        availableDiskMb: w.availableDiskMb,
        taintMs: w.taintMs,
      };
    },
  },
  "dea.stage": {
    type: kiln.StageRequest,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      app: i.app,
      taskId: i.taskId,
      packageKey: i.packageKey,
      buildpack: i.buildpack ?? "",
      stack: i.stack ?? "",
      env: i.env ?? {},
      memoryMb: i.memoryMb ?? 0,
      diskMb: i.diskMb ?? 0,
      timeoutMs: i.timeoutMs ?? 0,
    }),
    check(v) {
      const k = "dea.stage";
      nonEmpty(v.app, k, "app");
      nonEmpty(v.taskId, k, "taskId");
      nonEmpty(v.packageKey, k, "packageKey");
      uint32(v.memoryMb, k, "memoryMb");
      uint32(v.diskMb, k, "diskMb");
      uint32(v.timeoutMs, k, "timeoutMs");
      checkStringMap(v.env, k, "env");
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.StageRequest;
      return {
        app: w.app,
        taskId: w.taskId,
        packageKey: w.packageKey,
        buildpack: w.buildpack,
        stack: w.stack,
        env: plainMap(w.env),
        memoryMb: w.memoryMb,
        diskMb: w.diskMb,
        timeoutMs: w.timeoutMs,
      };
    },
  },
  "dea.stage:reply": {
    type: kiln.StageReply,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      taskId: i.taskId,
      ok: i.ok,
      dropletKey: i.dropletKey ?? "",
      dropletSha1: i.dropletSha1 ?? "",
      detectedBuildpack: i.detectedBuildpack ?? "",
      startCommand: i.startCommand ?? "",
      error: i.error ?? "",
      errorCode: i.errorCode ?? "",
      logTail: i.logTail ?? [],
    }),
    check(v) {
      const k = "dea.stage:reply";
      nonEmpty(v.taskId, k, "taskId");
      if (v.ok) nonEmpty(v.dropletKey, k, "dropletKey (of a successful staging)");
      else nonEmpty(v.error, k, "error (of a failed staging)");
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.StageReply;
      return {
        taskId: w.taskId,
        ok: w.ok,
        dropletKey: w.dropletKey,
        dropletSha1: w.dropletSha1,
        detectedBuildpack: w.detectedBuildpack,
        startCommand: w.startCommand,
        error: w.error,
        errorCode: w.errorCode,
        logTail: w.logTail,
      };
    },
  },
  "dea.start": {
    type: kiln.StartRequest,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      app: i.app,
      appName: i.appName ?? "",
      space: i.space ?? "",
      version: i.version,
      dropletKey: i.dropletKey,
      dropletSha1: i.dropletSha1 ?? "",
      indices: i.indices,
      memoryMb: i.memoryMb,
      diskMb: i.diskMb ?? 0,
      startCommand: i.startCommand ?? "",
      env: i.env ?? {},
      uris: i.uris ?? [],
      servicesJson: i.servicesJson ?? "",
      healthCheckType: i.healthCheckType ?? "",
      healthCheckHttpEndpoint: i.healthCheckHttpEndpoint ?? "",
      healthCheckTimeoutMs: i.healthCheckTimeoutMs ?? 0,
    }),
    check(v) {
      const k = "dea.start";
      nonEmpty(v.app, k, "app");
      nonEmpty(v.version, k, "version");
      nonEmpty(v.dropletKey, k, "dropletKey");
      if (v.indices.length === 0) throw invalid(k, "indices", "must name at least one instance index");
      uint32s(v.indices, k, "indices");
      uint32(v.memoryMb, k, "memoryMb");
      positive(v.memoryMb, k, "memoryMb");
      uint32(v.diskMb, k, "diskMb");
      uint32(v.healthCheckTimeoutMs, k, "healthCheckTimeoutMs");
      checkStringMap(v.env, k, "env");
      for (let i = 0; i < v.uris.length; i++) nonEmpty(v.uris[i] as string, k, `uris[${i}]`);
      const hc = v.healthCheckType;
      if (hc !== "" && hc !== "port" && hc !== "process" && hc !== "http") {
        throw invalid(k, "healthCheckType", `must be port, process or http (got ${JSON.stringify(hc)})`);
      }
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.StartRequest;
      return {
        app: w.app,
        appName: w.appName,
        space: w.space,
        version: w.version,
        dropletKey: w.dropletKey,
        dropletSha1: w.dropletSha1,
        indices: w.indices,
        memoryMb: w.memoryMb,
        diskMb: w.diskMb,
        startCommand: w.startCommand,
        env: plainMap(w.env),
        uris: w.uris,
        servicesJson: w.servicesJson,
        healthCheckType: w.healthCheckType,
        healthCheckHttpEndpoint: w.healthCheckHttpEndpoint,
        healthCheckTimeoutMs: w.healthCheckTimeoutMs,
      };
    },
  },
  "dea.stop": {
    type: kiln.StopRequest,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      app: i.app,
      version: i.version ?? "",
      indices: i.indices ?? [],
      instanceIds: i.instanceIds ?? [],
    }),
    check(v) {
      const k = "dea.stop";
      nonEmpty(v.app, k, "app");
      uint32s(v.indices, k, "indices");
      for (let i = 0; i < v.instanceIds.length; i++)
        nonEmpty(v.instanceIds[i] as string, k, `instanceIds[${i}]`);
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.StopRequest;
      return { app: w.app, version: w.version, indices: w.indices, instanceIds: w.instanceIds };
    },
  },
  "dea.update": {
    type: kiln.UpdateRequest,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({ app: i.app, version: i.version, uris: i.uris ?? [] }),
    check(v) {
      const k = "dea.update";
      nonEmpty(v.app, k, "app");
      // Without it a DEA could not tell an update for the instances it runs from a stale one.
      nonEmpty(v.version, k, "version");
      for (let i = 0; i < v.uris.length; i++) nonEmpty(v.uris[i] as string, k, `uris[${i}]`);
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.UpdateRequest;
      return { app: w.app, version: w.version, uris: w.uris };
    },
  },
  "dea.heartbeat": {
    type: kiln.DeaHeartbeat,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      deaId: i.deaId,
      at: i.at,
      instances: i.instances === undefined ? [] : i.instances.map(heartbeatInstanceFill),
    }),
    check(v) {
      const k = "dea.heartbeat";
      nonEmpty(v.deaId, k, "deaId");
      timestamp(v.at, k, "at");
      for (let n = 0; n < v.instances.length; n++) {
        const i = v.instances[n] as InstanceHeartbeat;
        const f = `instances[${n}].`;
        nonEmpty(i.app, k, `${f}app`);
        nonEmpty(i.instanceId, k, `${f}instanceId`);
        uint32(i.index, k, `${f}index`);
        enumNumber(INSTANCE_STATES, i.state, k, `${f}state`);
        safeUint(i.stateSince, k, `${f}stateSince`);
        safeUint(i.memoryBytes, k, `${f}memoryBytes`);
        safeUint(i.diskBytes, k, `${f}diskBytes`);
        uint32(i.cpuPermille, k, `${f}cpuPermille`);
        if (i.port > 65535 || !Number.isInteger(i.port) || i.port < 0)
          throw invalid(k, `${f}port`, "must be a port number (0 to 65535)");
      }
    },
    toWire: (v) => ({
      deaId: v.deaId,
      at: v.at,
      instances: v.instances.map((i) => ({
        ...i,
        state: enumNumber(INSTANCE_STATES, i.state, "dea.heartbeat", "state"),
      })),
    }),
    fromWire(m) {
      const k = "dea.heartbeat";
      const w = m as kiln.DeaHeartbeat;
      const instances: InstanceHeartbeat[] = new Array(w.instances.length);
      for (let n = 0; n < w.instances.length; n++) {
        const i = w.instances[n] as kiln.InstanceHeartbeat;
        const f = `instances[${n}].`;
        instances[n] = {
          app: i.app,
          instanceId: i.instanceId,
          index: i.index,
          version: i.version,
          state: enumName(INSTANCE_STATES, i.state, k, `${f}state`),
          stateSince: i64(i.stateSince, k, `${f}stateSince`),
          memoryBytes: i64(i.memoryBytes, k, `${f}memoryBytes`),
          diskBytes: i64(i.diskBytes, k, `${f}diskBytes`),
          cpuPermille: i.cpuPermille,
          host: i.host,
          port: i.port,
        };
      }
      return { deaId: w.deaId, at: i64(w.at, k, "at"), instances };
    },
  },
  "dea.advertise": {
    type: kiln.DeaAdvertise,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      deaId: i.deaId,
      host: i.host,
      stacks: i.stacks ?? [],
      availableMemoryMb: i.availableMemoryMb ?? 0,
      availableDiskMb: i.availableDiskMb ?? 0,
      appInstanceCounts: i.appInstanceCounts ?? {},
      placementZone: i.placementZone ?? "",
      at: i.at ?? 0,
      isolation: i.isolation ?? "",
      memoryCapacityMb: i.memoryCapacityMb ?? 0,
      diskCapacityMb: i.diskCapacityMb ?? 0,
    }),
    check(v) {
      const k = "dea.advertise";
      nonEmpty(v.deaId, k, "deaId");
      nonEmpty(v.host, k, "host");
      uint32(v.availableMemoryMb, k, "availableMemoryMb");
      uint32(v.availableDiskMb, k, "availableDiskMb");
      uint32(v.memoryCapacityMb, k, "memoryCapacityMb");
      uint32(v.diskCapacityMb, k, "diskCapacityMb");
      safeUint(v.at, k, "at");
      for (const app in v.appInstanceCounts) {
        uint32(v.appInstanceCounts[app] as number, k, `appInstanceCounts[${app}]`);
      }
    },
    toWire: (v) => v,
    fromWire(m) {
      const w = m as kiln.DeaAdvertise;
      const counts: Record<string, number> = {};
      for (const app in w.appInstanceCounts) counts[app] = w.appInstanceCounts[app] as number;
      return {
        deaId: w.deaId,
        host: w.host,
        stacks: w.stacks,
        availableMemoryMb: w.availableMemoryMb,
        availableDiskMb: w.availableDiskMb,
        appInstanceCounts: counts,
        placementZone: w.placementZone,
        at: i64(w.at, "dea.advertise", "at"),
        isolation: w.isolation,
        memoryCapacityMb: w.memoryCapacityMb,
        diskCapacityMb: w.diskCapacityMb,
      };
    },
  },
  "droplet.exited": {
    type: kiln.DropletExited,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({
      app: i.app,
      instanceId: i.instanceId,
      index: i.index,
      reason: i.reason,
      exitStatus: i.exitStatus ?? 0,
      at: i.at,
      version: i.version ?? "",
      deaId: i.deaId ?? "",
      description: i.description ?? "",
    }),
    check(v) {
      const k = "droplet.exited";
      nonEmpty(v.app, k, "app");
      nonEmpty(v.instanceId, k, "instanceId");
      uint32(v.index, k, "index");
      enumNumber(EXIT_REASONS, v.reason, k, "reason");
      if (!Number.isInteger(v.exitStatus) || v.exitStatus < -2147483648 || v.exitStatus > 2147483647) {
        throw invalid(k, "exitStatus", "must be a 32-bit integer");
      }
      timestamp(v.at, k, "at");
    },
    toWire: (v) => ({ ...v, reason: enumNumber(EXIT_REASONS, v.reason, "droplet.exited", "reason") }),
    fromWire(m) {
      const k = "droplet.exited";
      const w = m as kiln.DropletExited;
      return {
        app: w.app,
        instanceId: w.instanceId,
        index: w.index,
        reason: enumName(EXIT_REASONS, w.reason, k, "reason"),
        exitStatus: w.exitStatus,
        at: i64(w.at, k, "at"),
        version: w.version,
        deaId: w.deaId,
        description: w.description,
      };
    },
  },
  "cc.hm.requests": {
    type: kiln.HmRequest,
    maxBytes: MAX_PROTOBUF_BYTES,
    fill: (i) => ({ op: i.op, app: i.app, indices: i.indices ?? [], version: i.version ?? "" }),
    check(v) {
      const k = "cc.hm.requests";
      enumNumber(HM_OPS, v.op, k, "op");
      nonEmpty(v.app, k, "app");
      uint32s(v.indices, k, "indices");
    },
    toWire: (v) => ({ ...v, op: enumNumber(HM_OPS, v.op, "cc.hm.requests", "op") }),
    fromWire(m) {
      const w = m as kiln.HmRequest;
      return {
        op: enumName(HM_OPS, w.op, "cc.hm.requests", "op"),
        app: w.app,
        indices: w.indices,
        version: w.version,
      };
    },
  },
  logs: {
    type: kiln.LogLine,
    maxBytes: MAX_LOG_LINE_BYTES,
    fill: (i) => ({ at: i.at, source: i.source, index: i.index ?? 0, stream: i.stream ?? "", text: i.text }),
    check(v) {
      const k = "logs";
      timestamp(v.at, k, "at");
      enumNumber(LOG_SOURCES, v.source, k, "source");
      uint32(v.index, k, "index");
      if (v.stream.length > 32) throw invalid(k, "stream", "must be at most 32 characters");
    },
    toWire: (v) => ({ ...v, source: enumNumber(LOG_SOURCES, v.source, "logs", "source") }),
    fromWire(m) {
      const w = m as kiln.LogLine;
      return {
        at: i64(w.at, "logs", "at"),
        source: enumName(LOG_SOURCES, w.source, "logs", "source"),
        index: w.index,
        stream: w.stream,
        text: w.text,
      };
    },
  },
};

function checkStringMap(map: Record<string, string>, kind: string, field: string): void {
  if (typeof map !== "object" || map === null) throw invalid(kind, field, "must be an object");
  for (const key in map) {
    if (key.length === 0) throw invalid(kind, field, "has an empty key");
    if (typeof map[key] !== "string") throw invalid(kind, `${field}.${key}`, "must be a string");
  }
}

/** Maps from the generated code are plain objects already; copy so callers own a clean one. */
function plainMap(map: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in map) out[key] = map[key] as string;
  return out;
}

// ---------------------------------------------------------------------------------------
// Public API.

/** Encodes a payload of `kind`; throws KILN_MSG_INVALID_FIELD / KILN_MSG_TOO_LARGE. */
export function encode<K extends PayloadKind>(kind: K, input: Inputs[K]): Uint8Array {
  const d = descriptors[kind] as Descriptor<K> | undefined;
  if (d === undefined) throw new MessagingError("KILN_MSG_UNKNOWN_SUBJECT", `no payload type for ${kind}`);
  const value = d.fill(input);
  d.check(value);
  const bytes = d.type.encode(d.toWire(value)).finish();
  if (bytes.length > d.maxBytes) {
    throw new MessagingError(
      "KILN_MSG_TOO_LARGE",
      `${kind}: ${bytes.length} bytes exceed the limit of ${d.maxBytes}`,
    );
  }
  return bytes;
}

/**
 * Decodes and validates a payload of `kind`. Throws KILN_MSG_TOO_LARGE (before parsing),
 * KILN_MSG_BAD_PROTOBUF (not a message of that type) or KILN_MSG_INVALID_FIELD.
 */
export function decode<K extends PayloadKind>(kind: K, bytes: Uint8Array): Payloads[K] {
  const d = descriptors[kind] as Descriptor<K> | undefined;
  if (d === undefined) throw new MessagingError("KILN_MSG_UNKNOWN_SUBJECT", `no payload type for ${kind}`);
  if (!(bytes instanceof Uint8Array)) {
    throw new MessagingError("KILN_MSG_BAD_PROTOBUF", `${kind}: payload is not bytes`);
  }
  if (bytes.length > d.maxBytes) {
    throw new MessagingError(
      "KILN_MSG_TOO_LARGE",
      `${kind}: ${bytes.length} bytes exceed the limit of ${d.maxBytes}`,
    );
  }
  let message: object;
  try {
    message = d.type.decode(bytes);
  } catch (err) {
    throw new MessagingError(
      "KILN_MSG_BAD_PROTOBUF",
      `${kind}: not a valid protobuf message (${(err as Error).message})`,
      err,
    );
  }
  const value = d.fromWire(message);
  d.check(value);
  return value;
}

/** Every kind with a protobuf payload (for tests and tooling). */
export const payloadKinds = Object.keys(descriptors) as PayloadKind[];

/**
 * The payload kind of a concrete subject (`dea.7.stage` → "dea.stage", `logs.<app>` → "logs"),
 * or null for subjects without a protobuf payload (router.*, inboxes, JetStream API).
 */
export function kindOfSubject(subject: string): Exclude<PayloadKind, `${string}:reply`> | null {
  switch (subject) {
    case "dea.discover":
    case "dea.stop":
    case "dea.update":
    case "dea.heartbeat":
    case "dea.advertise":
    case "droplet.exited":
    case "cc.hm.requests":
      return subject;
  }
  const parts = subject.split(".");
  if (parts.length === 2 && parts[0] === "logs" && (parts[1] as string).length > 0) return "logs";
  if (parts.length === 3 && parts[0] === "dea" && (parts[1] as string).length > 0) {
    if (parts[2] === "stage") return "dea.stage";
    if (parts[2] === "start") return "dea.start";
  }
  return null;
}
