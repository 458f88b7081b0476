// The Droplet Execution Agent's coded errors. Each part of the DEA declares its codes in its
// own folder (container/, staging/, placement) with a class built on DeaError, so every DEA
// error a user sees is a DeaError with a stable code listed in docs/errors.md.
import { KilnError } from "../kernel/errors.js";

export class DeaError extends KilnError {
  constructor(code: string, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = "DeaError";
  }
}
