// Rewriting the absolute build root in cached text files when a cache is restored elsewhere.

/** Roots made of these characters appear verbatim in build files (no quoting, no escaping). */
const PLAIN_ROOT = /^\/[A-Za-z0-9._+\-~@%=,/]*$/;
/** Characters that continue a file name: a root followed by one of them is a longer name. */
const NAME_CHAR = /[A-Za-z0-9._+\-~@%=,]/;
/** Characters that end a word in build files: flags, lists, assignments, quotes. */
const WORD_END = /[\s"'`=:;,()[\]{}<>|&\0]/;

/** Why a root cannot be relocated by plain substitution, or undefined when it can. */
export function unplainRoot(root: string): string | undefined {
  return PLAIN_ROOT.test(root) && root !== '/' ? undefined : `the build root ${JSON.stringify(root)} has characters that build files quote or escape`;
}

/**
 * `text` (latin1) with every mention of the root `from` replaced by `to`: where the root is a
 * whole path or the start of one (the next character does not continue a name), and not the
 * tail of a longer path ("/var/tmp/x" does not mention "/tmp/x"; "-I/tmp/x/inc" does).
 * Returns undefined when nothing mentions it.
 */
export function replaceRoot(text: string, from: string, to: string): string | undefined {
  let result = '';
  let copied = 0;
  for (let at = text.indexOf(from); at >= 0; at = text.indexOf(from, at + from.length)) {
    const next = text[at + from.length];
    if (next !== undefined && NAME_CHAR.test(next)) continue;
    let wordStart = at;
    while (wordStart > 0 && !WORD_END.test(text[wordStart - 1]!)) wordStart--;
    if (text.slice(wordStart, at).includes('/')) continue;
    result += text.slice(copied, at) + to;
    copied = at + from.length;
  }
  return copied === 0 ? undefined : result + text.slice(copied);
}
