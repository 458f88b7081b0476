// Coded errors of the benchmark harness (bench/ and its shared helpers in bench/lib).
import { defineCodes, KilnError } from "../../kernel/errors.js";

export const BenchCodes = defineCodes("bench", {
  KILN_BENCH_TOOL_MISSING: {
    summary: "A tool the bench needs is not installed; run the bench as root once so it installs it.",
  },
  KILN_BENCH_INSTALL_FAILED: { summary: "apt-get failed to install the bench tools; see its output." },
  KILN_BENCH_START_FAILED: {
    summary: "A process the bench started exited or never listened; its log tail is in the message.",
  },
  KILN_BENCH_LOAD_FAILED: { summary: "The load generator failed or printed no result; see its output." },
  KILN_BENCH_BAD_ARGS: { summary: "A bench command-line option is invalid; run with --help." },
  KILN_BENCH_STEP_FAILED: {
    summary:
      "A step of a scenario bench failed or timed out (staging, a start, a stop); the message says which.",
  },
  KILN_BENCH_HEADERS_DIFFER: {
    summary:
      "A reference proxy does not add the request headers Kiln adds, so the backend's work would differ.",
  },
});

export class BenchError extends KilnError {
  constructor(code: keyof typeof BenchCodes, message: string, cause?: unknown) {
    super(code, message, { cause });
    this.name = "BenchError";
  }
}
