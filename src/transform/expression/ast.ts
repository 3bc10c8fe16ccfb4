/** The expression language's syntax tree. Every node carries its source offset. */
export type Node =
  | { readonly t: 'lit'; readonly v: string | number | boolean | null; readonly pos: number }
  | { readonly t: 'cur'; readonly pos: number }
  | { readonly t: 'var'; readonly name: VarName; readonly pos: number }
  | { readonly t: 'field'; readonly name: string; readonly pos: number }
  | { readonly t: 'local'; readonly slot: number; readonly name: string; readonly pos: number }
  | { readonly t: 'member'; readonly obj: Node; readonly key: string; readonly pos: number }
  | { readonly t: 'index'; readonly obj: Node; readonly index: Node; readonly pos: number }
  | { readonly t: 'unary'; readonly op: '!' | '-'; readonly arg: Node; readonly pos: number }
  | { readonly t: 'bin'; readonly op: BinOp; readonly left: Node; readonly right: Node; readonly pos: number }
  | { readonly t: 'and' | 'or' | 'coalesce'; readonly left: Node; readonly right: Node; readonly pos: number }
  | { readonly t: 'cond'; readonly test: Node; readonly then: Node; readonly else: Node; readonly pos: number }
  | { readonly t: 'call'; readonly fn: string; readonly args: readonly Node[]; readonly pos: number }
  | { readonly t: 'lambda'; readonly slots: readonly number[]; readonly body: Node; readonly pos: number }
  | { readonly t: 'array'; readonly items: readonly Node[]; readonly pos: number }
  | { readonly t: 'object'; readonly props: readonly (readonly [string, Node])[]; readonly pos: number };

export type BinOp = '+' | '-' | '*' | '/' | '%' | '&' | '==' | '!=' | '<' | '<=' | '>' | '>=' | 'in';

/** `$record` the whole payload, `$headers`, `$meta`, `$key`, `$id` of the message. */
export type VarName = 'record' | 'headers' | 'meta' | 'key' | 'id';
export const VAR_NAMES: readonly VarName[] = ['record', 'headers', 'meta', 'key', 'id'];

/** Property names no expression may read or write, at compile time and at run time. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
