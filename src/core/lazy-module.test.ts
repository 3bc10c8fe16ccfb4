import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lazyModule } from './lazy-module.js';

const root = join(import.meta.dirname, '..', '..');

describe('lazyModule', () => {
  it('loads the module on first use, once', () => {
    const path = lazyModule<{ join(...parts: string[]): string }>('node:path');
    expect(path().join('a', 'b')).toBe(join('a', 'b'));
    expect(path()).toBe(path());
  });

  it('building the registry loads no broker, database or GraphQL client library', () => {
    // A fresh process: what importing every registered component pulls in at start-up.
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(join(root, 'src/app/registry.ts'))}).then((m) => m.createRegistry());
      const cache = Object.keys(createRequire(import.meta.url).cache);
      const heavy = ['mqtt', 'ioredis', 'kafkajs', 'mysql2', '@nats-io', 'amqplib', 'graphql-ws', 'graphql', 'pg-logical-replication'];
      console.log(JSON.stringify(heavy.filter((h) => cache.some((p) => p.includes('/node_modules/' + h + '/')))));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual([]);
  }, 90_000);

  it('starting the app loads no HTTP client, web framework or PostgreSQL driver a spec does not use', () => {
    // The app with the default store: undici, fastify and pg load when a spec needs them
    // (an HTTP call, a push source or the admin listener, a PostgreSQL store or connector).
    const script = `
      import { createRequire } from 'node:module';
      await import(${JSON.stringify(join(root, 'src/app/app.ts'))});
      await import(${JSON.stringify(join(root, 'src/app/registry.ts'))}).then((m) => m.createRegistry());
      const cache = Object.keys(createRequire(import.meta.url).cache);
      const heavy = ['undici', 'fastify', 'pg'];
      console.log(JSON.stringify(heavy.filter((h) => cache.some((p) => p.includes('/node_modules/' + h + '/')))));
    `;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(JSON.parse(out.trim().split('\n').pop() as string)).toEqual([]);
  }, 90_000);
});
