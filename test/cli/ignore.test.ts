// .kilnignore/.cfignore rules, gitignore-style: a table of patterns and paths.
import t from "tap";
import { alwaysSkipped, IgnoreRules } from "../../cli/push/ignore.js";

// [rules, path, is a folder, ignored]
const cases: [string, string, boolean, boolean][] = [
  ["*.log", "a.log", false, true],
  ["*.log", "deep/er/a.log", false, true],
  ["*.log", "a.log.txt", false, false],
  ["*.log", "logs", true, false],
  ["/build", "build", true, true],
  ["/build", "src/build", true, false],
  ["build", "src/build", true, true],
  ["build/", "build", true, true],
  ["build/", "build", false, false],
  ["docs/*.md", "docs/a.md", false, true],
  ["docs/*.md", "docs/sub/a.md", false, false],
  ["docs/*.md", "x/docs/a.md", false, false],
  ["**/cache", "cache", true, true],
  ["**/cache", "a/b/cache", true, true],
  ["a/**/z", "a/z", false, true],
  ["a/**/z", "a/b/c/z", false, true],
  ["a/**/z", "b/a/z", false, false],
  ["logs/**", "logs/x/y.txt", false, true],
  ["logs/**", "logs", true, false],
  ["?.txt", "a.txt", false, true],
  ["?.txt", "ab.txt", false, false],
  ["[ab].txt", "b.txt", false, true],
  ["[ab].txt", "c.txt", false, false],
  ["*.log\n!keep.log", "keep.log", false, false],
  ["*.log\n!keep.log", "drop.log", false, true],
  ["!keep.log\n*.log", "keep.log", false, true],
  ["# comment\n\n  \n*.tmp", "x.tmp", false, true],
  ["# comment", "# comment", false, false],
  ["\\#file", "#file", false, true],
  ["node_modules", "node_modules", true, true],
  ["node_modules/", "web/node_modules", true, true],
  ["*.log   ", "a.log", false, true],
  ["a.b", "axb", false, false],
  ["/*.json", "package.json", false, true],
  ["/*.json", "sub/package.json", false, false],
  ["", "anything", false, false],
];

for (const [rules, path, dir, want] of cases) {
  t.test(`${JSON.stringify(rules)} ${dir ? "folder" : "file"} ${path}`, async (t) => {
    t.equal(new IgnoreRules().add(rules).ignores(path, dir), want);
  });
}

t.test("rules added later win over earlier files' rules", async (t) => {
  const r = new IgnoreRules().add("*.md").add("!README.md");
  t.equal(r.ignores("README.md", false), false);
  t.equal(r.ignores("NOTES.md", false), true);
});

t.test("always skipped: version control and Kiln's own files, not node_modules", async (t) => {
  for (const name of [".git", ".svn", ".hg", ".cfignore", ".kilnignore", ".kiln", ".kiln-resources.json"]) {
    t.equal(alwaysSkipped(name), true, name);
  }
  for (const name of ["node_modules", ".gitignore", "kiln.txt", ".env"])
    t.equal(alwaysSkipped(name), false, name);
});
