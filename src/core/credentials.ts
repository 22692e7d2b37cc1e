/** AWS credentials; never printed, never part of an error message. */
export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/**
 * Reads an AWS shared-credentials file ("[profile]" sections with aws_access_key_id,
 * aws_secret_access_key and optionally aws_session_token), or a plain file whose first two
 * non-empty lines are the key id and the secret. Problems never quote the file's lines.
 */
export function parseCredentials(text: string, profile = 'default'): Credentials | { problem: string } {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !/^[#;]/.test(line));
  if (!lines.some((line) => line.startsWith('['))) {
    if (lines.length !== 2 || lines.some((line) => /\s/.test(line))) {
      return { problem: 'expected an AWS credentials file or two lines: the access key id, then the secret' };
    }
    return { accessKeyId: lines[0]!, secretAccessKey: lines[1]! };
  }
  const values = new Map<string, string>();
  let section: string | undefined;
  for (const line of lines) {
    const header = /^\[\s*(?:profile\s+)?([^\]]+?)\s*\]$/.exec(line);
    if (header) section = header[1];
    else if (section === profile) {
      const eq = line.indexOf('=');
      if (eq > 0) values.set(line.slice(0, eq).trim().toLowerCase(), line.slice(eq + 1).trim());
    }
  }
  const accessKeyId = values.get('aws_access_key_id');
  const secretAccessKey = values.get('aws_secret_access_key');
  if (!accessKeyId || !secretAccessKey) {
    return { problem: `profile ${profile} lacks aws_access_key_id or aws_secret_access_key` };
  }
  const sessionToken = values.get('aws_session_token');
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
}
