// The records the controller keeps in JetStream KV, as API.md's Storage table lays them out,
// and the keys they live under. A record's JSON is exactly what the API answers with, except
// users (the password hash is never sent) and the index records (name and host keys).

export type AppState = "STARTED" | "STOPPED";

export interface HealthCheck {
  type: "port" | "http" | "process";
  endpoint: string | null;
  timeout: number | null;
}

export interface AppRecord {
  guid: string;
  name: string;
  space_guid: string;
  state: AppState;
  instances: number;
  memory_in_mb: number;
  disk_in_mb: number;
  command: string | null;
  buildpacks: string[];
  environment_variables: Record<string, string>;
  health_check: HealthCheck;
  droplet_guid: string | null;
  /** Changes whenever what runs changes (droplet, command, env, memory, disk). */
  version: string;
  created_at: string;
  updated_at: string;
}

export interface RouteRecord {
  guid: string;
  host: string;
  path: string;
  url: string;
  space_guid: string;
  destinations: { app_guid: string }[];
  created_at: string;
  updated_at: string;
}

export interface SpaceRecord {
  guid: string;
  name: string;
  /** User names of the members. */
  members: string[];
  created_at: string;
  updated_at: string;
}

export interface PasswordHash {
  algorithm: "scrypt";
  N: number;
  r: number;
  p: number;
  /** base64 */
  salt: string;
  /** base64 */
  hash: string;
}

export interface UserRecord {
  guid: string;
  name: string;
  admin: boolean;
  password: PasswordHash;
  created_at: string;
  updated_at: string;
}

export interface TokenRecord {
  user: string;
  /** The user the token was issued to: a user deleted and made again does not inherit it. */
  user_guid: string;
  expires_at: string;
  created_at: string;
}

/** A uniqueness key's value: the guid holding the name (and, for hosts, its space). */
export interface IndexRecord {
  guid: string;
  space_guid?: string;
}

export interface AuditEvent {
  guid: string;
  /** `<kind>.<verb>`, e.g. app.create, route.map, user.login. */
  type: string;
  /** The user name that did it. */
  actor: string;
  target_guid: string;
  target_name: string;
  space_guid: string | null;
  data: Record<string, unknown>;
  created_at: string;
}

const hex = (s: string): string => Buffer.from(s, "utf8").toString("hex");

/** Key layout (API.md, Storage). Names go through hex where they may hold characters a key cannot. */
export const keys = {
  app: (guid: string) => guid,
  /** Uniqueness of an app's name within its space. */
  appName: (spaceGuid: string, name: string) => `name.${spaceGuid}.${hex(name)}`,
  route: (guid: string) => guid,
  host: (host: string, path: string) => (path === "" ? `host.${host}` : `host.${host}.${hex(path)}`),
  space: (guid: string) => guid,
  spaceName: (name: string) => `name.${name}`,
  user: (name: string) => `user.${name}`,
  token: (sha256Hex: string) => `token.${sha256Hex}`,
} as const;

/** Filters that list only the primary records of a bucket (a guid is one token; index keys are two or more). */
export const primaryFilter = "*";
