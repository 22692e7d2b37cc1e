import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type {
  HashResult, HashTask, LoadedMessage, MaterializeResult, MaterializeTask, PackTask, SetTimesResult, SetTimesTask, UnpackResult, UnpackTask, WalkHashResult, WalkHashTask,
} from '../workers/types.js';

const WORKER = new URL('../workers/tasks.js', import.meta.url).href;

export interface PoolOptions {
  /**
   * Start the threads with the first task, not now: for work that often needs none (a blob save
   * after a small edit packs on the main thread), which then pays no thread's start-up.
   */
  lazy?: boolean;
}

/** The worker threads that hash files and set times; close it when done or the process stays up. */
export class WorkerPool {
  readonly threads: number;
  #piscina: Piscina | undefined;
  /** Threads that have loaded the task module, and what waits for the others (see close). */
  readonly #loaded = new Set<number>();
  readonly #onLoaded = new Map<number, () => void>();
  /** Materialize steps under way, and those waiting for one to end (see materialize). */
  #materializing = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(threads = availableParallelism(), options: PoolOptions = {}) {
    this.threads = threads;
    if (!options.lazy) this.#threadsUp();
  }

  #threadsUp(): Piscina {
    if (this.#piscina) return this.#piscina;
    // Tasks are synchronous, so a worker runs its queued tasks one after another; queueing a few
    // per worker keeps it busy while the main thread is walking (with one, workers waited 25% of the time).
    this.#piscina = new Piscina({ filename: WORKER, minThreads: this.threads, maxThreads: this.threads, idleTimeout: 1000, concurrentTasksPerWorker: 4 });
    this.#piscina.on('message', ({ loadedThread }: LoadedMessage) => {
      this.#loaded.add(loadedThread);
      this.#onLoaded.get(loadedThread)?.();
    });
    return this.#piscina;
  }

  /** Whether a thread has loaded the task module: until then tasks wait. */
  get started(): boolean {
    return this.#loaded.size > 0;
  }

  hash(task: HashTask, signal?: AbortSignal): Promise<HashResult> {
    return this.#threadsUp().run(task, { name: 'hash', signal: signal ?? null });
  }

  walkHash(task: WalkHashTask, signal?: AbortSignal): Promise<WalkHashResult> {
    return this.#threadsUp().run(task, { name: 'walkHash', signal: signal ?? null });
  }

  setTimes(task: SetTimesTask, signal?: AbortSignal): Promise<SetTimesResult> {
    return this.#threadsUp().run(task, { name: 'setTimes', signal: signal ?? null });
  }

  /** Packs on one thread; the chunks arrive on the task's port. */
  pack(task: PackTask): Promise<void> {
    return this.#threadsUp().run(task, { name: 'pack', transferList: [task.port] });
  }

  /** Unpacks on one thread; the tar bytes are posted on the task's port. */
  unpack(task: UnpackTask): Promise<UnpackResult> {
    return this.#threadsUp().run(task, { name: 'unpack', transferList: [task.port] });
  }

  /**
   * One step of a blob-layout restore (its `data` is shared memory, not copied). At most one per
   * thread is handed out: a step queued behind another on a busy thread would leave the other
   * thread idle at the end (a restore's last 0.1 s, measured).
   */
  async materialize(task: MaterializeTask, signal?: AbortSignal): Promise<MaterializeResult> {
    if (this.#materializing < this.threads) this.#materializing++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await this.#threadsUp().run(task, { name: 'materialize', signal: signal ?? null });
    } finally {
      // The slot passes straight to the next step, so none slips in between.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#materializing--;
    }
  }

  /** Ends the threads once each has loaded the task module or exited (see LoadedMessage). */
  async close(): Promise<void> {
    if (!this.#piscina) return;
    const loading = this.#piscina.threads.filter((thread) => !this.#loaded.has(thread.threadId));
    await Promise.all(loading.map((thread) => new Promise<void>((resolve) => {
      this.#onLoaded.set(thread.threadId, resolve);
      thread.once('exit', () => resolve());
    })));
    await this.#piscina.destroy();
  }
}

/** Runs `fn` with the given pool, or with a new one that is closed afterwards. */
export async function withPool<T>(pool: WorkerPool | undefined, threads: number | undefined,
  fn: (pool: WorkerPool) => Promise<T>, options: PoolOptions = {}): Promise<T> {
  if (pool) return fn(pool);
  const own = new WorkerPool(threads, options);
  try {
    return await fn(own);
  } finally {
    await own.close();
  }
}
