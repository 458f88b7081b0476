// An instance's output as lines: split on \n across chunks, a last line without \n kept,
// multi-byte characters never split, a line over the limit cut into pieces within it.
import { PassThrough } from "node:stream";
import t from "tap";
import { eachLine } from "../../dea/instances/lines.js";

function linesOf(chunks: (string | Buffer)[], max?: number): Promise<string[]> {
  const s = new PassThrough();
  const out: string[] = [];
  eachLine(s, (l) => out.push(l), max);
  return new Promise((resolve) => {
    s.on("end", () => resolve(out));
    for (const c of chunks) s.write(c);
    s.end();
  });
}

t.test("lines", async (t) => {
  t.same(await linesOf(["a\nb", "c\n", "\nd"]), ["a", "bc", "", "d"]);
  const euro = Buffer.from("€\n");
  t.same(await linesOf([euro.subarray(0, 1), euro.subarray(1)]), ["€"], "a character split across chunks");
  const long = await linesOf([`${"x".repeat(25)}\n`], 10);
  t.same(long, ["xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"], "cut at the limit");
  const wide = await linesOf([`${"€".repeat(5)}\n`], 10);
  t.ok(
    wide.every((l) => Buffer.byteLength(l) <= 10 && !l.includes("\ufffd")),
    `cut on characters: ${wide}`,
  );
  t.equal(wide.join(""), "€".repeat(5));
});
