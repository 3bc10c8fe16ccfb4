import { connect } from 'node:net';
import type { TestProject } from 'vitest/node';

export const SERVICES: Record<string, { host: string; port: number; start: string }> = {
  postgres: { host: '127.0.0.1', port: 5432, start: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' },
  mariadb: { host: '127.0.0.1', port: 3306, start: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' },
  redis: { host: '127.0.0.1', port: 6379, start: 'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no' },
  rabbitmq: { host: '127.0.0.1', port: 5672, start: 'rabbitmq-server -detached' },
  mqtt: { host: '127.0.0.1', port: 1883, start: 'mosquitto -d -c /etc/mosquitto/mosquitto.conf' },
  nats: { host: '127.0.0.1', port: 4222, start: 'nats-server -js' },
};

function probe(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export default async function setup(project: TestProject): Promise<void> {
  const results: Record<string, boolean> = {};
  await Promise.all(
    Object.entries(SERVICES).map(async ([name, s]) => {
      results[name] = await probe(s.host, s.port);
    }),
  );
  const missing = Object.keys(results).filter((k) => !results[k]);
  if (missing.length > 0) {
    const lines = missing.map((m) => `  - ${m} (${SERVICES[m]?.host}:${SERVICES[m]?.port}); start it with: ${SERVICES[m]?.start}`);
    const banner = `\n*** SERVICE SUITES SKIPPED: these services are not reachable:\n${lines.join('\n')}\n`;
    if (process.env['CI'] === 'true') {
      throw new Error(`CI=true requires every local service.${banner}`);
    }
    process.stderr.write(`${banner}*** their integration suites are skipped; the embedded suites still run.\n\n`);
  }
  project.provide('services', results);
}
