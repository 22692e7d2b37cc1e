import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { redact, redactStrings } from '../../src/core/redact.js';

const test = suite('core/redact: credentials out of messages');
const TOKEN = 'FwoGZXIvYXdzEJr//////////wEaDSESSION+TOKEN==';

test('echoed headers, in JSON, XML, lines, query strings and escaped JSON', () => {
  const cases: [string, string][] = [
    [`{"authorization":"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/2026/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc123","x-amz-security-token":"${TOKEN}"}`,
      '{"authorization":"[redacted]","x-amz-security-token":"[redacted]"}'],
    ['<Error><X-Amz-Security-Token>tok123</X-Amz-Security-Token></Error>', '<Error><X-Amz-Security-Token>[redacted]</X-Amz-Security-Token></Error>'],
    ['GET /b/k?X-Amz-Credential=ASIAXXXXXXXXXXXXXXXX%2F2026&X-Amz-Signature=deadbeef&x=1', 'GET /b/k?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&x=1'],
    ['Authorization: AWS4-HMAC-SHA256 Credential=X/2026, Signature=abc\nnext line', 'Authorization: [redacted]\nnext line'],
    ['echo: {\\"x-amz-security-token\\":\\"TOKENVALUE\\"}', 'echo: {\\"x-amz-security-token\\":\\"[redacted]\\"}'],
    ['aws_secret_access_key = wJalrXUtnFEMI/K7MDENG', 'aws_secret_access_key = [redacted]'],
    ['key AKIAIOSFODNN7EXAMPLE in a sentence', 'key [redacted] in a sentence'],
  ];
  for (const [text, expected] of cases) assert.is(redact(text), expected);
});

test('known values anywhere, raw and URL-encoded; short ones and ordinary words left alone', () => {
  assert.is(redact(`a ${TOKEN} b ${encodeURIComponent(TOKEN)} c`, [TOKEN]), 'a [redacted] b [redacted] c');
  assert.is(redact('the secret x is short', ['x']), 'the secret x is short');
  const ordinary = 'SignatureDoesNotMatch: The request signature we calculated does not match; check the credentials and the bucket policy';
  assert.is(redact(ordinary), ordinary);
  assert.is(redact(ordinary, [], true), ordinary);
});

test('from a server: long opaque runs (a mangled token) go, our keys stay', () => {
  const key = 'download s3://bucket/prefix/main/v2-57b2326912ae32cb.2ea50ec6a5a4864e.tar.gz failed';
  assert.is(redact(key, [], true), key);
  // Session tokens are hundreds of characters long.
  assert.is(redact(`Bad${TOKEN.repeat(4).replace(/[^A-Za-z0-9]/g, '')}end`, [], true), '[redacted]');
});

test('reports: every string in a copy', () => {
  const report = { warnings: [`token ${TOKEN}`], attempts: [{ reason: 'x-amz-security-token: abc' }], seconds: 1 };
  assert.equal(redactStrings(report, [TOKEN]), { warnings: ['token [redacted]'], attempts: [{ reason: 'x-amz-security-token: [redacted]' }], seconds: 1 });
  assert.is(report.warnings[0], `token ${TOKEN}`);
});

test.run();
