// A GET to an app on this machine for tests that start apps: the body, or null when nothing
// answered in time (refused, reset, or silent past the timeout).
import { request } from "node:http";

export function bodyOf(port: number, path = "/", timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => resolve(body));
    });
    req.on("error", () => resolve(null));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}
