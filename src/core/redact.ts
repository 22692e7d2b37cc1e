// Credentials out of anything printed or written to a report. A server may echo our request in its
// error message (the Authorization header with the key id and the signature, the session token);
// the values we know are removed wherever they appear, and whatever looks like one besides.

export const REDACTED = '[redacted]';

/** An Authorization value runs to the end of its line or quote: it holds spaces and commas. */
const AUTHORIZATION = /(authorization(?:\\?["'])?\s*[:=>]\s*(?:\\?["'])?)[^"'<\n\r\\]+/gi;
/** Names of values that are credentials or derive from them, as headers, query parameters, JSON, XML or INI. */
const NAMED = new RegExp('((?:x-amz-)?(?:security[-_]?token|session[-_]?token|signature|credential|secret[-_]?access[-_]?key'
  + '|access[-_]?key[-_]?id|aws_secret_access_key|aws_session_token|aws_access_key_id)(?:\\\\?["\'])?\\s*[:=>]\\s*(?:\\\\?["\'])?)'
  + '[^\\s"\'<>&,;\\\\]+', 'gi');
/** AWS access key ids by their prefixes (long-term, temporary, roles, users...). */
const KEY_ID = /\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|APKA|ABIA|ACCA)[A-Z0-9]{12,}\b/g;
/**
 * In what a server says: long unbroken runs of letters and digits, as a token, a signature or a
 * secret is with its punctuation dropped (a server may mangle what it echoes). No message of S3's
 * holds one; our keys break theirs with dots, dashes and slashes.
 */
const OPAQUE = /[A-Za-z0-9+=_]{40,}/g;
/** Known values shorter than this are not searched for: they would blank out ordinary words. */
const MIN_SECRET_LENGTH = 6;

/**
 * `text` with `secrets` (and their URL-encoded forms) and anything that looks like a credential
 * replaced; with `fromServer`, long opaque runs too (see OPAQUE).
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = [], fromServer = false): string {
  let result = text.replace(AUTHORIZATION, `$1${REDACTED}`).replace(NAMED, `$1${REDACTED}`).replace(KEY_ID, REDACTED);
  const values = secrets.filter((s): s is string => s !== undefined && s.length >= MIN_SECRET_LENGTH)
    .flatMap((s) => [s, encodeURIComponent(s)])
    .sort((a, b) => b.length - a.length);
  for (const value of new Set(values)) result = result.split(value).join(REDACTED);
  return fromServer ? result.replace(OPAQUE, REDACTED) : result;
}

/** Every string in `value` (a report) redacted, in a copy. */
export function redactStrings<T>(value: T, secrets: readonly (string | undefined)[] = []): T {
  if (typeof value === 'string') return redact(value, secrets) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => redactStrings(item, secrets)) as T;
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactStrings(item, secrets)])) as T;
  }
  return value;
}
