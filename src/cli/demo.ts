/** `vgpu-agent demo`: the plugin on a simulated GPU node (mock NVML through koffi), no GPU needed. */
import { createLogger, type LogLevel } from '../log.js';
import { runDemo } from '../sim/demo.js';
import { type Command, ExitCode } from './command.js';
import { agentVersion } from './version.js';

export const demoCommand: Command = {
  name: 'demo',
  options: [
    {
      flag: 'node',
      env: 'DEMO_NODE',
      type: 'string',
      default: 'dgx-a100',
      choices: ['dgx-a100', 'mixed-mig', 'single-t4'],
      description: 'Which simulated node to run on',
    },
    {
      flag: 'duration',
      env: 'DEMO_DURATION',
      type: 'string',
      default: '0',
      integer: true,
      description: 'Seconds to keep running after the transcript; 0 = until Ctrl+C',
    },
    {
      flag: 'log-level',
      env: 'LOG_LEVEL',
      type: 'string',
      default: 'silent',
      description:
        "The agent's own log lines (pretty, on stderr): info shows every registration and Allocate",
    },
  ],
  async run(args, io) {
    const logger = createLogger({
      level: args.values['log-level'] as LogLevel,
      format: 'pretty',
      destination: io.stderr,
    });
    await runDemo({
      node: args.values.node as string,
      durationSeconds: Number(args.values.duration),
      out: io.stdout,
      logger,
      agentVersion: agentVersion(),
    });
    return ExitCode.OK;
  },
};
