import { Type, type Static } from '@sinclair/typebox';
import { defineSource } from '../../registry/registry.js';

export const PostgresCdcConfig = Type.Object(
  {
    url: Type.String({ minLength: 1, description: 'Connection URL of a role with REPLICATION (or superuser); the server needs `wal_level = logical`.' }),
    slot: Type.String({ pattern: '^[a-z0-9_]{1,63}$', description: 'Replication slot name (created with pgoutput when missing). The slot is the durable position.' }),
    publication: Type.String({ minLength: 1, description: 'Publication to stream (created FOR TABLE `tables` when missing).' }),
    tables: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Tables for a publication this source creates.' })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'Changes per batch; the flow\'s batch size by default.' })),
    linger: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, default: 50, description: 'Milliseconds to wait for more transactions before emitting a partial batch.' })),
  },
  { additionalProperties: false },
);
export type PostgresCdcConfig = Static<typeof PostgresCdcConfig>;

export const postgresCdcSource = defineSource({
  kind: 'postgres-cdc',
  summary: 'Streams row changes (insert, update, delete, truncate) from PostgreSQL logical replication with pgoutput.',
  description:
    'Needs `wal_level = logical` and a role with REPLICATION. The source creates the publication (when `tables` is given) and the replication slot when missing. Each change is one message whose payload is `{ op, schema, table, new, old, commitLsn, commitTime, xid }`; its id (`slot:commitLsn:n`) is the same on every redelivery. The slot\'s position is acknowledged to the server only after every change of a transaction settled, so a crash streams the unsettled transactions again. A dropped connection reconnects with backoff. A slot keeps WAL on the server while the source is stopped: drop it (`SELECT pg_drop_replication_slot(\'name\')`) when the flow is retired.',
  config: PostgresCdcConfig,
  examples: [{ title: 'Orders and customers', yaml: 'url: postgres://replicator@127.0.0.1:5432/shop\nslot: ix_shop\npublication: ix_shop\ntables: [orders, customers]' }],
  async create(config) {
    const { PostgresCdcSource } = await import('./cdc.js');
    return new PostgresCdcSource(config);
  },
});
