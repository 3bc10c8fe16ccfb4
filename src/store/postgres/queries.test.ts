import { describe, expect, it } from 'vitest';
import * as Q from './queries.js';

const all = Object.entries(Q).filter((e): e is [string, Q.NamedQuery] => typeof e[1] === 'object' && e[1] !== null && 'text' in e[1]);

describe('PostgreSQL store statements', () => {
  it('commit durably whatever takes a message over: every insert of a new queue item or dead letter', () => {
    // requeue_dead inserts too, but only inside the durable transaction of a replay
    const takeOver = all.filter(([, q]) => /INSERT INTO (queue_items|dead_letters)\b/.test(q.text) && q.name !== 'ix_requeue_dead');
    expect(takeOver.map(([k]) => k).sort()).toEqual(['enqueueItems', 'enqueueItemsDeduped', 'enqueueItemsLeased', 'enqueueItemsLeasedDeduped', 'insertDeadLetters']);
    for (const [k, q] of takeOver) expect(q.durable, k).toBe(true);
  });

  it('commit progress asynchronously: claims, completions, retries, releases, lease renewals, checkpoints, attempts', () => {
    for (const k of ['claimItems', 'claimItemsAfter', 'completeItems', 'completeSeqs', 'retryItem', 'retryItemBackoff', 'releaseItems', 'extendLeases', 'setCheckpoint', 'takeLease', 'insertDeliveryAttempts'] as const) {
      expect(Q[k].durable, k).toBeUndefined();
    }
  });
});
