// The Cloud Controller's resources as control/API.md defines them: what the CLI reads.
export interface List<T> {
  pagination: { total_results: number; next: { href: string } | null };
  resources: T[];
}

export interface Token {
  token: string;
  expires_at: string;
  user: { name: string; admin: boolean };
}

export interface Space {
  guid: string;
  name: string;
  created_at?: string;
}

export interface HealthCheck {
  type: "port" | "process" | "http";
  endpoint?: string | null;
  timeout?: number | null;
}

export interface App {
  guid: string;
  name: string;
  space_guid: string;
  state: "STARTED" | "STOPPED";
  instances: number;
  memory_in_mb: number;
  disk_in_mb: number;
  command: string | null;
  buildpacks: string[];
  environment_variables?: Record<string, string>;
  health_check?: HealthCheck;
  droplet_guid: string | null;
  version?: string;
  created_at: string;
  updated_at: string;
}

export interface InstanceStats {
  index: number;
  state: string;
  host?: string;
  port?: number;
  uptime?: number;
  /** The app version the instance runs. */
  version?: string;
  usage?: { mem?: number; disk?: number; cpu?: number };
}

export interface Route {
  guid: string;
  host: string;
  path: string;
  url: string;
  space_guid: string;
  destinations: { app_guid: string }[];
}

export interface AuditEvent {
  guid: string;
  type: string;
  actor: string;
  target_guid: string;
  target_name: string;
  space_guid?: string;
  data?: unknown;
  created_at: string;
}

export interface Package {
  guid: string;
  state: "AWAITING_UPLOAD" | "PROCESSING_UPLOAD" | "READY" | "FAILED";
  app_guid?: string;
  sha256?: string | null;
  size?: number | null;
}

export interface Build {
  guid: string;
  state: "STAGING" | "STAGED" | "FAILED";
  error: string | null;
  error_code?: string | null;
  log_tail?: string | string[] | null;
  droplet_guid: string | null;
  package_guid?: string;
  app_guid?: string;
}

export interface LogLine {
  seq: number;
  at: string;
  source: string;
  index?: number | null;
  stream?: string;
  text: string;
}

/** `GET /v3/info`; API.md names no fields, so each is optional and has a default. */
export interface Info {
  domain?: string;
  router_port?: number;
  [k: string]: unknown;
}

export interface ResourceMatch {
  checksum: { value: string };
  size_in_bytes: number;
}
