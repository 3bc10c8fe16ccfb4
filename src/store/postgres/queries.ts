/**
 * Every SQL statement the PostgreSQL store runs, one named query each (graphile-worker
 * style: the store reads like its SQL). Names double as prepared-statement names, so each
 * pooled connection parses a statement once. Tables are unqualified: the pool sets
 * `search_path` to the store's schema.
 *
 * `now` is always a parameter (milliseconds since the epoch from the store's clock), never
 * `now()` in SQL: leases, retry times and windows follow the injected clock.
 */
export interface NamedQuery {
  readonly name: string;
  readonly text: string;
  /**
   * A commit that takes a message over (an enqueue, a dead letter): on disk before it is
   * answered. Every other commit records progress (claims, completions, retries, leases,
   * checkpoints, delivery attempts) and is committed asynchronously: a crash of the server
   * may undo the last few hundred milliseconds of them, which gives their messages back to
   * the queue (delivered again: at-least-once), never loses one. The SQLite store's commits
   * of progress likewise skip their own fsync.
   */
  readonly durable?: true;
}

const q = (name: string, text: string): NamedQuery => ({ name: `ix_${name}`, text });
/** A statement whose commit must be durable before it resolves (see `NamedQuery.durable`). */
const dq = (name: string, text: string): NamedQuery => ({ name: `ix_${name}`, text, durable: true });

// ---- queues ----

/**
 * $1 queue, $2 ids, $3 messages, $4 available_at per item, $5 now, $6 notify channel.
 * Inserts in the given order (so `seq` keeps it), skips ids already in the queue, and wakes
 * listeners once per transaction (PostgreSQL folds identical notifications).
 */
export const enqueueItems = dq(
  'enqueue',
  `WITH ins AS (
     INSERT INTO queue_items (queue, id, message, available_at, enqueued_at)
     SELECT $1, t.id, t.message, t.available_at, $5
       FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY AS t(id, message, available_at, ord)
      ORDER BY t.ord
     ON CONFLICT (queue, id) DO NOTHING
     RETURNING id, available_at
   )
   SELECT id, CASE WHEN available_at <= $5 THEN pg_notify($6, $1) END AS woke FROM ins`,
);

/**
 * Like `enqueueItems`, and also refuses ids enqueued within a window even if processed since:
 * $7 window expiry. The ids are remembered in the idempotency scope named after the queue in
 * the same statement, and only those remembered now are inserted.
 */
export const enqueueItemsDeduped = dq(
  'enqueue_dedupe',
  `WITH items AS (
     SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY AS t(id, message, available_at, ord)
   ), fresh AS (
     INSERT INTO idempotency_keys (scope, key, expires_at)
     SELECT $1, d.id, $7 FROM (SELECT DISTINCT id FROM items) AS d ORDER BY d.id
     ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= $5
     RETURNING key
   ), ins AS (
     INSERT INTO queue_items (queue, id, message, available_at, enqueued_at)
     SELECT $1, i.id, i.message, i.available_at, $5 FROM items AS i
      WHERE i.id IN (SELECT key FROM fresh)
      ORDER BY i.ord
     ON CONFLICT (queue, id) DO NOTHING
     RETURNING id, available_at
   )
   SELECT id, CASE WHEN available_at <= $5 THEN pg_notify($6, $1) END AS woke FROM ins`,
);

/** The insert of the leased enqueues, from `items` (id, message, ord) filtered by `where`. */
const insertLeased = (where: string): string =>
  `INSERT INTO queue_items (queue, id, message, available_at, enqueued_at, lease_owner, lease_until)
   SELECT $1, t.id, t.message, $5, $5, $6, $4
     FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS t(id, message, ord)
    ${where}
    ORDER BY t.ord
   ON CONFLICT (queue, id) DO NOTHING
   RETURNING id`;

/**
 * Like `enqueueItems`, and the rows are written leased: $1 queue, $2 ids, $3 messages, $4 lease
 * expiry (their lease_until, as `claimItems` writes it), $5 now (due at once), $6 owner. Nobody
 * else can claim them before the expiry, so no listener is woken.
 */
export const enqueueItemsLeased = dq('enqueue_leased', insertLeased(''));

/** `enqueueItemsLeased` with the dedupe window of `enqueueItemsDeduped`: $7 window expiry. */
export const enqueueItemsLeasedDeduped = dq(
  'enqueue_leased_dedupe',
  `WITH fresh AS (
     INSERT INTO idempotency_keys (scope, key, expires_at)
     SELECT $1, d.id, $7 FROM (SELECT DISTINCT id FROM unnest($2::text[]) AS u(id)) AS d ORDER BY d.id
     ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= $5
     RETURNING key
   )
   ${insertLeased('WHERE t.id IN (SELECT key FROM fresh)')}`,
);

/**
 * A row is leased while `lease_until` is in the future; `available_at` is when it is due.
 * Neither lease column is indexed, so taking, renewing and giving back a lease are heap-only
 * (HOT) updates: no index entry is written for them (the table's pages keep room for it).
 */
const notLeased = '(lease_until IS NULL OR lease_until <= $2)';

/** The claim: takes the rows `picked` (ctids of rows locked by this statement) selects. */
const claimPicked = (after: string): string =>
  `WITH picked AS (
     SELECT ctid FROM queue_items
      WHERE queue = $1 AND available_at <= $2 ${after} AND ${notLeased}
      ORDER BY available_at, seq
      LIMIT $3
      FOR UPDATE SKIP LOCKED
   )
   UPDATE queue_items AS qi SET lease_owner = $4, lease_until = $5
     FROM picked WHERE qi.ctid = picked.ctid
   RETURNING qi.seq, qi.id, qi.message, qi.attempts, qi.available_at, qi.enqueued_at, qi.last_error`;

/**
 * $1 queue, $2 now, $3 limit, $4 owner, $5 lease expiry. Takes the oldest ready rows that no
 * other transaction is claiming (`FOR UPDATE SKIP LOCKED`: claimers never wait on each
 * other) and leases them until `lease_until`, so a dead worker's claims are ready again
 * once it passes. The store's connections run with bitmap scans and sorts discouraged
 * (connection.ts), so this is an ordered walk of `queue_items_ready` that stops at the
 * limit, whatever the statistics say; the rows it locked are updated by their `ctid` (stable
 * while locked), not looked up again by key.
 */
export const claimItems = q('claim', claimPicked(''));

/**
 * `claimItems` that starts its walk after $6 available_at, $7 seq: the last row this store's
 * previous claim took. Every row before it was leased, locked by another claimer or not due
 * when that claim walked past, so the walk no longer steps over the rows every worker holds
 * (each one a heap visit to read its lease) before it reaches ready ones.
 */
export const claimItemsAfter = q('claim_after', claimPicked('AND (available_at, seq) > ($6::bigint, $7::bigint)'));

/** $1 queue, $2 owner, $3 ids. Only the lease holder completes. */
export const completeItems = q('complete', 'DELETE FROM queue_items WHERE queue = $1 AND id = ANY($2::text[]) AND lease_owner = $3');
/**
 * $1 seqs (of rows this store claimed), $2 owner. Completes by the primary key: one integer
 * lookup per row instead of a (queue, text id) one, about half the work of `completeItems`.
 */
export const completeSeqs = q('complete_seq', 'DELETE FROM queue_items WHERE seq = ANY($1::bigint[]) AND lease_owner = $2');

/**
 * $1 queue, $2 owner, $3 id, $4 available_at, $5 error, $6 now, $7 channel, $8 attempts to
 * count (1, or 0 for a reschedule that is not a failure, e.g. a rate-limited turn);
 * wakes listeners when the retry is due at once.
 */
export const retryItem = q(
  'retry',
  `WITH upd AS (
     UPDATE queue_items SET lease_owner = NULL, lease_until = NULL, available_at = $4, attempts = attempts + $8, last_error = $5
      WHERE queue = $1 AND id = $3 AND lease_owner = $2
     RETURNING available_at
   )
   SELECT CASE WHEN available_at <= $6 THEN pg_notify($7, $1) END AS woke FROM upd`,
);

/**
 * Retry number n (the row's attempts once this one is counted) waits, from $6 now:
 * min(max, initial·2^(n-1)) for exponential ($10 true), min(max, initial) for fixed; under
 * full jitter ($11 true) a uniform draw in [0, that]. Computed from the row itself, so every
 * worker's retries follow one policy whatever its clock.
 */
const backoffCeiling = `floor(LEAST($9::float8, $4::float8 * CASE WHEN $10::boolean THEN power(2::float8, LEAST(GREATEST(attempts + $8 - 1, 0), 52)) ELSE 1 END))`;

/**
 * As `retryItem`, with the next time computed here from a backoff: $4 initial ms, $9 max ms,
 * $10 exponential, $11 full jitter (the other parameters as `retryItem`'s).
 */
export const retryItemBackoff = q(
  'retry_backoff',
  `WITH upd AS (
     UPDATE queue_items SET lease_owner = NULL, lease_until = NULL,
            available_at = $6::bigint + (CASE WHEN $11::boolean THEN floor(random() * (${backoffCeiling} + 1)) ELSE ${backoffCeiling} END)::bigint,
            attempts = attempts + $8, last_error = $5
      WHERE queue = $1 AND id = $3 AND lease_owner = $2
     RETURNING available_at
   )
   SELECT CASE WHEN available_at <= $6 THEN pg_notify($7, $1) END AS woke FROM upd`,
);

/**
 * $1 queue, $2 owner, $3 ids, $4 channel. Back to the queue at once (a claimed row was due,
 * so it keeps its place), no attempt counted.
 */
export const releaseItems = q(
  'release',
  `WITH upd AS (
     UPDATE queue_items SET lease_owner = NULL, lease_until = NULL
      WHERE queue = $1 AND lease_owner = $2 AND id = ANY($3::text[])
     RETURNING id
   )
   SELECT id, pg_notify($4, $1) AS woke FROM upd`,
);

/** $1 queue, $2 owner, $3 ids, $4 now, $5 new expiry. Only live leases are extended. */
export const extendLeases = q(
  'extend',
  `UPDATE queue_items SET lease_until = $5
    WHERE queue = $1 AND lease_owner = $2 AND id = ANY($3::text[]) AND lease_until > $4
   RETURNING id`,
);

const statsColumns = `
  count(*) FILTER (WHERE available_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)) AS ready,
  count(*) FILTER (WHERE available_at > $1 AND (lease_until IS NULL OR lease_until <= $1)) AS scheduled,
  count(*) FILTER (WHERE lease_until > $1) AS leased`;

/** $1 now, $2 queue. */
export const queueStatsOne = q('stats_one', `SELECT ${statsColumns} FROM queue_items WHERE queue = $2`);
/** $1 now. */
export const queueStatsAll = q('stats_all', `SELECT ${statsColumns} FROM queue_items`);

/** $1 queue. */
export const nextAvailable = q('next_available', 'SELECT min(available_at) AS at FROM queue_items WHERE queue = $1 AND lease_owner IS NULL');

// ---- checkpoints ----

export const getCheckpoint = q('get_checkpoint', 'SELECT value FROM checkpoints WHERE key = $1');
/** $1 key, $2 value, $3 now. */
export const setCheckpoint = q(
  'set_checkpoint',
  `INSERT INTO checkpoints (key, value, updated_at) VALUES ($1, $2, $3)
   ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
);
export const deleteCheckpoint = q('delete_checkpoint', 'DELETE FROM checkpoints WHERE key = $1');
/** $1 prefix, taken literally (no LIKE pattern). */
export const listCheckpoints = q('list_checkpoints', 'SELECT key, value, updated_at FROM checkpoints WHERE starts_with(key, $1) ORDER BY key COLLATE "C"');

// ---- idempotency keys ----

/**
 * $1 scope, $2 distinct keys (sorted, so concurrent callers lock rows in one order), $3 expiry,
 * $4 now. Returns the keys that were new: absent, or present but expired.
 */
export const rememberKeys = q(
  'remember',
  `INSERT INTO idempotency_keys (scope, key, expires_at)
   SELECT $1, k, $3 FROM unnest($2::text[]) AS k ORDER BY k
   ON CONFLICT (scope, key) DO UPDATE SET expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= $4
   RETURNING key`,
);
/** $1 scope, $2 keys, $3 now. */
export const seenKeys = q('seen', 'SELECT key FROM idempotency_keys WHERE scope = $1 AND key = ANY($2::text[]) AND expires_at > $3');
/** $1 now. */
export const purgeKeys = q('purge', 'DELETE FROM idempotency_keys WHERE expires_at <= $1');

// ---- rate limits ----

/**
 * GCRA in one statement: $1 key, $2 now, $3 emission interval (ms). The upsert locks the row,
 * so callers in every process are served one at a time and in order. Returns the new
 * theoretical arrival time; the caller's slot is `tat - interval`.
 */
export const acquireRate = q(
  'acquire_rate',
  `INSERT INTO rate_limits (key, tat) VALUES ($1, $2::double precision + $3::double precision)
   ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $2::double precision) + $3::double precision
   RETURNING tat`,
);

// ---- leases ----

/** $1 name, $2 owner, $3 expiry, $4 now. Taken when free, expired, or already ours (renewal). */
export const takeLease = q(
  'take_lease',
  `INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
   ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
    WHERE leases.owner = excluded.owner OR leases.expires_at <= $4
   RETURNING owner`,
);
export const releaseLease = q('release_lease', 'DELETE FROM leases WHERE name = $1 AND owner = $2');

// ---- dead letters ----

/** $1 flows, $2 message ids, $3 messages, $4 failed, $5 stages, $6 reasons, $7 attempts, $8 now, $9 replay queues. */
export const insertDeadLetters = dq(
  'insert_dead',
  `INSERT INTO dead_letters (flow, message_id, message, failed, stage, reason, attempts, created_at, replay_queue)
   SELECT t.flow, t.mid, t.message, t.failed, t.stage, t.reason, t.attempts, $8, t.replay_queue
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $9::text[])
          WITH ORDINALITY AS t(flow, mid, message, failed, stage, reason, attempts, replay_queue, ord)
    ORDER BY t.ord`,
);
/** $1 after id, $2 limit. */
export const listDeadLetters = q('list_dead', 'SELECT * FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2');
/** $1 after id, $2 limit, $3 flow. */
export const listDeadLettersOfFlow = q('list_dead_flow', 'SELECT * FROM dead_letters WHERE flow = $3 AND id > $1 ORDER BY id LIMIT $2');
export const getDeadLetter = q('get_dead', 'SELECT * FROM dead_letters WHERE id = $1');
export const countDeadLetters = q('count_dead', 'SELECT count(*) AS n FROM dead_letters');
export const countDeadLettersOfFlow = q('count_dead_flow', 'SELECT count(*) AS n FROM dead_letters WHERE flow = $1');
/** $1 ids. Locks the entries a replay moves, so two replays never move one entry twice. */
export const lockDeadLetters = q('lock_dead', 'SELECT * FROM dead_letters WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE');
/**
 * $1 queue, $2 id, $3 message, $4 now. A replay is a new delivery of the same message: a row
 * an earlier replay left in the queue is reset rather than duplicated.
 */
export const requeueDeadLetter = q(
  'requeue_dead',
  `INSERT INTO queue_items (queue, id, message, available_at, enqueued_at) VALUES ($1, $2, $3, $4, $4)
   ON CONFLICT (queue, id) DO UPDATE SET available_at = $4, lease_owner = NULL, lease_until = NULL, attempts = 0`,
);
export const deleteDeadLetters = dq('delete_dead', 'DELETE FROM dead_letters WHERE id = ANY($1::bigint[])');

// ---- delivery attempts (outbound webhooks; `ix deliveries`) ----

/** $1..$12 arrays: flow, outbox, message id, attempt, url, at, status, latency, outcome, error, excerpt, next at. */
export const insertDeliveryAttempts = q(
  'insert_attempts',
  `INSERT INTO delivery_attempts (flow, outbox, message_id, attempt, url, at, status, latency_ms, outcome, error, response_excerpt, next_at)
   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::bigint[], $7::int[], $8::int[], $9::text[], $10::text[], $11::text[], $12::bigint[])`,
);
/** $1 after id, $2 flow or null, $3 outbox or null, $4 message id or null, $5 limit. */
export const listDeliveryAttempts = q(
  'list_attempts',
  `SELECT * FROM delivery_attempts
    WHERE id > $1 AND ($2::text IS NULL OR flow = $2) AND ($3::text IS NULL OR outbox = $3) AND ($4::text IS NULL OR message_id = $4)
    ORDER BY id LIMIT $5`,
);
/** $1 before (ms). */
export const purgeDeliveryAttempts = q('purge_attempts', 'DELETE FROM delivery_attempts WHERE at < $1');
/** $1 before (ms), $2 outbox. */
export const purgeOutboxDeliveryAttempts = q('purge_outbox_attempts', 'DELETE FROM delivery_attempts WHERE at < $1 AND outbox = $2');

// ---- workers (cluster status) ----

/** $1 id, $2 host, $3 pid, $4 now, $5 info (JSON). */
export const heartbeatWorker = q(
  'heartbeat',
  `INSERT INTO workers (id, host, pid, started_at, heartbeat_at, info) VALUES ($1, $2, $3, $4, $4, $5)
   ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, info = excluded.info`,
);
export const removeWorker = q('remove_worker', 'DELETE FROM workers WHERE id = $1');
/** $1 oldest live heartbeat. */
export const purgeWorkers = q('purge_workers', 'DELETE FROM workers WHERE heartbeat_at < $1');
/**
 * $1 now, $2 oldest live heartbeat. Live workers with what each holds: live queue leases
 * (owner is the worker id, or starts with `<id>/`) per queue, and leader leases.
 */
export const listWorkers = q(
  'list_workers',
  `SELECT w.id, w.host, w.pid, w.started_at, w.heartbeat_at, w.info,
          COALESCE((SELECT json_object_agg(h.queue, h.n) FROM (
             SELECT qi.queue, count(*) AS n FROM queue_items qi
              WHERE qi.lease_until > $1 AND (qi.lease_owner = w.id OR starts_with(qi.lease_owner, w.id || '/'))
              GROUP BY qi.queue) h)::text, '{}') AS holds,
          COALESCE((SELECT json_agg(l.name ORDER BY l.name) FROM leases l
              WHERE l.expires_at > $1 AND (l.owner = w.id OR starts_with(l.owner, w.id || '/')))::text, '[]') AS leases
     FROM workers w
    WHERE w.heartbeat_at >= $2
    ORDER BY w.started_at, w.id`,
);
