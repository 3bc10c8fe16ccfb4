import { registerConnectors } from '../connectors/index.js';
import { Registry } from '../registry/registry.js';
import { registerTransforms } from '../transform/index.js';

/** A registry holding every built-in component; add your own with register*. */
export function createRegistry(): Registry {
  const registry = new Registry();
  registerConnectors(registry);
  registerTransforms(registry);
  return registry;
}
