/**
 * The one error catalog. Every error Interchange raises on purpose has a code here, a
 * message template a user can act on, whether retrying can help, and (where it answers a
 * request) an HTTP status. `docs/errors.md` is generated from this table.
 */
export interface ErrorDef {
  readonly message: string;
  readonly retryable: boolean;
  readonly status?: number;
}

export const errorCatalog = {
  IX_SPEC_YAML: { message: 'malformed YAML: {detail}', retryable: false },
  IX_SPEC_VERSION: { message: 'unsupported spec version {version}: this engine reads version 1', retryable: false },
  IX_SPEC_UNKNOWN_KEY: { message: 'unknown key "{key}"{hint}', retryable: false },
  IX_SPEC_UNKNOWN_COMPONENT: { message: 'unknown {slot} kind "{kind}"{hint}', retryable: false },
  IX_SPEC_INVALID: { message: '{path} {detail}', retryable: false },
  IX_SPEC_MISSING_SECRET: { message: 'secret "{name}" {detail}', retryable: false },
  IX_SPEC_UNKNOWN_REFERENCE: { message: 'unknown reference "{ref}"{hint}', retryable: false },
  IX_SPEC_FILE_NOT_FOUND: { message: 'file not found: {path}', retryable: false },
  IX_SPEC_REFERENCE: { message: '{detail}', retryable: false },
  IX_SPEC_LITERAL_SECRET: { message: '{path} is a credential written in the spec: use ${secrets.NAME}', retryable: false },
  IX_STORE_URL: { message: 'unsupported store "{url}": use sqlite:PATH or postgres://USER@HOST:PORT/DB', retryable: false },
  IX_STORE_TOO_NEW: {
    message: 'store schema version {found} is newer than this engine knows ({known}); upgrade Interchange',
    retryable: false,
  },
  IX_STORE_UNAVAILABLE: { message: 'store unavailable: {detail}', retryable: true },
  IX_STORE_POSTGRES_URL: { message: 'invalid PostgreSQL store URL {url}: {detail}', retryable: false },
  IX_STORE_NOT_MIGRATED: {
    message: 'store schema version {found} is older than this engine needs ({known}); run `ix migrate`',
    retryable: false,
  },
  IX_ENGINE_SHUTDOWN: { message: 'engine is shutting down; the message stays durable at its source', retryable: true, status: 503 },
  IX_ENGINE_SATURATED: { message: 'intake is saturated; retry later', retryable: true, status: 429 },
  IX_RECORD_INVALID_JSON: { message: 'invalid JSON at line {line}: {detail}', retryable: false },
  IX_RECORD_CSV_COLUMNS: { message: 'CSV row at line {line} has {found} columns, expected {expected}', retryable: false },
  IX_RECORD_CSV_SYNTAX: { message: 'malformed CSV at line {line}: {detail}', retryable: false },
  IX_STEP_FAILED: { message: 'step {step} failed: {detail}', retryable: true },
  IX_SINK_FAILED: { message: 'sink {sink} failed: {detail}', retryable: true },
  IX_PERMANENT: { message: '{detail}', retryable: false },
  IX_EXPR_SYNTAX: { message: 'expression "{expr}" at {pos}: {detail}', retryable: false },
  IX_EXPR_LIMIT: { message: 'expression too large: {detail}', retryable: false },
  IX_EXPR_FORBIDDEN: { message: 'expression "{expr}" at {pos}: access to "{name}" is not allowed', retryable: false },
  IX_EXPR_UNKNOWN_FUNCTION: { message: 'expression "{expr}" at {pos}: unknown function {name}()', retryable: false },
  IX_EXPR_ARGUMENTS: { message: 'expression "{expr}": {detail}', retryable: false },
  IX_EXPR_RUNTIME: { message: 'expression failed: {detail}', retryable: false },
  IX_MAPPING_INVALID: { message: 'mapping {mapping}: {detail}', retryable: false },
  IX_DLQ_NOT_FOUND: { message: 'no dead letter with id {id}', retryable: false },
  IX_DB_ROW_REJECTED: { message: 'row rejected by table {table}: {detail}', retryable: false },
  IX_DB_STATEMENT: { message: '{db}: {detail}', retryable: false },
  IX_DB_UNAVAILABLE: { message: '{db} unavailable: {detail}', retryable: true },
  IX_SYNC_UNKNOWN: { message: 'no sync named "{name}"{hint}', retryable: false },
  IX_SYNC_SCHEMA: { message: 'sync {stream}: target table {table} does not fit: {detail}; nothing was written', retryable: false },
  IX_SYNC_RECORD: { message: 'sync {stream}: {detail}', retryable: false },
  IX_SYNC_BUSY: { message: 'sync {job} is running elsewhere (an `ix run` worker or another `ix sync run` holds the lease sync:{job}); run it again once that run finished', retryable: true },
  IX_SYNC_LEASE_LOST: { message: 'sync {job}: this worker no longer holds the lease sync:{job} (another worker took it, or it could not be renewed); the run stopped, the next one resumes from the checkpoint', retryable: true },
  IX_DB_CDC_UNAVAILABLE: { message: 'PostgreSQL change data capture unavailable: {detail}', retryable: false },
  IX_HTTP_BAD_REQUEST: { message: '{detail}', retryable: false, status: 400 },
  IX_HTTP_TOO_LARGE: { message: 'request body exceeds {limit} bytes', retryable: false, status: 413 },
  IX_SERVICE_HTTP: { message: '{call}: HTTP {status}{detail}', retryable: true },
  IX_SERVICE_NETWORK: { message: '{call}: {detail}', retryable: true },
  IX_SERVICE_TIMEOUT: { message: '{call}: no answer within {timeout}ms', retryable: true },
  IX_SERVICE_CIRCUIT_OPEN: { message: '{call}: circuit breaker is open after repeated failures; calls resume after a probe succeeds', retryable: true },
  IX_SERVICE_DISABLED: { message: '{call} is disabled: {detail}', retryable: false },
  IX_SERVICE_BAD_RESPONSE: { message: '{call}: malformed response: {detail}', retryable: false },
  IX_SERVICE_AUTH: { message: 'authentication for service "{service}" failed: {detail}', retryable: true },
  IX_SERVICE_CONFIG: { message: 'service "{service}": {detail}', retryable: false },
  IX_SERVICE_UNKNOWN_ENDPOINT: { message: 'service "{service}" has no endpoint "{endpoint}"{hint}', retryable: false },
  IX_GRAPHQL_ERRORS: { message: '{call}: GraphQL errors: {detail}', retryable: false },
  IX_OPENAPI_INVALID: { message: 'not an OpenAPI 3 document: {detail}', retryable: false },
  IX_HTTP_UNSUPPORTED_MEDIA: { message: 'unsupported content type {type}: send application/json', retryable: false, status: 415 },
  IX_WEBHOOK_UNAUTHORIZED: { message: 'webhook signature refused: {reason}', retryable: false, status: 401 },
  IX_WEBHOOK_FORBIDDEN: { message: 'address {address} is not allowed to call this webhook', retryable: false, status: 403 },
  IX_WEBHOOK_SSRF: { message: 'refused to deliver to {url}: {detail}; allow it with allowPrivateNetworks or allowNetworks', retryable: false },
  IX_WEBHOOK_DELIVERY: { message: 'delivery to {url} failed: {detail}', retryable: true },
  IX_WEBHOOK_DISABLED: { message: 'endpoint {url} is disabled: it answered 410 Gone at {at}', retryable: false },
  IX_WEBHOOK_NO_STORE: { message: 'the webhook {slot} needs the engine store (durable inbox/outbox)', retryable: false },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof errorCatalog;

export interface IxErrorOptions {
  cause?: unknown;
  /** Overrides the catalog's retryable flag for this instance. */
  retryable?: boolean;
}

export class IxError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly params: Readonly<Record<string, string | number>>;

  constructor(code: ErrorCode, params: Record<string, string | number> = {}, options: IxErrorOptions = {}) {
    const def: ErrorDef = errorCatalog[code];
    super(formatTemplate(def.message, params), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IxError';
    this.code = code;
    this.params = params;
    this.retryable = options.retryable ?? def.retryable;
    this.status = def.status;
  }
}

export function formatTemplate(template: string, params: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    const v = params[name];
    return v === undefined ? '' : String(v);
  });
}

/** A non-retryable failure: the engine dead-letters the message at once. */
export function permanent(detail: string, cause?: unknown): IxError {
  return new IxError('IX_PERMANENT', { detail }, { cause });
}

export function isRetryable(err: unknown): boolean {
  if (err instanceof IxError) return err.retryable;
  if (err && typeof err === 'object' && 'retryable' in err) return Boolean((err as { retryable: unknown }).retryable);
  return true;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
