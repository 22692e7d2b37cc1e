// The deadline of a restore's or a save's work with the store: a server that answers slowly (a
// trickle of bytes, which no idle timeout ends) holds the build up to it and no longer.
import { Readable } from 'node:stream';
import { NbcError } from './errors.js';
import type { Store } from './stores/store.js';

/**
 * The default when none is given: DEADLINE_BASE_MS plus one second per DEADLINE_BYTES_PER_SECOND
 * moved so far (read from or written to the store). A transfer averaging 1 MB/s (a hundredth of a
 * 1 Gbit link) never reaches it; a server trickling 1 KiB/s is given up on after about 10 s.
 */
export const DEADLINE_BASE_MS = 10_000;
export const DEADLINE_BYTES_PER_SECOND = 1_000_000;

/** The store work took longer than the deadline allowed. */
export class DeadlineError extends NbcError {
  constructor(message: string) {
    super('NBC_DEADLINE', message);
  }
}

/** A timer that aborts `signal` once the time allowed has passed; `moved` extends the default one. */
class Deadline {
  readonly #controller = new AbortController();
  readonly signal: AbortSignal;
  readonly #started = Date.now();
  readonly #fixedMs: number | undefined;
  #moved = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(fixedMs: number | undefined, parent: AbortSignal | undefined) {
    this.#fixedMs = fixedMs;
    this.signal = parent ? AbortSignal.any([parent, this.#controller.signal]) : this.#controller.signal;
    this.#arm();
  }

  get passed(): boolean {
    return this.#controller.signal.aborted;
  }

  get reason(): unknown {
    return this.#controller.signal.reason;
  }

  moved(bytes: number): void {
    this.#moved += bytes;
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  #allowedMs(): number {
    return this.#fixedMs ?? DEADLINE_BASE_MS + (this.#moved / DEADLINE_BYTES_PER_SECOND) * 1000;
  }

  /** Wakes at the earliest moment the deadline can pass; bytes moved meanwhile only push it later. */
  #arm(): void {
    const left = this.#started + this.#allowedMs() - Date.now();
    if (left > 0) {
      this.#timer = setTimeout(() => this.#arm(), left);
      this.#timer.unref();
      return;
    }
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1);
    this.#controller.abort(new DeadlineError(this.#fixedMs === undefined
      ? `gave up on the store after ${seconds} s: ${(this.#moved / 1e6).toFixed(1)} MB moved, slower than the default deadline allows `
        + `(${DEADLINE_BASE_MS / 1000} s + 1 s per MB; set --deadline)`
      : `gave up on the store after ${seconds} s (--deadline ${this.#fixedMs / 1000})`));
  }
}

export interface DeadlineOptions {
  /** Milliseconds; undefined: the default (see DEADLINE_BASE_MS). */
  deadlineMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** What `deadline` makes of a failure: its own reason once it passed (the abort is what failed). */
function because(deadline: Deadline, error: unknown): unknown {
  return deadline.passed ? deadline.reason : error;
}

/** `store` with every operation under the deadline: the signal passed on, bytes counted, its reason as the error. */
function guarded(store: Store, deadline: Deadline): Store {
  const counted = async function* (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) {
        deadline.signal.throwIfAborted();
        deadline.moved(chunk.length);
        yield chunk;
      }
    } catch (error) {
      throw because(deadline, error);
    }
  };
  const overrides: Partial<Store> = {
    get: async (key) => {
      try {
        deadline.signal.throwIfAborted();
        const body = await store.get(key, deadline.signal);
        return body && counted(body);
      } catch (error) {
        throw because(deadline, error);
      }
    },
    put: async (key, body) => {
      try {
        deadline.signal.throwIfAborted();
        return await store.put(key, Readable.from(counted(body), { objectMode: false }), deadline.signal);
      } catch (error) {
        throw because(deadline, error);
      }
    },
    list: async (_signal, under) => {
      try {
        deadline.signal.throwIfAborted();
        return await store.list(deadline.signal, under);
      } catch (error) {
        throw because(deadline, error);
      }
    },
  };
  // Everything else (location, close, what stores add) as the store has it.
  return new Proxy(store, {
    get(target, property) {
      if (property in overrides) return overrides[property as keyof Store];
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * Runs `work` with `store` under a deadline (options.deadlineMs, else the default); once it passes,
 * the store's operations (and downloads under way) fail with a DeadlineError saying so; what `work`
 * does without the store (moving restored files into place) is not cut. The caller's signal still aborts.
 */
export async function withDeadline<T>(store: Store, options: DeadlineOptions, work: (store: Store) => Promise<T>): Promise<T> {
  const deadline = new Deadline(options.deadlineMs, options.signal);
  try {
    return await work(guarded(store, deadline));
  } finally {
    deadline.stop();
  }
}
