// .kilnignore / .cfignore rules, gitignore-style: `*`, `?`, `**`, a leading `/` (anchored to the
// app folder), a trailing `/` (folders only), `!` to take a path back; the last matching rule wins.

interface Rule {
  re: RegExp;
  negate: boolean;
  dirOnly: boolean;
}

function escapeChar(ch: string): string {
  return /[\\^$.*+?()[\]{}|]/.test(ch) ? `\\${ch}` : ch;
}

/** The glob as a regular expression over the whole relative path (`a/b/c`). */
function globToRegExp(glob: string, anchored: boolean): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i] ?? "";
    if (ch === "*") {
      if (glob[i + 1] === "*") {
        const atStart = i === 0 || glob[i - 1] === "/";
        const atEnd = i + 2 === glob.length || glob[i + 2] === "/";
        if (atStart && atEnd) {
          if (i + 2 === glob.length)
            re += ".*"; // `a/**`: everything inside
          else {
            re += "(?:.*/)?"; // `**/` and `a/**/b`: zero or more folders
            i++;
          }
          i++;
          continue;
        }
        i++;
      }
      re += "[^/]*";
    } else if (ch === "?") re += "[^/]";
    else if (ch === "[") {
      const close = glob.indexOf("]", i + 1);
      if (close === -1) re += "\\[";
      else {
        let body = glob.slice(i + 1, close);
        if (body.startsWith("!")) body = `^${body.slice(1)}`;
        re += `[${body.replaceAll("\\", "\\\\")}]`;
        i = close;
      }
    } else if (ch === "\\" && i + 1 < glob.length) {
      i++;
      re += escapeChar(glob[i] ?? "");
    } else re += escapeChar(ch);
  }
  return new RegExp(`^${anchored ? "" : "(?:.*/)?"}${re}$`);
}

export class IgnoreRules {
  private readonly rules: Rule[] = [];

  /** Adds the lines of an ignore file (later lines win over earlier ones). */
  add(text: string): this {
    for (const raw of text.split(/\r?\n/)) {
      let line = raw.replace(/(?<!\\)\s+$/, "");
      if (line === "" || line.startsWith("#")) continue;
      let negate = false;
      if (line.startsWith("!")) {
        negate = true;
        line = line.slice(1);
      } else if (line.startsWith("\\!") || line.startsWith("\\#")) line = line.slice(1);
      let dirOnly = false;
      if (line.endsWith("/")) {
        dirOnly = true;
        line = line.replace(/\/+$/, "");
      }
      // A slash at the start or in the middle anchors the pattern to the app folder.
      const anchored = line.includes("/");
      line = line.replace(/^\/+/, "");
      if (line === "") continue;
      this.rules.push({ re: globToRegExp(line, anchored), negate, dirOnly });
    }
    return this;
  }

  /** Whether `path` (relative, `/`-separated) is ignored; its parent folders are checked by the walk. */
  ignores(path: string, isDir: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDir) continue;
      if (rule.re.test(path)) ignored = !rule.negate;
    }
    return ignored;
  }
}

/** Never uploaded, whatever the ignore files say: version control and Kiln's own files. */
export function alwaysSkipped(name: string): boolean {
  return (
    name === ".git" || name === ".hg" || name === ".svn" || name === ".cfignore" || name.startsWith(".kiln")
  );
}
