// Searching a stream of pieces for a byte string.

/** Whether `needle` occurs in data fed piece by piece (a match may span two pieces). */
export class ByteFinder {
  found = false;
  #tail: Buffer | undefined;
  readonly #needle: Buffer;

  constructor(needle: Buffer) {
    this.#needle = needle;
  }

  /** `more`: whether pieces follow (only then is the piece's end kept for the next). */
  feed(piece: Buffer, more: boolean): void {
    if (this.found) return;
    const overlap = this.#needle.length - 1;
    this.found = piece.includes(this.#needle)
      || (this.#tail !== undefined && Buffer.concat([this.#tail, piece.subarray(0, overlap)]).includes(this.#needle));
    if (!more) {
      this.#tail = undefined;
      return;
    }
    // The last `overlap` bytes so far, copied (the piece's chunk is handed to the reader).
    const recent = piece.length >= overlap || this.#tail === undefined ? piece : Buffer.concat([this.#tail, piece]);
    this.#tail = Buffer.from(recent.subarray(Math.max(0, recent.length - overlap)));
  }
}
