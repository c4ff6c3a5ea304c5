/**
 * Applies config updates to a running plugin without a restart (NVIDIA and HAMi both need one).
 * The ConfigSource only lets through configs that are valid for *this node* too (see
 * `nodeValidator`): a MIG strategy the node's layout contradicts or a device it names that is not
 * here is rejected like a schema error, and the last good config keeps being served.
 */
import type { Logger } from 'pino';
import type { EffectiveConfig } from '../config/schema.js';
import type { ConfigSource } from '../config/source.js';
import type { PluginAgent } from './agent.js';

/**
 * A `validate` for ConfigSource.open, bound to the agent once it exists: the first config is checked
 * by PluginAgent.start itself (it throws), later ones here.
 */
export function nodeValidator(): {
  validate: (config: EffectiveConfig) => string[];
  bind: (agent: PluginAgent) => void;
} {
  let agent: PluginAgent | undefined;
  return {
    validate: (config) => (agent ? agent.problemsWith(config) : []),
    bind: (bound) => {
      agent = bound;
    },
  };
}

export function followConfigUpdates(source: ConfigSource, agent: PluginAgent, logger: Logger): void {
  const { metrics } = agent;
  metrics.setConfigInfo(source.current.name, source.current.hash);
  let applying: Promise<void> = Promise.resolve();

  source.on('change', ({ previous, current }) => {
    applying = applying.then(async () => {
      try {
        await agent.applyConfig(current.config);
        metrics.configReloads.inc({ result: 'applied' });
        metrics.setConfigInfo(current.name, current.hash);
        logger.info(
          {
            config: current.name,
            previousConfig: previous.name,
            hash: current.hash,
            previousHash: previous.hash,
          },
          'config reloaded and applied',
        );
      } catch (err) {
        metrics.configReloads.inc({ result: 'invalid' });
        logger.error(
          { config: current.name, err: (err as Error).message },
          'applying the config update failed',
        );
      }
    });
  });
  // The source logs every issue of a rejected update; count it here.
  source.on('invalid', () => metrics.configReloads.inc({ result: 'invalid' }));
}
