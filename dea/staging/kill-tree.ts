// Under --isolation none a staging is a plain process tree (sh, npm, go build, …) with no
// cgroup to kill as one: a timeout kills the driver and every descendant found in /proc.
import { readdirSync, readFileSync } from "node:fs";

function parents(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // ended while we looked
    }
    // pid (comm) state ppid …; comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [Number(name)]);
    else list.push(Number(name));
  }
  return children;
}

/** SIGKILLs `pid` and all its descendants (children first found, then killed top-down). */
export function killTree(pid: number): void {
  if (pid <= 0) return;
  const children = parents();
  const all: number[] = [];
  const walk = (p: number): void => {
    all.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  for (const p of all) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}
