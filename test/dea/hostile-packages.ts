// The hostile kinds of package a user could upload (test/helpers/tarball.ts builds them): the
// DEA test sends each through dea.stage and expects it refused with its code.
import type { StagingCode } from "../../dea/staging/errors.js";
import { file, tarball } from "../helpers/tarball.js";

export interface HostilePackage {
  name: string;
  bytes: Buffer;
  /** Disk the staging request gives the task (its uncompressed-size limit). */
  diskMb?: number;
  code: StagingCode;
}

/** The hostile kinds a user could upload, each as a whole package with a real app next to it. */
export function hostilePackages(): HostilePackage[] {
  const app = [
    file("package.json", '{"name":"x","scripts":{"start":"node server.js"}}'),
    file("server.js", ""),
  ];
  return [
    {
      name: "zip slip",
      bytes: tarball([...app, file("../../evil", "x")]),
      code: "KILN_DEA_ARCHIVE_PATH_ESCAPE",
    },
    {
      name: "absolute path",
      bytes: tarball([...app, file("/tmp/kiln-evil", "x")]),
      code: "KILN_DEA_ARCHIVE_ABSOLUTE_PATH",
    },
    {
      name: "link escape",
      bytes: tarball([
        ...app,
        { header: { path: "etc", type: "SymbolicLink", linkpath: "/etc" } },
        file("etc/x", "x"),
      ]),
      code: "KILN_DEA_ARCHIVE_LINK_ESCAPE",
    },
    {
      name: "device file",
      bytes: tarball([...app, { header: { path: "mem", type: "CharacterDevice", devmaj: 1, devmin: 1 } }]),
      code: "KILN_DEA_ARCHIVE_SPECIAL_FILE",
    },
    {
      // 64 MiB of zeros gzip to ~64 KiB: more than the 16 MiB of disk the task is given.
      name: "zip bomb",
      bytes: tarball([...app, file("zeros", Buffer.alloc(64 * 1024 * 1024))]),
      diskMb: 16,
      code: "KILN_DEA_ARCHIVE_TOO_LARGE",
    },
  ];
}
