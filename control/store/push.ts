// The push records of API.md's Storage table: packages, builds and droplets, kept in kiln_apps
// beside the apps under `packages.<guid>`, `builds.<guid>` and `droplets.<guid>`.
import type { Records } from "./kv.js";
import type { AppRecord } from "./records.js";
import type { CcStore } from "./store.js";

export type PackageState = "AWAITING_UPLOAD" | "PROCESSING_UPLOAD" | "READY" | "FAILED";

export interface PackageRecord {
  guid: string;
  type: "bits";
  state: PackageState;
  app_guid: string;
  /** SHA-256 of the package tar.gz (hex), once READY. */
  sha256: string | null;
  /** Bytes of the package tar.gz, once READY. */
  size: number | null;
  /** SHA-256 of the package's sorted file listing, once READY (control/api/package-upload.ts). */
  files_sha256?: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export type BuildState = "STAGING" | "STAGED" | "FAILED";

export interface BuildRecord {
  guid: string;
  state: BuildState;
  error: string | null;
  error_code: string | null;
  log_tail: string[];
  droplet_guid: string | null;
  package_guid: string;
  app_guid: string;
  created_at: string;
  updated_at: string;
}

export interface DropletRecord {
  guid: string;
  state: "STAGED";
  app_guid: string;
  sha1: string;
  /** Where the DEA stored it in kiln_blobs (`droplets/<sha256>`). */
  key: string;
  start_command: string;
  buildpack: string;
  /** control/runner/staging.ts stagingKey() of what it was staged from; absent on older records. */
  staging_key?: string;
  created_at: string;
  updated_at: string;
}

export const pushKeys = {
  pkg: (guid: string) => `packages.${guid}`,
  build: (guid: string) => `builds.${guid}`,
  droplet: (guid: string) => `droplets.${guid}`,
  /** Where a package's tar.gz is in kiln_blobs. */
  packageBlob: (guid: string) => `packages/${guid}.tar.gz`,
  fileBlob: (sha1: string) => `files/${sha1}`,
} as const;

export interface PushRecords {
  packages: Records<PackageRecord>;
  builds: Records<BuildRecord>;
  droplets: Records<DropletRecord>;
  apps: Records<AppRecord>;
}

export function pushRecords(store: CcStore): PushRecords {
  return {
    packages: store.apps.as<PackageRecord>(),
    builds: store.apps.as<BuildRecord>(),
    droplets: store.apps.as<DropletRecord>(),
    apps: store.apps,
  };
}
