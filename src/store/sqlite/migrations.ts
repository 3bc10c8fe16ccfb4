import type { Migration } from '../migrations.js';

export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'queues, checkpoints, idempotency keys, dead letters, rate limits, leases',
    sql: `
      CREATE TABLE queue_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        message TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        available_at INTEGER NOT NULL,
        lease_owner TEXT,
        enqueued_at INTEGER NOT NULL,
        last_error TEXT,
        UNIQUE (queue, id)
      );
      CREATE INDEX queue_items_ready ON queue_items (queue, available_at, seq);
      CREATE TABLE checkpoints (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE idempotency_keys (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
      ) WITHOUT ROWID;
      CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
      CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        message_id TEXT NOT NULL,
        message TEXT NOT NULL,
        failed TEXT,
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX dead_letters_flow ON dead_letters (flow, id);
      CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        tat REAL NOT NULL
      );
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'delivery attempts, dead-letter replay queue',
    sql: `
      CREATE TABLE delivery_attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        flow TEXT NOT NULL,
        outbox TEXT NOT NULL,
        message_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        url TEXT NOT NULL,
        at INTEGER NOT NULL,
        status INTEGER,
        latency_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        response_excerpt TEXT,
        next_at INTEGER
      );
      CREATE INDEX delivery_attempts_message ON delivery_attempts (outbox, message_id, id);
      CREATE INDEX delivery_attempts_flow ON delivery_attempts (flow, id);
      CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
      ALTER TABLE dead_letters ADD COLUMN replay_queue TEXT;
    `,
  },
  {
    version: 3,
    name: 'workers (ix status)',
    sql: `
      CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        info TEXT NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: 'dedupe keys written when an item leaves its queue',
    sql: `
      ALTER TABLE queue_items ADD COLUMN dedupe_until INTEGER;
    `,
  },
];
