// The request headers Kiln's router adds on the way to a backend (router/README.md), and
// how nginx and HAProxy are told to add the same ones, so a reference proxy hands the
// backend the same request Kiln does. They are not free for the backend: a Node `http`
// server parses each of them (the bench backend costs ~15.6 µs per request without them and
// ~18.5 µs with them, wrk straight to it), and on a box where backend, proxy and load
// generator share the cores that is work the proxy's req/s and p99 pay for.

/** What the reference proxies add: the same headers as Kiln, or none (their plain config). */
export type ReferenceHeaders = "kiln" | "none";

export const referenceHeaderModes: readonly ReferenceHeaders[] = ["kiln", "none"];

/** Stand-ins for the registration Kiln's X-CF-* values come from (same lengths as the bench's). */
const app = "bench-app";
const instance = "bench-app-0";

/** One header per row: its name and the directive value for each reference proxy. */
const headers: readonly { name: string; haproxy: string; nginx: string }[] = [
  { name: "x-forwarded-for", haproxy: "", nginx: "$proxy_add_x_forwarded_for" },
  { name: "x-forwarded-proto", haproxy: "http", nginx: "$scheme" },
  // Milliseconds since the epoch, as Kiln writes it.
  { name: "x-request-start", haproxy: "%[date(0,ms)]", nginx: "$kiln_request_start" },
  // A fresh UUID per request (HAProxy: uuid(); nginx: $request_id's 32 hex digits as a UUID).
  { name: "x-vcap-request-id", haproxy: "%[var(txn.kiln_rid)]", nginx: "$kiln_request_id" },
  // A new W3C trace: the request id as trace id, 16 of its hex digits as span id.
  {
    name: "traceparent",
    haproxy: "00-%[var(txn.kiln_rid),regsub(-,,g)]-%[var(txn.kiln_rid),regsub(-,,g),bytes(16,16)]-01",
    nginx: "00-$request_id-$kiln_span_id-01",
  },
  { name: "x-cf-applicationid", haproxy: app, nginx: app },
  { name: "x-cf-instanceindex", haproxy: "0", nginx: "0" },
  { name: "x-cf-instanceid", haproxy: instance, nginx: instance },
];

/** Names of the headers Kiln adds, lowercase, in a stable order. */
export const forwardedHeaderNames: readonly string[] = headers.map((h) => h.name);

/** HAProxy frontend lines (indented for a `frontend` section). */
export function haproxyForwarded(mode: ReferenceHeaders): string {
  if (mode === "none") return "";
  const lines = ["  option forwardfor", "  http-request set-var(txn.kiln_rid) uuid"];
  for (const h of headers) {
    if (h.name === "x-forwarded-for") continue; // option forwardfor
    lines.push(`  http-request set-header ${h.name} ${h.haproxy}`);
  }
  return `${lines.join("\n")}\n`;
}

/** nginx `http` block lines: the maps the values need and one proxy_set_header per header. */
export function nginxForwarded(mode: ReferenceHeaders): string {
  if (mode === "none") return "";
  const lines = [
    '  map $msec $kiln_request_start { "~^(?<s>\\d+)\\.(?<m>\\d+)$" $s$m; }',
    '  map $request_id $kiln_request_id { "~^(?<a>.{8})(?<b>.{4})(?<c>.{4})(?<d>.{4})(?<e>.{12})$" $a-$b-$c-$d-$e; }',
    '  map $request_id $kiln_span_id { "~^.{16}(?<s>.{16})$" $s; }',
  ];
  for (const h of headers) lines.push(`  proxy_set_header ${h.name} ${h.nginx};`);
  return `${lines.join("\n")}\n`;
}

/**
 * Header names a backend saw beyond what the probe itself sent, lowercase and sorted:
 * what a proxy added (or kept) on the way.
 */
export function addedHeaderNames(seen: readonly string[], sent: readonly string[]): string[] {
  const base = new Set(sent.map((s) => s.toLowerCase()));
  // Hop-by-hop and framing headers differ by proxy without costing the backend anything.
  for (const h of ["host", "connection", "keep-alive", "content-length"]) base.add(h);
  return [...new Set(seen.map((s) => s.toLowerCase()))].filter((s) => !base.has(s)).sort();
}
