export { PostgresStore, type PostgresStoreOptions } from './postgres-store.js';
export { migratePostgres, migrateSchema, schemaVersion, type MigrationReport } from './migrate.js';
export { isPostgresUrl, redactUrl, type PostgresConnectionOptions } from './connection.js';
export { postgresMigrations } from './migrations.js';
