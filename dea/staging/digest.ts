// Digests of a droplet or package: SHA-256 keys it in the object store, SHA-1 is what the
// Cloud Controller's resource matching speaks. Both in one pass. Runs inside the archive worker.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StagingError } from "./errors.js";

export interface Digests {
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  /** Hex SHA-1 of the bytes. */
  sha1: string;
  bytes: number;
}

/** A pass-through that digests what flows through it. */
export class DigestStream extends Transform {
  private readonly sha256: Hash = createHash("sha256");
  private readonly sha1: Hash = createHash("sha1");
  private bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.sha256.update(chunk);
    this.sha1.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  /** The digests; call once, after the stream finished. */
  result(): Digests {
    return { sha256: this.sha256.digest("hex"), sha1: this.sha1.digest("hex"), bytes: this.bytes };
  }
}

export async function digest(path: string): Promise<Digests> {
  const d = new DigestStream();
  try {
    await pipeline(createReadStream(path), d, async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source) {
        // drained: the digest is all we keep
      }
    });
  } catch (err) {
    throw new StagingError(
      "KILN_DEA_ARCHIVE_IO",
      `reading ${path} failed: ${(err as Error)?.message ?? String(err)}`,
      err,
    );
  }
  return d.result();
}
