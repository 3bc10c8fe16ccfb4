import { createRequire } from 'node:module';
import { parse } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { createRegistry } from '../../app/registry.js';
import { systemClock } from '../../core/clock.js';
import { IxError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { loadSpecText } from '../../spec/load.js';
import { RestService } from './client.js';
import type { ServiceConfig } from './config.js';
import { importOpenApi } from './openapi-import.js';
import { json, TestServer } from './test-server.js';

// Real public OpenAPI documents shipped by the @readme/oas-examples npm package.
const require = createRequire(import.meta.url);
const example = (name: string): unknown => require(`@readme/oas-examples/3.0/json/${name}.json`) as unknown;

const FLOW = `flows:
  pets:
    source: { generate: { count: 1, payload: { id: 7 } } }
    steps: [ { http: { service: petstore, endpoint: getPetById, params: { petId: "\${payload.id}" } } } ]
    sink: { stdout: {} }
`;

let server: TestServer | undefined;
let svc: RestService | undefined;
afterEach(async () => {
  await svc?.close();
  await server?.stop();
  svc = undefined;
  server = undefined;
});

describe('ix import openapi', () => {
  it('imports the Swagger Petstore (OpenAPI 3.0): endpoints, parameters, auth, response schemas', () => {
    const text = importOpenApi(example('petstore'), { service: 'petstore' });
    const out = parse(text) as { secrets: Record<string, string>; services: Record<string, ServiceConfig & { endpoints: Record<string, Record<string, unknown>> }> };
    const s = out.services['petstore'];
    expect(s?.baseUrl).toBe('http://petstore.swagger.io/v2');
    expect(s?.auth).toEqual({ type: 'api-key', in: 'header', name: 'api_key', key: '${secrets.PETSTORE_API_KEY_KEY}' });
    expect(out.secrets).toEqual({ PETSTORE_API_KEY_KEY: 'env:PETSTORE_API_KEY_KEY' });
    expect(text).toContain('# NOTE: security scheme "petstore_auth" (oauth2: implicit) has no automatic equivalent');
    const eps = s?.endpoints ?? {};
    expect(Object.keys(eps)).toHaveLength(20);
    expect(eps['getPetById']).toMatchObject({
      method: 'GET',
      path: '/pet/{petId}',
      description: 'Find pet by ID',
      params: { petId: { in: 'path', required: true, type: 'integer' } },
    });
    const pet = (eps['getPetById']?.['response'] as { schema: { properties: Record<string, unknown>; required: string[] } }).schema;
    expect(pet.required).toEqual(['name', 'photoUrls']);
    expect(pet.properties['category']).toMatchObject({ type: 'object', properties: { id: { type: 'integer' } } });
    expect(eps['findPetsByStatus']).toMatchObject({ params: { status: { in: 'query', required: true, type: 'array' } } });
    expect(eps['addPet']).toMatchObject({ method: 'POST', path: '/pet', request: { schema: { type: 'object' } } });
  });

  it('writes a block that the spec loader accepts and that calls the API', async () => {
    server = await new TestServer((r, res) => json(res, 200, { id: Number(r.url.split('/').pop()), name: 'rex', seenKey: r.headers['api_key'] })).start();
    const text = importOpenApi(example('petstore'), { service: 'petstore' }).replace('http://petstore.swagger.io/v2', `${server.url}/v2`);
    const registry = createRegistry();
    const loaded = loadSpecText(`version: 1\n${text}${FLOW}`, '/tmp/spec.yaml', registry, { env: { PETSTORE_API_KEY_KEY: 'k-123' } });
    const cfg = loaded.spec.sections['services']?.['petstore'] as ServiceConfig;
    svc = new RestService('petstore', cfg, { clock: systemClock, logger: silentLogger, baseDir: '.' });
    const res = await svc.call('getPetById', { params: { petId: 7 } });
    expect(res.body).toEqual({ id: 7, name: 'rex', seenKey: 'k-123' });
    expect(server.requests[0]?.url).toBe('/v2/pet/7');
  });

  it('cuts circular schemas and keeps every operation of a larger document', () => {
    const text = importOpenApi(example('schema-circular'), { service: 'circ' });
    expect(text).toContain('recursive: see');
    const uspto = parse(importOpenApi(example('uspto'), { service: 'uspto' })) as { services: { uspto: { baseUrl: string; endpoints: Record<string, unknown> } } };
    expect(uspto.services.uspto.baseUrl).toBe('https://developer.uspto.gov/ds-api');
    expect(Object.keys(uspto.services.uspto.endpoints)).toEqual(['list-data-sets', 'list-searchable-fields', 'perform-search']);
  });

  it('maps security schemes: basic, bearer, OAuth2 client credentials', () => {
    const text = importOpenApi(
      {
        openapi: '3.0.3',
        info: { title: 'T', version: '1' },
        servers: [{ url: 'https://{host}/api', variables: { host: { default: 'api.example.com' } } }],
        security: [{ cc: [] }],
        components: {
          securitySchemes: {
            cc: { type: 'oauth2', flows: { clientCredentials: { tokenUrl: 'https://auth.example.com/token', scopes: { read: '', write: '' } } } },
            b: { type: 'http', scheme: 'bearer' },
          },
        },
        paths: { '/x': { get: { responses: { '204': { description: 'ok' } } } } },
      },
      { service: 'ex' },
    );
    const out = parse(text) as { services: { ex: { baseUrl: string; auth: Record<string, unknown>; endpoints: Record<string, unknown> } } };
    expect(out.services.ex.baseUrl).toBe('https://api.example.com/api');
    expect(out.services.ex.auth).toMatchObject({ type: 'oauth2', grant: 'client-credentials', tokenUrl: 'https://auth.example.com/token', scope: 'read write' });
    expect(Object.keys(out.services.ex.endpoints)).toEqual(['get_x']);
    expect(text).toContain('security scheme "b" also exists');
  });

  it('refuses what is not OpenAPI 3', () => {
    expect(() => importOpenApi({ swagger: '2.0', paths: {} }, { service: 's' })).toThrow(IxError);
    expect(() => importOpenApi({ swagger: '2.0', paths: {} }, { service: 's' })).toThrow(/Swagger 2.0/);
    expect(() => importOpenApi('x', { service: 's' })).toThrow(/not an object/);
  });
});
