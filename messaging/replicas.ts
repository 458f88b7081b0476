// How many copies JetStream keeps of each stream, KV bucket and object store Kiln creates: 3
// when the cluster has three servers or more (one can be lost), else 1; KILN_NATS_REPLICAS
// (a component's `natsReplicas`) overrides. Assets that exist keep the replicas they have.
import type { NatsConnection, ServerInfo } from "nats";

/** Replicas on a cluster of three servers or more: survives the loss of any one. */
export const CLUSTER_REPLICAS = 3;
/** JetStream's own limit. */
export const MAX_REPLICAS = 5;
/** The environment variable every component that creates assets reads (cc, dea, hm). */
export const REPLICAS_ENV = "KILN_NATS_REPLICAS";

/**
 * Servers of the cluster as the connected server announces them. nats-server 2.9 sends
 * `connect_urls` (its own client URL and each routed peer's) only when it has routes; a server
 * listening on every interface announces one URL per address, which the override corrects.
 */
export function clusterServers(info: ServerInfo | undefined): number {
  if (info === undefined || info.cluster === undefined) return 1;
  return Math.max(1, new Set(info.connect_urls ?? []).size);
}

/** The replicas for new assets: `override` (1..5) when given, else from the server's INFO. */
export function replicasFor(info: ServerInfo | undefined, override?: number): number {
  if (override !== undefined && override > 0) return override;
  return clusterServers(info) >= CLUSTER_REPLICAS ? CLUSTER_REPLICAS : 1;
}

/** The replicas for new assets on this connection (see replicasFor). */
export function jetStreamReplicas(nc: NatsConnection, override?: number): number {
  return replicasFor(nc.info, override);
}
