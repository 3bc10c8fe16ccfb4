import { describe, expect, it } from 'vitest';
import { compilePath, compileTemplate, readPath } from './template.js';

const scope = { payload: { id: 7, tags: ['a', 'b'], nested: { name: 'x y' } }, meta: { tenant: 't/1' } };

describe('templates', () => {
  it('reads paths with $, $. and [n] forms, undefined past a missing step', () => {
    expect(readPath(scope, '$')).toBe(scope);
    expect(readPath(scope, ' payload.id ')).toBe(7);
    expect(readPath(scope, '$.payload.tags[1]')).toBe('b');
    expect(readPath(scope.payload.tags, '$[0]')).toBe('a');
    expect(readPath(scope, 'payload.missing.deeper')).toBeUndefined();
  });

  it('yields the raw value of a whole template and interpolates text otherwise, each message on its own', () => {
    const whole = compileTemplate('${payload.nested}');
    const text = compileTemplate({ q: 'id=${payload.id}&t=${payload.tags}&none=${payload.nope}', n: ['${payload.id}'] });
    expect(whole(scope)).toEqual({ name: 'x y' });
    expect(text(scope)).toEqual({ q: 'id=7&t=["a","b"]&none=', n: [7] });
    expect(text({ payload: { id: 8, tags: [] } })).toEqual({ q: 'id=8&t=[]&none=', n: [8] });
  });

  it('fills {name} parameters and ${…} expressions in a path, URL-encoded, and refuses an empty one', () => {
    const path = compilePath('/tenants/${meta.tenant}/items/{id}/names/${payload.nested.name}');
    expect(path({ id: 'a b' }, scope)).toBe('/tenants/t%2F1/items/a%20b/names/x%20y');
    expect(path({ id: 2 }, { ...scope, meta: { tenant: 'u' } })).toBe('/tenants/u/items/2/names/x%20y');
    expect(() => path({}, scope)).toThrow('path parameter "id" has no value');
    expect(() => path({ id: 1 }, { payload: scope.payload, meta: {} })).toThrow('path parameter "meta.tenant" has no value');
    expect(compilePath('/static')({}, scope)).toBe('/static');
  });
});
