import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../paths.js';
import { type Command, ExitCode } from './command.js';

export function agentVersion(): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export const versionCommand: Command = {
  name: 'version',
  options: [],
  async run(_args, io) {
    io.stdout.write(`vgpu-agent ${agentVersion()} (node ${process.version})\n`);
    return ExitCode.OK;
  },
};
