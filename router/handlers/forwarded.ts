// Who the client is and how it reached the router, for X-Forwarded-Proto, hash balancing and
// the access log. A request from one of --trusted-proxies (a load balancer in front) keeps its
// X-Forwarded-Proto, and the last X-Forwarded-For entry that proxy added is the client; from
// anyone else both are the router's own view (its listener's scheme, the peer address), as
// gorouter does. The native request path does the same in native/fastpath/fast_path.cc
// (Trusted); test/router/forwarded.test.ts runs one table of cases through both.
import { isIPv4, isIPv6 } from "node:net";
import { RouterError } from "../errors.js";
import { addressText } from "./client-address.js";

/** A trusted network: its address bytes (4 or 16) and prefix length. */
export interface TrustedNet {
  bytes: number[];
  prefix: number;
}

function v4Bytes(text: string): number[] {
  return text.split(".").map(Number);
}

function v6Bytes(text: string): number[] | null {
  let s = text;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    // An IPv4 tail (::ffff:10.0.0.1).
    tail = v4Bytes(s.slice(lastColon + 1));
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const part = (h: string): number[] => (h === "" ? [] : h.split(":").map((g) => Number.parseInt(g, 16)));
  const head = part(halves[0] as string);
  const rest = halves.length === 2 ? part(halves[1] as string) : [];
  const groups =
    halves.length === 2 ? [...head, ...new Array(8 - head.length - rest.length).fill(0), ...rest] : head;
  if (groups.length !== 8) return null;
  const out: number[] = [];
  for (const g of groups) out.push(g >> 8, g & 255);
  if (tail.length === 4) out.splice(12, 4, ...tail);
  return out;
}

/** Parses `--trusted-proxies` (CIDRs or single addresses, from `source`); a bad entry is KILN_ROUTER_CONFIG. */
export function parseTrustedProxies(list: string[], source = "--trusted-proxies"): TrustedNet[] {
  const out: TrustedNet[] = [];
  for (const entry of list) {
    const slash = entry.indexOf("/");
    const addr = slash < 0 ? entry : entry.slice(0, slash);
    const v4 = isIPv4(addr);
    if (!v4 && !isIPv6(addr))
      throw new RouterError("KILN_ROUTER_CONFIG", `${source}: "${entry}" is not an address or CIDR`);
    const bits = v4 ? 32 : 128;
    const prefixText = slash < 0 ? String(bits) : entry.slice(slash + 1);
    const prefix = Number(prefixText);
    if (!/^\d{1,3}$/.test(prefixText) || prefix > bits)
      throw new RouterError("KILN_ROUTER_CONFIG", `${source}: "${entry}" has a bad prefix length`);
    let bytes = v4 ? v4Bytes(addr) : (v6Bytes(addr) as number[]);
    let p = prefix;
    // An IPv4-mapped network matches the IPv4 peers it names.
    if (!v4 && p >= 96 && bytes.slice(0, 12).join() === "0,0,0,0,0,0,0,0,0,0,255,255") {
      bytes = bytes.slice(12);
      p -= 96;
    }
    out.push({ bytes, prefix: p });
  }
  return out;
}

/** Whether a peer's raw address (uWS: 4 or 16 bytes) falls in one of `nets`. */
export function isTrusted(nets: TrustedNet[], peer: Uint8Array): boolean {
  if (nets.length === 0) return false;
  const a = peer;
  let off = 0;
  let len = a.length;
  // An IPv4 peer on a dual-stack socket arrives IPv4-mapped.
  if (len === 16 && a[10] === 255 && a[11] === 255 && isZero(a, 10)) {
    off = 12;
    len = 4;
  }
  for (let n = 0; n < nets.length; n++) {
    const net = nets[n] as TrustedNet;
    if (net.bytes.length !== len) continue;
    let bits = net.prefix;
    let i = 0;
    for (; bits >= 8; bits -= 8, i++) if (a[off + i] !== net.bytes[i]) break;
    if (bits >= 8) continue;
    if (bits === 0) return true;
    const mask = (0xff << (8 - bits)) & 0xff;
    if (((a[off + i] as number) & mask) === ((net.bytes[i] as number) & mask)) return true;
  }
  return false;
}

function isZero(b: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * The client address of a request from a trusted proxy: the last X-Forwarded-For entry (the
 * one that proxy added), or the peer when it sent none.
 */
export function forwardedClient(xff: string, peer: string): string {
  if (xff === "") return peer;
  const comma = xff.lastIndexOf(",");
  const last = (comma < 0 ? xff : xff.slice(comma + 1)).trim();
  return last === "" ? peer : last;
}

/**
 * Who sent the request being handled: its peer's address text, whether that peer is trusted,
 * and the client address that follows. One per thread, refilled per request (the handler and
 * the WebSocket upgrade run synchronously), so nothing is allocated for it.
 */
export class RequestClient {
  peer = "";
  trusted = false;
  client = "";

  read(nets: TrustedNet[], remoteAddress: ArrayBuffer, xff: string): void {
    const bytes = new Uint8Array(remoteAddress);
    this.peer = addressText(bytes);
    this.trusted = isTrusted(nets, bytes);
    this.client = this.trusted ? forwardedClient(xff, this.peer) : this.peer;
  }
}

export const requestClient = new RequestClient();
