import { describe, expect, it } from 'vitest';
import { createMessage, expandStored, toStored, toStoredCompact } from './message.js';

describe('a stored message whose payload is the raw text in its meta', () => {
  const raw = JSON.stringify({ id: 'evt_1', data: { total: 42.5, lines: [{ sku: 'A-1', qty: 2 }] } });
  const msg = createMessage({ id: 'evt_1', key: 'k', payload: JSON.parse(raw), headers: { 'content-type': 'application/json' }, meta: { webhook: { raw, path: '/h' } } });

  it('is stored without the payload and read back with the same one', () => {
    const stored = JSON.parse(JSON.stringify(toStoredCompact(msg, { meta: ['webhook', 'raw'], as: 'json' })));
    expect(stored.payload).toBeUndefined();
    expect(JSON.stringify(stored).length).toBeLessThan(JSON.stringify(toStored(msg)).length);
    const back = expandStored(stored);
    expect(back).toEqual(toStored(msg));
    expect(back).not.toHaveProperty('payloadFrom');
  });

  it('a text payload is the text itself; a message stored whole comes back as it is', () => {
    const text = createMessage({ id: 't', payload: 'plain words', meta: { webhook: { raw: 'plain words' } } });
    expect(expandStored(JSON.parse(JSON.stringify(toStoredCompact(text, { meta: ['webhook', 'raw'], as: 'text' })))).payload).toBe('plain words');
    const whole = toStored(msg);
    expect(expandStored(whole)).toBe(whole);
  });

  it('text that is missing or not JSON gives a message with the reason as its error (dead-lettered), never a throw', () => {
    const missing = expandStored({ id: 'a', payload: undefined, headers: {}, meta: {}, payloadFrom: { meta: ['webhook', 'raw'], as: 'json' } });
    expect(missing.error).toBe('stored payload missing: no text at meta.webhook.raw');
    const broken = expandStored({ id: 'b', payload: undefined, headers: {}, meta: { webhook: { raw: '{"a":' } }, payloadFrom: { meta: ['webhook', 'raw'], as: 'json' } });
    expect(broken.error).toMatch(/^stored payload unreadable: meta\.webhook\.raw is not JSON/);
  });
});
