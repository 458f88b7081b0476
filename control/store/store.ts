// The controller's state, all of it in JetStream: one Records view per record type over the
// buckets of API.md's Storage table, and the audit log. Opening is idempotent (buckets and the
// events stream are created when missing), so any number of controllers share one store.
import type { NatsConnection } from "nats";
import { KV_APPS, KV_ROUTES, KV_SPACES, KV_USERS } from "../../messaging/subjects.js";
import { AuditLog } from "./events.js";
import { Records } from "./kv.js";
import type { AppRecord, IndexRecord, RouteRecord, SpaceRecord, TokenRecord, UserRecord } from "./records.js";

export interface CcStore {
  apps: Records<AppRecord>;
  /** `name.<space guid>.<hex name>` in kiln_apps. */
  appNames: Records<IndexRecord>;
  routes: Records<RouteRecord>;
  /** `host.<host>[.<hex path>]` in kiln_routes. */
  hosts: Records<IndexRecord>;
  spaces: Records<SpaceRecord>;
  /** `name.<name>` in kiln_spaces. */
  spaceNames: Records<IndexRecord>;
  users: Records<UserRecord>;
  tokens: Records<TokenRecord>;
  audit: AuditLog;
}

/** Opens (or creates, with `replicas` copies: messaging/replicas.ts) every bucket and the audit log. */
export async function openStore(nc: NatsConnection, replicas: number): Promise<CcStore> {
  const [apps, routes, spaces, users, audit] = await Promise.all([
    Records.open<AppRecord>(nc, KV_APPS, replicas),
    Records.open<RouteRecord>(nc, KV_ROUTES, replicas),
    Records.open<SpaceRecord>(nc, KV_SPACES, replicas),
    Records.open<UserRecord>(nc, KV_USERS, replicas),
    AuditLog.open(nc, replicas),
  ]);
  return {
    apps,
    appNames: apps.as<IndexRecord>(),
    routes,
    hosts: routes.as<IndexRecord>(),
    spaces,
    spaceNames: spaces.as<IndexRecord>(),
    users,
    tokens: users.as<TokenRecord>(),
    audit,
  };
}
