// The shape of one `kiln` subcommand.
export interface Command {
  summary: string;
  usage: string;
  /** Resolves with the exit code; long-running commands resolve once they have shut down. */
  run(argv: string[]): Promise<number>;
}
