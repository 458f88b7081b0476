// A free host port per instance: instances share the host network, so each listens on its
// own port. The kernel picks a free one; the DEA remembers which it handed out so two
// instances starting together never get the same.
import { createServer } from "node:net";

export class PortPool {
  private readonly taken = new Set<number>();

  async take(): Promise<number> {
    for (let tries = 0; ; tries++) {
      const port = await ephemeralPort();
      if (!this.taken.has(port) || tries > 20) {
        this.taken.add(port);
        return port;
      }
    }
  }

  give(port: number): void {
    this.taken.delete(port);
  }
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "0.0.0.0", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
