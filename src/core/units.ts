/** Bytes as every message prints them: megabytes (10^6) to one decimal. */
export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
