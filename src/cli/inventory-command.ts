import { formatInventory } from '../devices/format-inventory.js';
import { buildInventory } from '../devices/inventory.js';
import { Nvml } from '../nvml/nvml.js';
import { type Command, ExitCode } from './command.js';
import { hostPathsFrom, nvmlOptions } from './common-options.js';
import { outputOption } from './options.js';

export const inventoryCommand: Command = {
  name: 'inventory',
  options: [...nvmlOptions, outputOption('Output format')],
  async run(args, io) {
    const nvml = await Nvml.open({ libraryPath: args.values['nvml-library'] as string });
    try {
      const inventory = await buildInventory(nvml, hostPathsFrom(args.values));
      io.stdout.write(
        args.values.output === 'json'
          ? `${JSON.stringify(inventory, null, 2)}\n`
          : `${formatInventory(inventory)}\n`,
      );
      return ExitCode.OK;
    } finally {
      nvml.shutdown();
    }
  },
};
