import type { Channel } from 'amqplib';
import { parseDuration } from '../../core/units.js';
import type { RabbitSourceConfig } from './config.js';

type QueueDeclare = Exclude<RabbitSourceConfig['declare'], false>;
type Exchange = string | { name: string; type?: 'direct' | 'topic' | 'fanout' | 'headers'; durable?: boolean };

/** Declares an exchange given as an object; returns its name. */
export async function assertExchange(ch: Channel, ex: Exchange): Promise<string> {
  if (typeof ex === 'string') return ex;
  await ch.assertExchange(ex.name, ex.type ?? 'topic', { durable: ex.durable ?? true });
  return ex.name;
}

export async function assertQueue(ch: Channel, name: string, d: QueueDeclare): Promise<void> {
  const args: Record<string, unknown> = { ...(d.arguments ?? {}) };
  if (d.type === 'quorum') args['x-queue-type'] = 'quorum';
  if (d.deadLetterExchange !== undefined) args['x-dead-letter-exchange'] = d.deadLetterExchange;
  if (d.deadLetterRoutingKey !== undefined) args['x-dead-letter-routing-key'] = d.deadLetterRoutingKey;
  if (d.messageTtl !== undefined) args['x-message-ttl'] = parseDuration(d.messageTtl);
  if (d.maxPriority !== undefined) args['x-max-priority'] = d.maxPriority;
  if (d.maxLength !== undefined) args['x-max-length'] = d.maxLength;
  await ch.assertQueue(name, { durable: d.durable ?? true, arguments: args });
}

export async function declareSourceTopology(ch: Channel, c: RabbitSourceConfig): Promise<void> {
  if (c.declare !== false) await assertQueue(ch, c.queue, c.declare);
  for (const b of c.bindings) {
    const ex = await assertExchange(ch, b.exchange);
    const args = b.headers ? { ...b.headers, 'x-match': b.match } : undefined;
    await ch.bindQueue(c.queue, ex, b.routingKey ?? '', args);
  }
}
