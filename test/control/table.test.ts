// The API's route table and pagination, without a server.
import t from "tap";
import { paginate } from "../../control/api/pagination.js";
import { type ApiRequest, RouteTable } from "../../control/api/table.js";

const ok = async () => ({ status: 200 });

t.test("route table", async (t) => {
  const table = new RouteTable([
    { method: "GET", path: "/v3/apps", handler: ok },
    { method: "GET", path: "/v3/apps/:guid", handler: ok },
    { method: "POST", path: "/v3/apps/:guid/actions/start", handler: ok },
    { method: "DELETE", path: "/v3/routes/:guid/destinations/:app_guid", handler: ok },
  ]);
  t.same(table.match("GET", "/v3/apps")?.params, {});
  t.same(table.match("GET", "/v3/apps/abc")?.params, { guid: "abc" });
  t.same(table.match("GET", "/v3/apps/a%20b")?.params, { guid: "a b" }, "params are decoded");
  t.same(table.match("DELETE", "/v3/routes/r/destinations/a")?.params, { guid: "r", app_guid: "a" });
  t.equal(table.match("POST", "/v3/apps/abc/actions/start")?.route.path, "/v3/apps/:guid/actions/start");
  t.equal(table.match("PUT", "/v3/apps"), null, "unknown method");
  t.equal(table.match("GET", "/v3/apps/"), null, "an empty param does not match");
  t.equal(table.match("GET", "/v3/apps/abc/extra"), null);
  t.equal(table.match("GET", "/v3/apps/%E0%A4%A"), null, "a malformed escape does not match");
});

t.test("pagination", async (t) => {
  const req = (query: string) => ({ url: new URL(`http://cc/v3/apps${query}`) }) as ApiRequest;
  const items = Array.from({ length: 5 }, (_, i) => i);
  const first = paginate(req("?per_page=2"), items).body as {
    pagination: { total_results: number; total_pages: number; next: { href: string } | null };
    resources: number[];
  };
  t.same(first.resources, [0, 1]);
  t.equal(first.pagination.total_results, 5);
  t.equal(first.pagination.total_pages, 3);
  const next = new URL(first.pagination.next?.href as string);
  t.equal(next.searchParams.get("page"), "2");
  const last = paginate(req("?per_page=2&page=3"), items).body as typeof first;
  t.same(last.resources, [4]);
  t.equal(last.pagination.next, null);
  t.same((paginate(req(""), items).body as typeof first).resources, items, "50 per page by default");
  for (const bad of ["?per_page=0", "?per_page=5001", "?page=0", "?page=x", "?per_page="])
    t.throws(() => paginate(req(bad), items), { code: "KILN_CC_INVALID" }, bad);
});
