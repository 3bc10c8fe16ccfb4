import { describe, expect, it } from 'vitest';
import { createRegistry } from '../app/registry.js';
import { loadSpecText } from './load.js';
import { SpecError } from './problem.js';

const registry = createRegistry();
const env = { IX_T_TOKEN: 'the-real-token-value', IX_T_PATH: '/tmp' };

function problems(body: string): string[] {
  const yaml = `version: 1\nsecrets: { TOKEN: env:IX_T_TOKEN }\n${body}flows:\n  f:\n    source: { generate: { count: 1 } }\n    sink: { stdout: {} }\n`;
  try {
    loadSpecText(yaml, 'spec.yaml', registry, { env });
    return [];
  } catch (err) {
    if (!(err instanceof SpecError)) throw err;
    return err.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
  }
}

const service = (auth: string, extra = '') => `services:\n  api:\n    baseUrl: http://127.0.0.1:1\n    auth: ${auth}\n${extra}`;
/** line:col of the first `needle` in `text`: where the loader must point. */
function where(text: string, needle: string): string {
  const before = text.slice(0, text.indexOf(needle)).split('\n');
  return `${before.length}:${(before.at(-1)?.length ?? 0) + 1}`;
}
const specOf = (body: string) => `version: 1\nsecrets: { TOKEN: env:IX_T_TOKEN }\n${body}flows:\n`;
const use = (path: string) => `${path} is a credential written in the spec: use \${secrets.NAME}`;

describe('credentials only through secret references', () => {
  it.each([
    ['api-key', '{ type: api-key, key: lit-k-123 }', 'key'],
    ['basic', '{ type: basic, username: u, password: lit-hunter2 }', 'password'],
    ['bearer', '{ type: bearer, token: lit-abc }', 'token'],
    ['oauth2 client secret', '{ type: oauth2, tokenUrl: "http://t/", clientId: c, clientSecret: lit-s3cret }', 'clientSecret'],
    ['oauth2 refresh token', '{ type: oauth2, grant: refresh-token, tokenUrl: "http://t/", clientId: c, refreshToken: lit-r0 }', 'refreshToken'],
    ['jwt key', '{ type: jwt, algorithm: HS256, key: lit-hs-key }', 'key'],
    ['hmac secret', '{ type: hmac, secret: lit-hk }', 'secret'],
  ])('refuses a literal %s at file:line:col, and only that', (_name, auth, field) => {
    const body = service(auth);
    expect(problems(body)).toEqual([`spec.yaml:${where(specOf(body), 'lit-')}: ${use(`services.api.auth.${field}`)}`]);
  });

  it('accepts the same credentials as ${secrets.NAME}, also through a YAML alias', () => {
    expect(problems(service('{ type: bearer, token: "${secrets.TOKEN}" }'))).toEqual([]);
    expect(problems(service('{ type: basic, username: u, password: " ${secrets.TOKEN} " }'))).toEqual([]);
    expect(problems(service('{ type: hmac, secret: &s "${secrets.TOKEN}" }', '  other:\n    baseUrl: http://127.0.0.1:2\n    auth: { type: bearer, token: *s }\n'))).toEqual([]);
  });

  it('refuses a reference mixed with text, an environment reference and a number', () => {
    for (const token of ['"pre-${secrets.TOKEN}"', '"${env.IX_T_TOKEN}"', '12345']) {
      const body = service(`{ type: bearer, token: ${token} }`);
      expect(problems(body)).toEqual([`spec.yaml:${where(specOf(body), token)}: ${use('services.api.auth.token')}`]);
    }
  });

  it('refuses a literal mTLS key and passphrase; certificates and CAs may be paths', () => {
    const tls = '    tls: { cert: ./client.pem, ca: ./ca.pem, key: ./client.key, passphrase: pw }\n';
    const body = service('{ type: none }', tls);
    expect(problems(body)).toEqual([
      `spec.yaml:${where(specOf(body), './client.key')}: ${use('services.api.tls.key')}`,
      `spec.yaml:${where(specOf(body), 'pw }')}: ${use('services.api.tls.passphrase')}`,
    ]);
  });

  it('refuses literal webhook verification and signing secrets, one of several rotated secrets included', () => {
    const yaml = (verify: string, sign: string) =>
      `version: 1\nsecrets: { TOKEN: env:IX_T_TOKEN }\nflows:\n  f:\n    source: { webhook: { path: /a, verify: ${verify} } }\n    sink: { webhook: { url: "https://x.example/", sign: ${sign} } }\n`;
    const check = (text: string): string[] => {
      try {
        loadSpecText(text, 'hooks.yaml', registry, { env });
        return [];
      } catch (err) {
        return (err as SpecError).problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
      }
    };
    expect(check(yaml('{ scheme: github, secret: "${secrets.TOKEN}" }', '{ scheme: github, secret: "${secrets.TOKEN}" }'))).toEqual([]);
    const text = yaml('{ scheme: github, secret: ["${secrets.TOKEN}", old-one] }', '{ scheme: github, secret: plain }');
    expect(check(text)).toEqual([
      `${where(text, 'old-one')}: ${use('flows.f.source.webhook.verify.secret[1]')}`,
      `${where(text, 'plain')}: ${use('flows.f.sink.webhook.sign.secret')}`,
    ]);
  });

  it('refuses a literal credential header on a service, an endpoint and a webhook sink; takes a reference within text or a message template', () => {
    const body =
      'services:\n  api:\n    baseUrl: http://127.0.0.1:1\n    headers: { Authorization: "Bearer lit-1", Accept: application/json, X-Trace: "t-1" }\n' +
      '    endpoints:\n      get: { method: GET, path: /x, headers: { x-api-key: lit-2, X-Tenant-Token: "${tenantToken}" } }\n' +
      '  ok:\n    baseUrl: http://127.0.0.1:2\n    headers: { authorization: "Bearer ${secrets.TOKEN}", COOKIE: "s=${secrets.TOKEN}" }\n';
    expect(problems(body)).toEqual([
      `spec.yaml:${where(specOf(body), '"Bearer lit-1"')}: ${use('services.api.headers.Authorization')}`,
      `spec.yaml:${where(specOf(body), 'lit-2')}: ${use('services.api.endpoints.get.headers.x-api-key')}`,
    ]);
    const hook = (headers: string) =>
      `version: 1\nsecrets: { TOKEN: env:IX_T_TOKEN }\nflows:\n  f:\n    source: { generate: { count: 1 } }\n    sink: { webhook: { url: "https://x.example/", sign: { secret: "\${secrets.TOKEN}" }, headers: ${headers} } }\n`;
    expect(() => loadSpecText(hook('{ X-Auth-Token: "${secrets.TOKEN}" }'), 'hooks.yaml', registry, { env })).not.toThrow();
    const bad = hook('{ X-Auth-Token: "${env.IX_T_TOKEN}" }');
    expect(() => loadSpecText(bad, 'hooks.yaml', registry, { env })).toThrow(use('flows.f.sink.webhook.headers.X-Auth-Token'));
  });

  it('refuses literal broker passwords and tokens (MQTT, NATS, Kafka)', () => {
    const flow = (sink: string) =>
      `version: 1\nsecrets: { TOKEN: env:IX_T_TOKEN }\nflows:\n  f:\n    source: { generate: { count: 1 } }\n    sink: ${sink}\n`;
    const messages = (text: string): string[] => {
      try {
        loadSpecText(text, 'b.yaml', registry, { env });
        return [];
      } catch (err) {
        return (err as SpecError).problems.map((p) => p.message);
      }
    };
    expect(messages(flow('{ mqtt: { topic: t, username: u, password: lit-p } }'))).toEqual([use('flows.f.sink.mqtt.password')]);
    expect(messages(flow('{ nats: { subject: s, user: u, pass: lit-p } }'))).toEqual([use('flows.f.sink.nats.pass')]);
    expect(messages(flow('{ nats: { subject: s, token: lit-t } }'))).toEqual([use('flows.f.sink.nats.token')]);
    expect(messages(flow('{ kafka: { brokers: ["k:9092"], topic: t, sasl: { mechanism: plain, username: u, password: lit-p } } }'))).toEqual([
      use('flows.f.sink.kafka.sasl.password'),
    ]);
    expect(messages(flow('{ mqtt: { topic: t, username: u, password: "${secrets.TOKEN}" } }'))).toEqual([]);
  });

  it('never quotes the literal or the resolved value', () => {
    const got = problems(service('{ type: bearer, token: do-not-echo-me }')).join('\n');
    expect(got).not.toContain('do-not-echo-me');
    expect(got).not.toContain(env.IX_T_TOKEN);
  });
});
