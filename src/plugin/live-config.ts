/**
 * The plugin's config, live: a followed file or ConfigMap directory (or a fixed config), whose updates
 * reach the running plugin without a restart (NVIDIA and HAMi both need one). Only configs valid for
 * *this node* get through: a MIG strategy the node's layout contradicts or a device it names that is
 * not here is rejected like a schema error, and the last good config keeps being served.
 */
import type { Logger } from 'pino';
import type { EffectiveConfig } from '../config/schema.js';
import { ConfigSource, type ConfigSourceOptions } from '../config/source.js';
import type { PluginAgent } from './agent.js';

export type LiveConfigOptions =
  | { fixed: EffectiveConfig }
  | { follow: Omit<ConfigSourceOptions, 'validate'> };

export class LiveConfig {
  /** where updates go, once the plugin runs; the first config is checked by PluginAgent.start itself */
  private agent: PluginAgent | undefined;

  private constructor(
    readonly source: ConfigSource | undefined,
    private readonly fixed: EffectiveConfig | undefined,
  ) {}

  /** Reads the config; rejects with ConfigLoadError when a followed one cannot be read or is invalid. */
  static async open(options: LiveConfigOptions): Promise<LiveConfig> {
    if ('fixed' in options) return new LiveConfig(undefined, options.fixed);
    let live: LiveConfig | undefined;
    const source = await ConfigSource.open({
      ...options.follow,
      validate: (config) => live?.agent?.problemsWith(config) ?? [],
    });
    live = new LiveConfig(source, undefined);
    return live;
  }

  get current(): EffectiveConfig {
    return this.source?.current.config ?? this.fixed!;
  }

  /** The ConfigMap key in use; null for a fixed config. */
  get name(): string | null {
    return this.source?.current.name ?? null;
  }

  /** Applies every update that is valid for the agent's node to it, one at a time. */
  follow(agent: PluginAgent, logger: Logger): void {
    this.agent = agent;
    const { source } = this;
    if (!source) return;
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
          logger.error({ config: current.name, err }, 'applying the config update failed');
        }
      });
    });
    // The source logs every issue of a rejected update; count it here.
    source.on('invalid', () => metrics.configReloads.inc({ result: 'invalid' }));
  }

  async close(): Promise<void> {
    await this.source?.close();
  }
}
