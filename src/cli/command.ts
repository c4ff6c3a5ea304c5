import type { OptionSpec, ParsedCommandLine } from './options.js';

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  name: string;
  /** positional arguments, for --help */
  usage?: string;
  options: OptionSpec[];
  /** resolves to the process exit code */
  run(args: ParsedCommandLine, io: CommandIo): Promise<number>;
}

export const ExitCode = { OK: 0, FAILURE: 1, USAGE: 2 } as const;

/** A command as the dispatcher lists it; its modules are loaded only when it runs (memory). */
export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}
