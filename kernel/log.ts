// One structured JSON line per event, for every component. Cheap when a level is
// off (one comparison), and never console.log: the sink is a stream chosen by the caller.

export type LogLevel = "debug" | "info" | "warn" | "error";

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  readonly component: string;
  enabled(level: LogLevel): boolean;
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  /** A logger for a sub-part, e.g. log.child("registry"). */
  child(part: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default process.stderr (stdout stays free for command output). */
  write?: (line: string) => void;
}

/** The values KILN_LOG_LEVEL takes. */
export const logLevels = Object.keys(rank) as LogLevel[];

export function parseLevel(value: string | undefined, fallback: LogLevel = "info"): LogLevel {
  return value !== undefined && value in rank ? (value as LogLevel) : fallback;
}

function errorFields(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const e = value as Error & { code?: unknown };
  return e.code === undefined ? { message: e.message } : { code: e.code, message: e.message };
}

export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const min = rank[options.level ?? parseLevel(process.env.KILN_LOG_LEVEL)];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: LogLevel, event: string, fields?: LogFields): void => {
    if (rank[level] < min) return;
    const record: LogFields = { at: new Date().toISOString(), level, component, event };
    if (fields !== undefined) for (const k in fields) record[k] = errorFields(fields[k]);
    let line: string;
    try {
      line = JSON.stringify(record, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    } catch {
      line = JSON.stringify({ at: record.at, level, component, event, note: "fields not serialisable" });
    }
    write(`${line}\n`);
  };
  return {
    component,
    enabled: (level) => rank[level] >= min,
    debug: (event, fields) => emit("debug", event, fields),
    info: (event, fields) => emit("info", event, fields),
    warn: (event, fields) => emit("warn", event, fields),
    error: (event, fields) => emit("error", event, fields),
    child: (part) => createLogger(`${component}.${part}`, options),
  };
}
