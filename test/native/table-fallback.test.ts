// The route table suite against the TypeScript fallback.
import t from "tap";
import { attachTable, createFallbackTable } from "../../native/table.js";
import { routeTableSuite } from "./suite.js";

const table = createFallbackTable({ emptyPoolTimeoutMs: 0 });
t.equal(table.shared, false);
t.ok(table.id < 0, "fallback ids never collide with native ones");
t.throws(() => attachTable(table.id), { code: "KILN_TABLE_NOT_SHARED" });
table.close();
routeTableSuite(t, createFallbackTable);
