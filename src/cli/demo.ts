/**
 * `vgpu-agent demo`: the agent on a simulated GPU node (mock NVML through the real koffi binding),
 * no GPU needed.
 */
import { buildInventory } from '../devices/inventory.js';
import { Nvml } from '../nvml/nvml.js';
import { MockNode } from '../sim/mock-node.js';
import { type Command, ExitCode } from './command.js';
import { formatInventory } from './format-inventory.js';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run the agent on a simulated GPU node (mock NVML, no GPU needed)',
  options: [
    {
      flag: 'node',
      env: 'DEMO_NODE',
      type: 'string',
      default: 'dgx-a100',
      choices: ['dgx-a100', 'mixed-mig', 'single-t4'],
      description: 'Which simulated node to run on',
    },
  ],
  async run(args, io) {
    const node = await MockNode.create(args.values.node as string);
    try {
      node.exportEnv();
      io.stdout.write(`Simulated node "${args.values.node}" (mock NVML state: ${node.statePath})\n\n`);
      const nvml = await Nvml.open({ libraryPath: node.libraryPath });
      try {
        const inventory = await buildInventory(nvml, node.hostPaths);
        io.stdout.write(`What NVML reports through koffi:\n${formatInventory(inventory)}\n`);
      } finally {
        nvml.shutdown();
      }
      return ExitCode.OK;
    } finally {
      await node.remove();
    }
  },
};
