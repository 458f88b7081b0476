// Child process for test/native/loader.test.ts: reports which table implementation it got.
import { implementation } from "../../../native/index.js";
import { attachTable, createRouteTable } from "../../../native/table.js";

const table = createRouteTable({ emptyPoolTimeoutMs: 0 });
let attach = "";
try {
  attachTable(table.id);
  attach = "ok";
} catch (err) {
  attach = (err as { code?: string }).code ?? "?";
}
process.stdout.write(`${JSON.stringify({ implementation, shared: table.shared, attach })}\n`);
