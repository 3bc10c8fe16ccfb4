/**
 * A signal that aborts when `parent` aborts or `ms` pass (real time: the deadline is enforced
 * on the socket by undici, not on the injected clock). `clear()` releases the timer.
 */
export function deadlineSignal(ms: number, parent?: AbortSignal): { signal: AbortSignal; clear: () => void; timedOut: () => boolean } {
  const controller = new AbortController();
  let fired = false;
  const timer = setTimeout(() => {
    fired = true;
    controller.abort(new DOMException(`timed out after ${ms}ms`, 'TimeoutError'));
  }, ms);
  const onAbort = (): void => controller.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
    timedOut: () => fired,
  };
}
