import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCatalog } from '../core/errors.js';
import { renderErrors, renderReference } from '../registry/reference.js';
import { loadSpecText } from '../spec/load.js';
import { FUNCTIONS } from '../transform/expression/runtime.js';
import { renderExpressionsPage } from '../transform/expression/docs.js';
import { createRegistry } from './registry.js';

const docs = join(import.meta.dirname, '../../docs');

describe('generated docs cannot drift', () => {
  it('docs/reference.md is what the registry declares (run `npm run docs` after changing a component)', () => {
    expect(readFileSync(join(docs, 'reference.md'), 'utf8')).toBe(renderReference(createRegistry()));
  });
  it('docs/expressions.md lists every function and the sandbox limits as the code has them (run `npm run docs`)', () => {
    const text = readFileSync(join(docs, 'expressions.md'), 'utf8');
    expect(text).toBe(renderExpressionsPage(text));
    for (const name of Object.keys(FUNCTIONS)) expect(text).toContain(`| \`${name}\` |`);
  });
  it('docs/errors.md lists every error code (run `npm run docs` after changing the catalog)', () => {
    const text = readFileSync(join(docs, 'errors.md'), 'utf8');
    expect(text).toBe(renderErrors());
    for (const code of Object.keys(errorCatalog)) expect(text).toContain(`\`${code}\``);
  });
});

describe('README', () => {
  it('shows the two set-up commands and an example spec of at most 20 lines that validates', () => {
    const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
    const firstScreen = readme.split('\n').slice(0, 45).join('\n');
    expect(firstScreen).toContain('npm ci && npx ix run examples/quickstart.yaml');
    expect(firstScreen).toContain('npm test');
    const yaml = /```yaml\n([\s\S]*?)```/.exec(firstScreen)?.[1] ?? '';
    expect(yaml.trim().split('\n').length).toBeLessThanOrEqual(20);
    const loaded = loadSpecText(yaml, join(import.meta.dirname, '../../README.yaml'), createRegistry(), { env: { HOOK_TOKEN: 'x' } });
    expect(loaded.spec.flows.map((f) => f.name)).toEqual(['orders-in', 'backfill']);
  });
});

describe('docs/brokers.md examples', () => {
  const dir = join(import.meta.dirname, '../../examples/brokers');
  const env = { RABBIT_PASSWORD: 'x', NATS_PASSWORD: 'x', REDIS_PASSWORD: 'x', MQTT_PASSWORD: 'x', KAFKA_PASSWORD: 'x', HOSTNAME: 'w1' };
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  it('has one example per broker, each linked from the guide', () => {
    expect(files.sort()).toEqual(['kafka.yaml', 'mqtt.yaml', 'nats.yaml', 'rabbitmq.yaml', 'redis.yaml']);
    const guide = readFileSync(join(docs, 'brokers.md'), 'utf8');
    for (const f of files) expect(guide).toContain(`examples/brokers/${f}`);
  });
  it.each(files)('%s validates', (f) => {
    const path = join(dir, f);
    const loaded = loadSpecText(readFileSync(path, 'utf8'), path, createRegistry(), { env });
    expect(loaded.spec.flows.length).toBeGreaterThan(0);
  });
});
