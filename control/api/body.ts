// Reading a JSON request body with a size limit: a Content-Length over it is refused before a
// byte is read, a chunked body as soon as it passes it.
import type { IncomingMessage } from "node:http";
import { CcError } from "../errors.js";

export async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const tooLarge = () => new CcError("KILN_CC_BODY_TOO_LARGE", `the request body is over ${limit} bytes`);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "")
    throw new CcError("KILN_CC_INVALID", "the request body is empty; a JSON object is expected");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CcError("KILN_CC_INVALID", `the request body is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new CcError("KILN_CC_INVALID", "the request body must be a JSON object");
  return value as Record<string, unknown>;
}
