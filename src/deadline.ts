// The deadline of a restore's or a save's work with the store: a server that answers slowly (a
// trickle of bytes, which no idle timeout ends) holds the build up to it and no longer.
import { Readable } from 'node:stream';
import { megabytes } from './core/units.js';
import { NbcError } from './core/errors.js';
import type { Store } from './stores/store.js';

/**
 * The default when none is given: the time spent waiting for the store (not unpacking or packing
 * here, which a tree of many small files makes slow) may reach DEADLINE_BASE_MS plus one second
 * per DEADLINE_BYTES_PER_SECOND moved so far. A store averaging 1 MB/s (a hundredth of a 1 Gbit
 * link) never reaches it; a server trickling 1 KiB/s is given up on after about 10 s.
 */
export const DEADLINE_BASE_MS = 10_000;
export const DEADLINE_BYTES_PER_SECOND = 1_000_000;

/** The store work took longer than the deadline allowed. */
export class DeadlineError extends NbcError {
  constructor(message: string) {
    super('NBC_DEADLINE', message);
  }
}

/**
 * Aborts `signal` once the time allowed has passed: with a fixed deadline, wall time from the
 * start; by default, the time spent waiting for the store (see `waiting`), against an allowance
 * that grows with the bytes moved.
 */
class Deadline {
  readonly #controller = new AbortController();
  readonly signal: AbortSignal;
  readonly #started = Date.now();
  readonly #fixedMs: number | undefined;
  #moved = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Milliseconds spent waiting for the store, besides the current wait. */
  #waited = 0;
  /** Store operations under way, and since when at least one has been. */
  #pending = 0;
  #since = 0;

  constructor(fixedMs: number | undefined, parent: AbortSignal | undefined) {
    this.#fixedMs = fixedMs;
    this.signal = parent ? AbortSignal.any([parent, this.#controller.signal]) : this.#controller.signal;
    if (fixedMs !== undefined) this.#arm();
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

  /** Runs `step` as time spent waiting for the store. */
  async waiting<T>(step: () => Promise<T>): Promise<T> {
    this.signal.throwIfAborted();
    this.#resume();
    try {
      return await step();
    } finally {
      this.#pause();
    }
  }

  /** Runs `step` as our own work inside a wait (producing what the store reads): not the store's time. */
  async ours<T>(step: () => Promise<T>): Promise<T> {
    const pending = this.#pending;
    for (let i = 0; i < pending; i++) this.#pause();
    try {
      return await step();
    } finally {
      for (let i = 0; i < pending; i++) this.#resume();
    }
  }

  /** One store operation fewer under way: the time since the first began is counted as waited. */
  #pause(): void {
    if (--this.#pending === 0) {
      this.#waited += Date.now() - this.#since;
      if (this.#fixedMs === undefined) clearTimeout(this.#timer);
    }
  }

  /** One more store operation under way: the first starts the clock (and, by default, the timer). */
  #resume(): void {
    if (this.#pending++ === 0) {
      this.#since = Date.now();
      if (this.#fixedMs === undefined) this.#arm();
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  /** Milliseconds counted against the deadline so far. */
  #spentMs(): number {
    if (this.#fixedMs !== undefined) return Date.now() - this.#started;
    return this.#waited + (this.#pending > 0 ? Date.now() - this.#since : 0);
  }

  #allowedMs(): number {
    return this.#fixedMs ?? DEADLINE_BASE_MS + (this.#moved / DEADLINE_BYTES_PER_SECOND) * 1000;
  }

  /** Wakes at the earliest moment the deadline can pass; bytes moved meanwhile only push it later. */
  #arm(): void {
    clearTimeout(this.#timer);
    const left = this.#allowedMs() - this.#spentMs();
    if (left > 0) {
      this.#timer = setTimeout(() => this.#arm(), left);
      this.#timer.unref();
      return;
    }
    const seconds = (this.#spentMs() / 1000).toFixed(1);
    this.#controller.abort(new DeadlineError(this.#fixedMs === undefined
      ? `gave up on the store after waiting ${seconds} s for it: ${megabytes(this.#moved)} moved, slower than the default `
        + `deadline allows (${DEADLINE_BASE_MS / 1000} s + 1 s per MB; set --deadline)`
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
  const under = async <T>(step: () => Promise<T>): Promise<T> => {
    try {
      return await deadline.waiting(step);
    } catch (error) {
      throw because(deadline, error);
    }
  };
  /** A download: waiting for each chunk is the store's time. */
  const download = async function* (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const chunks = body[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await under(() => chunks.next());
        if (next.done) return;
        deadline.moved(next.value.length);
        yield next.value;
      }
    } finally {
      await chunks.return?.();
    }
  };
  /** An upload's body: making each chunk (packing) is our time, though the store waits for it. */
  const upload = async function* (body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const chunks = body[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await deadline.ours(() => chunks.next());
        if (next.done) return;
        deadline.moved(next.value.length);
        yield next.value;
      }
    } finally {
      await chunks.return?.();
    }
  };
  const overrides: Partial<Store> = {
    get: async (key) => {
      const body = await under(() => store.get(key, deadline.signal));
      return body && Object.assign(download(body), body.size === undefined ? {} : { size: body.size });
    },
    put: (key, body, _signal, sizeHint) => under(() => store.put(key, Readable.from(upload(body), { objectMode: false }), deadline.signal, sizeHint)),
    list: (_signal, under_) => under(() => store.list(deadline.signal, under_)),
    // Only where the store has ranged reads: readers fall back to get() where it has none.
    ...(store.getRange ? {
      getRange: (key: string, start: number, end: number, _signal?: AbortSignal, into?: Buffer, filled?: (bytes: number) => void) => under(async () => {
        const data = await store.getRange!(key, start, end, deadline.signal, into, filled);
        deadline.moved(data?.length ?? 0);
        return data;
      }),
    } : {}),
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
