import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSpecs } from '../../cli/check.js';

const dir = mkdtempSync(join(tmpdir(), 'ix-webhook-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'whsec_' + Buffer.from('a-secret-that-never-shows-32byte').toString('base64');

/** Writes a spec and returns what `ix check` reports for it. */
async function check(name: string, flows: string, env: Record<string, string> = {}): Promise<string[]> {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `version: 1\nsecrets: { HOOK: env:IX_WEBHOOK_CHECK_SECRET }\nflows:\n${flows}`);
  const before = process.env['IX_WEBHOOK_CHECK_SECRET'];
  process.env['IX_WEBHOOK_CHECK_SECRET'] = env['IX_WEBHOOK_CHECK_SECRET'] ?? SECRET;
  try {
    const r = await checkSpecs([file]);
    return r.ok ? r.out : r.problems.map((p) => p.replace(dir, '<dir>'));
  } finally {
    if (before === undefined) delete process.env['IX_WEBHOOK_CHECK_SECRET'];
    else process.env['IX_WEBHOOK_CHECK_SECRET'] = before;
  }
}

const hook = (path: string, verify = '{ scheme: standard-webhooks, secret: "${secrets.HOOK}" }') =>
  `    source: { webhook: { path: ${path}, verify: ${verify} } }\n    sink: { stdout: {} }\n`;

describe('bad webhook specs: one line with file:line:col, nothing starts', () => {
  it('accepts a good spec', async () => {
    expect(await check('ok', `  a:\n${hook('/a')}`)).toEqual([`${dir}/ok.yaml: ok (1 flow)`]);
  });

  it('refuses two flows on one route', async () => {
    expect(await check('twice', `  a:\n${hook('/same')}  b:\n${hook('/same')}`)).toEqual([
      '<dir>/twice.yaml:8:24: route POST /same is already used by flow "a": give each flow its own path',
    ]);
  });

  it('refuses a secret that is not whsec_ + base64, without printing it', async () => {
    const r = await check('bad-secret', `  a:\n${hook('/a')}`, { IX_WEBHOOK_CHECK_SECRET: 'whsec_not base64 at all!' });
    expect(r).toEqual(['<dir>/bad-secret.yaml:5:24: a Standard Webhooks secret is whsec_ followed by base64 (this one is not)']);
    expect(r.join('\n')).not.toContain('not base64 at all');
  });

  it('refuses a public key that is not ed25519, a missing secret, a bad network and a private sink address', async () => {
    expect(await check('bad-pk', `  a:\n${hook('/a', '{ scheme: standard-webhooks, publicKey: whpk_AAAA }')}`)).toEqual([
      '<dir>/bad-pk.yaml:5:24: publicKey must be an ed25519 public key: whpk_ followed by the base64 of its 32 bytes, or a PEM',
    ]);
    expect(await check('no-secret', `  a:\n${hook('/a', '{ scheme: github }')}`)).toEqual(['<dir>/no-secret.yaml:5:24: github verification needs a secret']);
    expect(
      await check('bad-cidr', `  a:\n    source: { webhook: { path: /a, verify: { scheme: none }, allow: [10.0.0.0/40] } }\n    sink: { stdout: {} }\n`),
    ).toEqual(['<dir>/bad-cidr.yaml:5:24: invalid prefix length in "10.0.0.0/40"']);
    expect(
      await check('private-sink', `  a:\n    source: { generate: { count: 1 } }\n    sink: { webhook: { url: "http://169.254.169.254/latest", sign: { scheme: none } } }\n`),
    ).toEqual([
      '<dir>/private-sink.yaml:6:22: refused to deliver to http://169.254.169.254: address 169.254.169.254 is a cloud metadata endpoint; allow it with allowPrivateNetworks or allowNetworks',
    ]);
  });
});
