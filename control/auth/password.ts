// Password hashing: scrypt with API.md's parameters (N=16384, r=8, p=1, 16-byte salt, 64-byte
// key), compared in constant time. The parameters are stored with each hash so they can change.
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import type { PasswordHash } from "../store/records.js";

const N = 16_384;
const R = 8;
const P = 1;
const KEY_BYTES = 64;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 }, (err, key) =>
      err === null ? resolve(key) : reject(err),
    ),
  );
}

export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, N, R, P);
  return { algorithm: "scrypt", N, r: R, p: P, salt: salt.toString("base64"), hash: key.toString("base64") };
}

export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.hash, "base64");
  const key = await derive(password, Buffer.from(stored.salt, "base64"), stored.N, stored.r, stored.p);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** A hash no password matches, verified when the user does not exist so both cases cost the same. */
let decoy: Promise<PasswordHash> | null = null;
export function decoyHash(): Promise<PasswordHash> {
  decoy ??= hashPassword(randomBytes(16).toString("hex"));
  return decoy;
}
