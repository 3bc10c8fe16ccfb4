import { describe, expect, it } from 'vitest';
import { createMessage } from '../../core/message.js';
import { applyResult } from './components.js';

describe('applyResult', () => {
  it('nests the body under `into`, keeping the payload fields and their order, without touching the original payload', () => {
    const payload = { a: 1, response: 'old', b: 2 };
    const msg = createMessage({ id: 'm', payload });
    applyResult(msg, { ok: true }, { into: 'response' });
    expect(msg.payload).toEqual({ a: 1, response: { ok: true }, b: 2 });
    expect(Object.keys(msg.payload as object)).toEqual(['a', 'response', 'b']);
    expect(payload.response).toBe('old');
  });

  it('keeps an own __proto__ key of a parsed payload as a field, and `into: __proto__` as a field too', () => {
    const msg = createMessage({ id: 'm', payload: JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown });
    applyResult(msg, 42, { into: 'response' });
    const out = msg.payload as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, '__proto__')).toBe(true);
    expect(out['response']).toBe(42);
    expect((out as { polluted?: boolean }).polluted).toBeUndefined();

    const other = createMessage({ id: 'n', payload: { a: 1 } });
    applyResult(other, { x: 1 }, { into: '__proto__' });
    expect(Object.getPrototypeOf(other.payload)).toBe(Object.prototype);
    expect(Object.hasOwn(other.payload as object, '__proto__')).toBe(true);
  });
});
