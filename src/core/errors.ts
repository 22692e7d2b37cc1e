import { redact } from './redact.js';

/** Base of every error the tool raises on purpose; `code` is stable for callers to match on. */
export class NbcError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Invalid options: the one error that fails a run even without `strict`. */
export class ConfigError extends NbcError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('NBC_CONFIG', `invalid configuration: ${problems.join('; ')}`);
    this.problems = problems;
  }
}

/** A store could not be read or written. Messages never contain credentials (`secrets`: values known to be some). */
export class StoreError extends NbcError {
  readonly operation: string;
  readonly key: string | undefined;
  readonly status: number | undefined;
  constructor(operation: string, key: string | undefined, message: string,
    options: { status?: number; hint?: string; cause?: unknown; secrets?: readonly (string | undefined)[] } = {}) {
    const where = key === undefined ? '' : ` ${key}`;
    const status = options.status === undefined ? '' : ` (HTTP ${options.status})`;
    const hint = options.hint === undefined ? '' : `; ${options.hint}`;
    // A server's message may echo our request: its credentials never go further.
    super('NBC_STORE', redact(`${operation}${where} failed${status}: ${message}${hint}`, options.secrets, true), { cause: options.cause });
    this.operation = operation;
    this.key = key;
    this.status = options.status;
  }
}

/** An archive that is corrupt, truncated, of another format, or hostile. */
export class ArchiveError extends NbcError {
  readonly reason: string;
  readonly entry: string | undefined;
  constructor(reason: string, entry?: string, options?: { cause?: unknown }) {
    super('NBC_ARCHIVE', entry === undefined ? reason : `${entry}: ${reason}`, options);
    this.reason = reason;
    this.entry = entry;
  }
}

/** One line describing any thrown value, for warnings. */
export function describeError(error: unknown): string {
  if (error instanceof NbcError) return error.message;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    const text = error.message.split('\n')[0] ?? '';
    return code && !text.includes(code) ? `${code}: ${text}` : text;
  }
  return String(error);
}
