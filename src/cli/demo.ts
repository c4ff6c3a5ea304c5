/** `vgpu-agent demo`: the plugin on a simulated GPU node (mock NVML through koffi), no GPU needed. */
import { errorMessage } from '../errors.js';
import { createLogger, type LogLevel } from '../log.js';
import { mockNodeNames } from '../paths.js';
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
      choices: mockNodeNames(),
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
    try {
      await runDemo({
        node: args.values.node as string,
        durationSeconds: Number(args.values.duration),
        out: io.stdout,
        logger,
        agentVersion: agentVersion(),
      });
    } catch (err) {
      // A newcomer gets one line; the stack goes to the log (--log-level error shows it).
      logger.error({ err }, 'demo failed');
      io.stderr.write(`vgpu-agent demo: ${errorMessage(err).replace(/\s*\n\s*/g, ' ')}\n`);
      return ExitCode.FAILURE;
    }
    return ExitCode.OK;
  },
};
