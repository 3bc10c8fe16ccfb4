import { describe, expect, it } from 'vitest';
import { compileConflictExpression } from './sql-expression.js';

describe('conflict expressions (the transform expression language over { source, target })', () => {
  const t = { v: 5, name: 'Ada', at: '2026-01-01T00:00:00Z', n: null };
  it('compares source and target columns', () => {
    expect(compileConflictExpression('source.v > target.v')({ v: 6 }, t)).toBe(true);
    expect(compileConflictExpression('source.v > target.v')({ v: 5 }, t)).toBe(false);
    expect(compileConflictExpression("source.v >= target.v and target.name != 'Bob'")({ v: 5 }, t)).toBe(true);
    expect(compileConflictExpression("target.name != 'Ada' or source.v > target.v + 10")({ v: 16 }, t)).toBe(true);
    expect(compileConflictExpression("target.name != 'Ada' or source.v > target.v + 10")({ v: 15 }, t)).toBe(false);
  });
  it('has null, functions and dates', () => {
    expect(compileConflictExpression('target.n = null')({}, t)).toBe(true);
    expect(compileConflictExpression('coalesce(target.n, 3) * 2 = 6')({}, t)).toBe(true);
    expect(compileConflictExpression("lower(target.name) = 'ada' and length(target.name) = 3")({}, t)).toBe(true);
    expect(compileConflictExpression('toMillis(source.at) > toMillis(target.at)')({ at: '2026-02-01T00:00:00Z' }, t)).toBe(true);
    expect(compileConflictExpression('source.missing > target.v')({}, t)).toBe(false);
  });
  it('rejects bad input', () => {
    expect(() => compileConflictExpression('source.v >')).toThrow();
    expect(() => compileConflictExpression('nosuchfn(source.v)')).toThrow(/nosuchfn/);
  });
});
