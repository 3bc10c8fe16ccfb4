import type { Migration } from '../migrations.js';

/**
 * The PostgreSQL schema, as numbered forward-only migrations. Each runs in its own
 * transaction under an advisory lock, so several workers starting at once migrate once.
 * Never edit a released migration: add the next number.
 *
 * Times are milliseconds since the epoch (`bigint`), written from the store's clock, so the
 * same contract holds on SQLite and PostgreSQL and tests can drive time.
 */
export const postgresMigrations: readonly Migration[] = [
  {
    version: 1,
    name: 'queues, checkpoints, idempotency keys, dead letters, rate limits, leases, workers',
    sql: `
      CREATE TABLE queue_items (
        seq bigserial PRIMARY KEY,
        queue text NOT NULL,
        id text NOT NULL,
        message text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        available_at bigint NOT NULL,
        lease_owner text,
        enqueued_at bigint NOT NULL,
        last_error text,
        UNIQUE (queue, id)
      );
      CREATE INDEX queue_items_ready ON queue_items (queue, available_at, seq);
      -- A queue table churns: every message is inserted, updated (claimed) and deleted.
      -- Vacuum and analyze it often so dead rows do not pile up at the head of the index.
      ALTER TABLE queue_items SET (
        autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000,
        autovacuum_vacuum_cost_delay = 0, fillfactor = 80
      );
      CREATE TABLE checkpoints (
        key text PRIMARY KEY,
        value text NOT NULL,
        updated_at bigint NOT NULL
      );
      CREATE TABLE idempotency_keys (
        scope text NOT NULL,
        key text NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (scope, key)
      );
      CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
      CREATE TABLE dead_letters (
        id bigserial PRIMARY KEY,
        flow text NOT NULL,
        message_id text NOT NULL,
        message text NOT NULL,
        failed text,
        stage text NOT NULL,
        reason text NOT NULL,
        attempts integer NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE INDEX dead_letters_flow ON dead_letters (flow, id);
      CREATE TABLE rate_limits (
        key text PRIMARY KEY,
        tat double precision NOT NULL
      );
      CREATE TABLE leases (
        name text PRIMARY KEY,
        owner text NOT NULL,
        expires_at bigint NOT NULL
      );
      CREATE TABLE workers (
        id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at bigint NOT NULL,
        heartbeat_at bigint NOT NULL,
        info text NOT NULL DEFAULT '{}'
      );
    `,
  },
  {
    version: 2,
    name: 'delivery attempts, dead-letter replay queue',
    sql: `
      CREATE TABLE delivery_attempts (
        id bigserial PRIMARY KEY,
        flow text NOT NULL,
        outbox text NOT NULL,
        message_id text NOT NULL,
        attempt integer NOT NULL,
        url text NOT NULL,
        at bigint NOT NULL,
        status integer,
        latency_ms integer NOT NULL,
        outcome text NOT NULL,
        error text,
        response_excerpt text,
        next_at bigint
      );
      CREATE INDEX delivery_attempts_message ON delivery_attempts (outbox, message_id, id);
      CREATE INDEX delivery_attempts_flow ON delivery_attempts (flow, id);
      CREATE INDEX delivery_attempts_at ON delivery_attempts (at);
      ALTER TABLE dead_letters ADD COLUMN replay_queue text;
    `,
  },
  {
    version: 3,
    name: 'queue leases in their own column (claims are HOT updates)',
    sql: `
      -- A claim used to move \`available_at\` to the lease expiry: an indexed column, so every
      -- claimed row got a new entry in each of the table's three indexes. The lease expiry now
      -- has a column of its own that no index covers, and pages keep room for a second, longer
      -- version of each row (with its owner and expiry), so a claim (and a release or a lease
      -- renewal) is a heap-only update.
      -- Rows leased now keep their expiry in both columns: \`available_at\` then still says
      -- when they are due, as the lease's own expiry does.
      ALTER TABLE queue_items ADD COLUMN lease_until bigint;
      UPDATE queue_items SET lease_until = available_at WHERE lease_owner IS NOT NULL;
      ALTER TABLE queue_items SET (fillfactor = 40);
    `,
  },
];
