/** Parses the command line, dispatches to a sub-command and turns failures into exit codes. */
import { NvmlLibraryError } from '../nvml/errors.js';
import { type Command, type CommandEntry, type CommandIo, ExitCode } from './command.js';
import { parseCommandLine, renderOptionsHelp, UsageError } from './options.js';
import { agentVersion, versionCommand } from './version.js';

// Each agent process runs one command: loading only its modules keeps the plugin's memory down.
const commands: CommandEntry[] = [
  {
    name: 'plugin',
    summary: 'Run the kubelet device plugin',
    load: async () => (await import('./plugin-command.js')).pluginCommand,
  },
  {
    name: 'monitor',
    summary: 'Run the Prometheus exporter of per-GPU and per-container GPU usage',
    load: async () => (await import('./monitor-command.js')).monitorCommand,
  },
  {
    name: 'demo',
    summary:
      'Run the device plugin and the monitor on a simulated GPU node (mock NVML, kubelet simulator; no GPU needed)',
    load: async () => (await import('./demo.js')).demoCommand,
  },
  {
    name: 'inventory',
    summary: 'Show the GPUs and MIG devices NVML reports on this node',
    load: async () => (await import('./inventory-command.js')).inventoryCommand,
  },
  {
    name: 'config check',
    summary: 'Validate a config file or ConfigMap directory and show what a node would advertise',
    load: async () => (await import('./config-check.js')).configCheckCommand,
  },
  { name: 'version', summary: 'Print the agent version', load: async () => versionCommand },
];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    `vgpu-agent ${agentVersion()}: share NVIDIA GPUs on Kubernetes nodes`,
    '',
    'Usage: vgpu-agent <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `vgpu-agent <command> --help` for the options of a command. Every option can also be set',
    'through the environment variable shown in its help; the flag wins.',
  ].join('\n');
}

function commandHelp(entry: CommandEntry, command: Command): string {
  return [
    `Usage: vgpu-agent ${command.name}${command.usage ? ` ${command.usage}` : ''} [options]`,
    '',
    entry.summary,
    '',
    'Options:',
    renderOptionsHelp(command.options),
  ].join('\n');
}

/** Finds the command named by the leading words of argv (`config check` is two words). */
function findCommand(argv: readonly string[]): { command: CommandEntry; rest: string[] } | undefined {
  const byLength = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const command of byLength) {
    const words = command.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { command, rest: argv.slice(words.length) };
  }
  return undefined;
}

export async function runCli(argv: readonly string[], io: CommandIo): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.stdout.write(`${usage()}\n`);
    return argv.length === 0 ? ExitCode.USAGE : ExitCode.OK;
  }
  if (argv[0] === '--version')
    return versionCommand.run({ values: {}, positionals: [], explicit: new Set() }, io);
  const found = findCommand(argv);
  if (!found) {
    io.stderr.write(`vgpu-agent: unknown command "${argv[0]}"\n\n${usage()}\n`);
    return ExitCode.USAGE;
  }
  const { rest } = found;
  const command = await found.command.load();
  try {
    const args = parseCommandLine(rest, io.env, command.options);
    if (args.values.help) {
      io.stdout.write(`${commandHelp(found.command, command)}\n`);
      return ExitCode.OK;
    }
    return await command.run(args, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(
        `vgpu-agent ${command.name}: ${err.message}\nRun \`vgpu-agent ${command.name} --help\`.\n`,
      );
      return ExitCode.USAGE;
    }
    if (err instanceof NvmlLibraryError) {
      io.stderr.write(`vgpu-agent ${command.name}: ${err.message}\n`);
      return ExitCode.FAILURE;
    }
    io.stderr.write(
      `vgpu-agent ${command.name}: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`,
    );
    return ExitCode.FAILURE;
  }
}
