// The Droplet Execution Agent's coded errors. Each part of the DEA declares its codes in its
// own folder (container/, staging/, placement) with a class built on DeaError, so every DEA
// error a user sees is a DeaError with a stable code listed in docs/errors.md.
import { KilnError } from "../kernel/errors.js";

/** `C`: the codes of the part that throws it, so `code` is typed by the subclass. */
export class DeaError<C extends string = string> extends KilnError {
  declare readonly code: C;

  constructor(code: C, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
  }
}
