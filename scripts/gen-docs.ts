/** Writes docs/reference.md and docs/errors.md, and the generated sections of docs/expressions.md. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRegistry } from '../src/app/registry.js';
import { renderErrors, renderReference } from '../src/registry/reference.js';
import { renderExpressionsPage } from '../src/transform/expression/docs.js';

const docs = join(import.meta.dirname, '../docs');
mkdirSync(docs, { recursive: true });
writeFileSync(join(docs, 'reference.md'), renderReference(createRegistry()));
writeFileSync(join(docs, 'errors.md'), renderErrors());
const expressions = join(docs, 'expressions.md');
writeFileSync(expressions, renderExpressionsPage(readFileSync(expressions, 'utf8')));
console.log('wrote docs/reference.md, docs/errors.md and the generated sections of docs/expressions.md');
