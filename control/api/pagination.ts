// Lists as API.md shapes them: `?per_page=` (1 to 5000, default 50) and `?page=` (from 1),
// answered as { pagination: { total_results, total_pages, next: { href } | null }, resources }.
import { invalid } from "../errors.js";
import type { ApiRequest, ApiResponse } from "./table.js";

const MAX_PER_PAGE = 5000;
const DEFAULT_PER_PAGE = 50;

function positive(url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isInteger(n) || n < 1 || n > max)
    throw invalid(name, `must be an integer from 1 to ${max}`);
  return n;
}

export function paginate<T>(req: ApiRequest, items: T[]): ApiResponse {
  const perPage = positive(req.url, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE);
  const page = positive(req.url, "page", 1, Number.MAX_SAFE_INTEGER);
  const start = (page - 1) * perPage;
  const totalPages = Math.max(1, Math.ceil(items.length / perPage));
  let next: { href: string } | null = null;
  if (start + perPage < items.length) {
    const u = new URL(req.url.href);
    u.searchParams.set("page", String(page + 1));
    u.searchParams.set("per_page", String(perPage));
    next = { href: u.href };
  }
  return {
    status: 200,
    body: {
      pagination: { total_results: items.length, total_pages: totalPages, next },
      resources: items.slice(start, start + perPage),
    },
  };
}
