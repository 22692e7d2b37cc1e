/** The messages between the main thread and the worker pool; paths are byte paths (latin1). */

export interface HashTask {
  /** Absolute path of the tree's root, as a byte path. */
  root: string;
  files: string[];
  symlinks: string[];
}

/** One digest per file, then one per symlink, in task order; null where the file could not be read. */
export interface HashResult {
  digests: (string | null)[];
  /** Why each null digest is null, as [index, "CODE: message"]. */
  errors: [number, string][];
  bytes: number;
}

export interface SetTimesTask {
  root: string;
  paths: string[];
  /** Seconds since the epoch, one per path. */
  mtimes: number[];
}

export interface SetTimesResult {
  /** [index, "CODE: message"] for every path whose time could not be set. */
  errors: [number, string][];
}
