// The route table suite against the native addon's table.
import t from "tap";
import { binding } from "../../native/index.js";
import { createNativeTable } from "../../native/table.js";
import { routeTableSuite } from "./suite.js";

if (binding === null) {
  t.fail("the native addon is not built; run node scripts/setup.mjs --build");
} else {
  t.equal(createNativeTable({ emptyPoolTimeoutMs: 0 }).shared, true);
  routeTableSuite(t, createNativeTable);
}
