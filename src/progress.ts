import { megabytes } from './core/units.js';

/** The steps of a restore (hash, fetch, unpack, apply) and of a save (pack, upload). */
export type Phase = 'hash' | 'fetch' | 'unpack' | 'apply' | 'pack' | 'upload';

/** How far a phase has got; told often while it runs and once with `done` when it ends. */
export interface Progress {
  phase: Phase;
  /** Files (or archive entries) so far. */
  files: number;
  bytes: number;
  /** Known for apply (what the plan restores); absent where the end is not known beforehand. */
  totalFiles?: number;
  totalBytes?: number;
  done: boolean;
  /** Since the phase began. */
  seconds: number;
}

export type ProgressListener = (progress: Progress) => void;

/** One phase's reporter: counts so far, and the end. Does nothing without a listener. */
export class PhaseReporter {
  readonly #phase: Phase;
  readonly #listener: ProgressListener | undefined;
  readonly #totals: { totalFiles?: number; totalBytes?: number };
  readonly #started = Date.now();
  #files = 0;
  #bytes = 0;
  #done = false;

  constructor(listener: ProgressListener | undefined, phase: Phase, totals: { totalFiles?: number; totalBytes?: number } = {}) {
    this.#listener = listener;
    this.#phase = phase;
    this.#totals = totals;
    this.#tell();
  }

  #tell(): void {
    this.#listener?.({ phase: this.#phase, files: this.#files, bytes: this.#bytes, ...this.#totals, done: this.#done, seconds: (Date.now() - this.#started) / 1000 });
  }

  update(files: number, bytes: number): void {
    [this.#files, this.#bytes] = [files, bytes];
    this.#tell();
  }

  /** Ends the phase with its final counts (once; later calls are ignored). */
  end(files = this.#files, bytes = this.#bytes): void {
    if (this.#done) return;
    [this.#files, this.#bytes, this.#done] = [files, bytes, true];
    this.#tell();
  }
}

/** Passes a stream on, telling the reporter the bytes so far; ends the phase when the stream does. */
export async function* counted(source: AsyncIterable<Buffer>, reporter: PhaseReporter): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of source) {
    bytes += chunk.length;
    reporter.update(0, bytes);
    yield chunk;
  }
  reporter.end(0, bytes);
}

function files(n: number, total?: number): string {
  return `${n}${total ? `/${total}` : ''} file${(total ?? n) === 1 ? '' : 's'}`;
}

function seconds(value: number): string {
  return value < 60 ? `${Math.ceil(value)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

/** The rewriting line of a terminal: counts, bytes, rate and, when the total is known, ETA. */
export function progressLine(p: Progress): string {
  const count = p.files > 0 || p.totalFiles ? `${files(p.files, p.totalFiles)}, ` : '';
  const bytes = p.totalBytes ? `${(p.bytes / 1e6).toFixed(1)}/${megabytes(p.totalBytes)}` : megabytes(p.bytes);
  const rate = p.seconds > 0 ? p.bytes / p.seconds : 0;
  const parts = [`${p.phase} ${count}${bytes}`];
  if (rate > 0) parts.push(`${megabytes(rate)}/s`);
  const fraction = p.totalBytes ? p.bytes / p.totalBytes : p.totalFiles ? p.files / p.totalFiles : undefined;
  if (fraction !== undefined && fraction > 0 && fraction < 1) parts.push(`ETA ${seconds((p.seconds / fraction) * (1 - fraction))}`);
  return parts.join(', ');
}

/** The plain line a finished phase leaves in a log (Nix, CI). */
export function phaseLine(p: Progress): string {
  return `${p.phase}: ${p.files > 0 ? `${files(p.files)}, ` : ''}${megabytes(p.bytes)} in ${p.seconds.toFixed(2)} s`;
}
