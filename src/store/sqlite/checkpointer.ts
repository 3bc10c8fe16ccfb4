import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Copies a WAL database's log into the database file from a worker thread, so the checkpoint's
 * writes and fsyncs never block the event loop that commits. The writing connection turns its
 * own automatic checkpoints off while this runs (and back on if the worker dies).
 * A PASSIVE checkpoint never blocks the writer; the writer restarts the log once it was copied.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { statSync } = require('node:fs');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
db.pragma('wal_autocheckpoint = 0');
let last = -1;
const tick = () => {
  try {
    const st = statSync(workerData.path + '-wal', { throwIfNoEntry: false });
    if (!st || st.size === 0) return;
    const key = st.size + ':' + st.mtimeMs;
    if (key === last) return;
    db.pragma('wal_checkpoint(PASSIVE)');
    last = key;
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
};
const timer = setInterval(tick, workerData.everyMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export class WalCheckpointer {
  private readonly worker: Worker;
  private stopped = false;

  /** @param onFail called once if the worker fails or exits on its own (turn autocheckpoint back on). */
  constructor(path: string, onFail: (reason: string) => void, everyMs = 200) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver, everyMs } });
    this.worker.unref();
    let failed = false;
    const fail = (reason: string): void => {
      if (failed || this.stopped) return;
      failed = true;
      onFail(reason);
    };
    this.worker.on('error', (err) => fail(err.message));
    this.worker.on('exit', (code) => fail(`checkpointer exited with code ${code}`));
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error !== undefined) fail(m.error);
    });
  }

  /** Stops the worker after its current checkpoint. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const done = new Promise<void>((resolve) => {
      this.worker.once('exit', () => resolve());
      this.worker.on('message', (m: { stopped?: boolean }) => {
        if (m.stopped) void this.worker.terminate();
      });
    });
    this.worker.postMessage('stop');
    await done;
  }
}
