/**
 * `vgpu-agent config check FILE|DIR`: selects the config the agent would use on a node, validates it,
 * and shows what that node would advertise and which GPU feature labels it would get (`--node-labels`).
 * Needs no GPU and no cluster: the node's GPUs come from a
 * mock NVML state file, so GitOps CI can check a ConfigMap before it reaches the nodes.
 * Exit 0 when valid, 2 with every problem on stderr when not (including a config that cannot apply to
 * this node's devices).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { configInFileForm } from '../config/file-form.js';
import { CONFIG_LABEL, type SelectionReason } from '../config/select.js';
import { type LoadedConfig, loadSelectedConfig } from '../config/source.js';
import { HealthState } from '../devices/health-state.js';
import type { Inventory } from '../devices/inventory-types.js';
import { MigStrategyError } from '../devices/mig-strategy.js';
import { nodeLabels } from '../devices/node-labels.js';
import type { ResourceSpec, SliceLimits } from '../devices/resource-types.js';
import { buildResources, ResourceConfigError, sharingConfigOf } from '../devices/resources.js';
import { errorMessage } from '../errors.js';
import {
  encodeRegisterAnnotation,
  encodeScoreAnnotation,
  REGISTER_ANNOTATION,
  SCORE_ANNOTATION,
} from '../hami/protocol.js';
import { registeredGpus } from '../hami/registrar.js';
import { topologyScoresFor } from '../hami/topology-score.js';
import { mockNodePath } from '../paths.js';
import { TopologyScores } from '../plugin/preferred-allocation.js';
import type { Result } from '../result.js';
import { inventoryFromMockState } from '../sim/state-inventory.js';
import { type Command, type CommandIo, ExitCode } from './command.js';
import { outputOption, UsageError } from './options.js';

const READY_NODES = ['dgx-a100', 'mixed-mig', 'single-t4'];
/** IDs shown per resource in the text report; the JSON report has them all. */
const SHOWN_IDS = 4;

export const configCheckCommand: Command = {
  name: 'config check',
  usage: 'FILE|DIR',
  options: [
    { flag: 'node', env: 'NODE_NAME', type: 'string', description: 'Node name shown in the report' },
    {
      flag: 'labels',
      env: 'NODE_LABELS',
      type: 'string',
      description: `The node's labels, k=v,k2=v2 (${CONFIG_LABEL} chooses the config)`,
    },
    {
      flag: 'config-name',
      env: 'CONFIG_NAME',
      type: 'string',
      description: 'ConfigMap key to use, as the agent is told with --config-name',
    },
    {
      flag: 'inventory',
      env: 'CHECK_INVENTORY',
      type: 'string',
      default: 'dgx-a100',
      description: `The node's GPUs: a mock NVML state file, or a ready node (${READY_NODES.join(', ')})`,
    },
    outputOption('Report format'),
  ],
  async run(args, io) {
    const configPath = configPathFrom(args.positionals, io.env);
    const labels = parseLabels(args.values.labels as string | undefined);
    const json = args.values.output === 'json';
    const fail = (errors: string[]): number => {
      for (const line of errors) io.stderr.write(`${line}\n`);
      if (json) io.stdout.write(`${JSON.stringify({ valid: false, errors }, null, 2)}\n`);
      return ExitCode.USAGE;
    };

    const loaded = await loadSelectedConfig({
      path: configPath,
      configName: args.values['config-name'] as string | undefined,
      nodeLabel: labels.get(CONFIG_LABEL),
    });
    const node = await loadInventory(args.values.inventory as string);
    const errors = [...(loaded.ok ? [] : loaded.error.issues), ...(node.ok ? [] : node.error)];
    if (!loaded.ok || !node.ok) return fail(errors);
    const { name: inventoryName, inventory } = node.value;

    const nodeName = (args.values.node as string | undefined) ?? inventoryName;
    const built = resourcesFor(loaded.value, inventory, nodeName);
    if (!built.ok) return fail(built.error);

    // The machine type and PCI classes are the node's sysfs, which a state file does not describe.
    const labelSet = nodeLabels({
      inventory,
      config: loaded.value.config,
      lostGpus: new Set(),
      host: { machineType: null, pciClasses: new Map() },
    });
    const report: CheckReport = {
      nodeName,
      inventoryName,
      inventory,
      config: loaded.value,
      labelValue: labels.get(CONFIG_LABEL),
      warnings: [
        ...loaded.value.warnings,
        ...built.value.warnings,
        ...inventory.problems.map((p) => `inventory ${inventoryName}: ${p.where}: ${p.message}`),
        ...labelSet.warnings.map((w) => `GPU feature labels: ${w}`),
      ],
      resources: built.value.resources,
      labels: labelSet.labels,
      configPath,
    };
    writeReport(io, report, json);
    return ExitCode.OK;
  },
};

function configPathFrom(positionals: readonly string[], env: NodeJS.ProcessEnv): string {
  if (positionals.length > 1) throw new UsageError(`expected one FILE or DIR, got ${positionals.length}`);
  // Inside the agent's pod, CONFIG_FILE already names the mounted config.
  const chosen = positionals[0] ?? (env.CONFIG_FILE?.trim() || undefined);
  if (chosen === undefined) throw new UsageError('expected the config FILE or ConfigMap DIR to check');
  return chosen;
}

/** `k=v,k2=v2` → map. A value may be empty (`k=`), a key may not. */
function parseLabels(text: string | undefined): Map<string, string> {
  const labels = new Map<string, string>();
  for (const item of (text ?? '').split(',')) {
    const entry = item.trim();
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels: "${entry}" is not key=value`);
    labels.set(entry.slice(0, eq).trim(), entry.slice(eq + 1).trim());
  }
  return labels;
}

type LoadedInventory = Result<{ name: string; inventory: Inventory }>;

/** A ready node's name, or a path to a mock NVML state file. */
async function loadInventory(spec: string): Promise<LoadedInventory> {
  const ready = READY_NODES.includes(spec) && !(await exists(spec));
  const file = ready ? mockNodePath(spec) : spec;
  const name = ready ? spec : path.basename(spec).replace(/\.json$/, '');
  const where = `--inventory ${spec}`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? `not found (expected a mock NVML state file, or one of ${READY_NODES.join(', ')})`
        : `cannot read: ${errorMessage(error)}`;
    return { ok: false, error: [`${where}: ${why}`] };
  }
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: [`${where}: not JSON: ${errorMessage(error)}`] };
  }
  const converted = inventoryFromMockState(state, file);
  return converted.ok ? { ok: true, value: { name, inventory: converted.value } } : converted;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

type BuiltForNode = Result<{ resources: ResourceSpec[]; warnings: string[] }>;

/** The config is valid on its own but may still not fit this node's devices; that is invalid too. */
function resourcesFor(loaded: LoadedConfig, inventory: Inventory, nodeName: string): BuiltForNode {
  const { config, file } = loaded;
  try {
    const built = buildResources(sharingConfigOf(config), inventory);
    const warnings = built.warnings.map((w) => `${file}: ${w}`);
    return { ok: true, value: { resources: built.resources, warnings } };
  } catch (error) {
    if (error instanceof MigStrategyError) {
      const strategy = config.flags.migStrategy;
      return {
        ok: false,
        error: [
          `${file}: flags.migStrategy: ${strategy} cannot be used on node ${nodeName}: ${error.message}`,
        ],
      };
    }
    if (error instanceof ResourceConfigError) {
      return { ok: false, error: [`${file}: ${error.message} (on node ${nodeName})`] };
    }
    throw error;
  }
}

interface CheckReport {
  configPath: string;
  config: LoadedConfig;
  labelValue: string | undefined;
  nodeName: string;
  inventoryName: string;
  inventory: Inventory;
  warnings: string[];
  resources: ResourceSpec[];
  /** GPU feature labels the node would get with `--node-labels nfd|api` */
  labels: Record<string, string>;
}

function reasonText(reason: SelectionReason, label: string | undefined): string {
  switch (reason) {
    case 'flag':
      return 'chosen by --config-name';
    case 'label':
      return `chosen by node label ${CONFIG_LABEL}=${label}`;
    case 'default':
      return 'the key named default (no --config-name, no node label)';
    case 'only':
      return 'the only key';
    case 'file':
      return 'a single file';
  }
}

/** Distinct slice sizes of a split resource, with how many slices have each. */
function sliceShapes(resource: ResourceSpec): (SliceLimits & { count: number })[] {
  const shapes = new Map<string, SliceLimits & { count: number }>();
  for (const device of resource.devices) {
    if (!device.slice) continue;
    const key = `${device.slice.memoryMiB}/${device.slice.corePercent}`;
    const shape = shapes.get(key);
    if (shape) shape.count++;
    else shapes.set(key, { ...device.slice, count: 1 });
  }
  return [...shapes.values()];
}

function targetsOf(resource: ResourceSpec): { gpus: number; migs: number } {
  const targets = new Map(resource.devices.map((d) => [d.target.uuid, d.target.kind]));
  const kinds = [...targets.values()];
  return { gpus: kinds.filter((k) => k === 'gpu').length, migs: kinds.filter((k) => k === 'mig').length };
}

function writeReport(io: CommandIo, report: CheckReport, json: boolean): void {
  const { config } = report;
  if (json) {
    const out = {
      valid: true,
      node: report.nodeName,
      inventory: report.inventoryName,
      config: {
        path: report.configPath,
        name: config.name,
        file: config.file,
        reason: config.reason,
        hash: config.hash,
      },
      warnings: report.warnings,
      effective: configInFileForm(config.config),
      resources: report.resources.map((r) => ({
        name: r.name,
        sharing: r.sharing,
        devices: r.devices.length,
        ...targetsOf(r),
        failRequestsGreaterThanOne: r.failRequestsGreaterThanOne,
        ...(r.sharing === 'split' ? { slices: sliceShapes(r) } : {}),
        ...(r.sharing === 'hami' ? hamiJson(report, r) : {}),
        ids: r.devices.map((d) => d.id),
      })),
      labels: report.labels,
    };
    io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const lines = [
    `Config:  ${config.reason === 'file' ? config.file : `${report.configPath}, key ${config.name}`} (${reasonText(config.reason, report.labelValue)})`,
    `Hash:    ${config.hash}`,
    `Node:    ${report.nodeName} (inventory ${report.inventoryName}: ${gpuSummary(report.inventory)})`,
    '',
    report.warnings.length === 0 ? 'Warnings: none' : 'Warnings:',
    ...report.warnings.map((w) => `  ${w}`),
    '',
    'Effective configuration:',
    ...indent(stringify(configInFileForm(config.config)).trimEnd()),
    '',
    `Resources ${report.nodeName} would advertise:`,
    ...(report.resources.length === 0 ? ['  none'] : report.resources.flatMap(resourceLines)),
    ...hamiLines(report),
    '',
    `GPU feature labels ${report.nodeName} would get (--node-labels nfd|api; gpu.machine and gpu.mode come from the node's sysfs):`,
    ...(Object.keys(report.labels).length === 0
      ? ['  none']
      : Object.entries(report.labels).map(([key, value]) => `  ${key}=${value}`)),
  ];
  io.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * HAMi mode: the node annotations the scheduler would read, every GPU healthy (as at start); the
 * topology scores only with `topologyScore` on.
 */
function hamiAnnotations(
  report: CheckReport,
  resource: ResourceSpec,
): { register: string; score?: string } | undefined {
  const { hami } = report.config.config.sharing;
  if (!hami) return undefined;
  const gpus = registeredGpus(resource.devices, report.inventory, new HealthState(), hami);
  const scores = topologyScoresFor(hami, gpus, TopologyScores.of(report.inventory));
  return {
    register: encodeRegisterAnnotation(gpus),
    ...(scores ? { score: encodeScoreAnnotation(scores.scores) } : {}),
  };
}

/** `hamiRegister` and, with topologyScore on, `hamiScore`: the annotation values as written. */
function hamiJson(report: CheckReport, resource: ResourceSpec): Record<string, string> {
  const annotations = hamiAnnotations(report, resource);
  if (!annotations) return {};
  return {
    hamiRegister: annotations.register,
    ...(annotations.score === undefined ? {} : { hamiScore: annotations.score }),
  };
}

function hamiLines(report: CheckReport): string[] {
  const { hami } = report.config.config.sharing;
  const resource = report.resources.find((r) => r.sharing === 'hami');
  const annotations = resource && hamiAnnotations(report, resource);
  if (!hami || !annotations) return [];
  return [
    '',
    `HAMi scheduler: ${report.nodeName} would register (node annotation ${REGISTER_ANNOTATION}):`,
    `  ${annotations.register}`,
    annotations.score === undefined
      ? `  topology scores (${SCORE_ANNOTATION}): not written (sharing.hami.topologyScore is off)`
      : `  topology scores (node annotation ${SCORE_ANNOTATION}):`,
    ...(annotations.score === undefined ? [] : [`  ${annotations.score}`]),
    `  pods request ${hami.resourceCountName}, ${hami.resourceMemoryName} (MiB), ` +
      `${hami.resourceMemoryPercentageName}, ${hami.resourceCoreName} (%), ${hami.resourcePriorityName}`,
  ];
}

function gpuSummary(inventory: Inventory): string {
  const migs = inventory.gpus.reduce((n, g) => n + g.migDevices.length, 0);
  return `${inventory.gpus.length} GPU(s)${migs > 0 ? `, ${migs} MIG device(s)` : ''}, driver ${inventory.driverVersion}`;
}

function resourceLines(resource: ResourceSpec): string[] {
  const { gpus, migs } = targetsOf(resource);
  const on = [gpus > 0 ? `${gpus} GPU(s)` : '', migs > 0 ? `${migs} MIG device(s)` : '']
    .filter(Boolean)
    .join(' + ');
  const extra = resource.failRequestsGreaterThanOne ? ', at most 1 per container' : '';
  const lines = [
    `  ${resource.name}: ${resource.devices.length} device(s), ${resource.sharing}, on ${on}${extra}`,
  ];
  for (const shape of sliceShapes(resource)) {
    lines.push(
      `    slice: ${shape.memoryMiB} MiB memory, ${shape.corePercent}% of SMs (${shape.count} slice(s))`,
    );
  }
  const ids = resource.devices.map((d) => d.id);
  for (const [i, id] of ids.slice(0, SHOWN_IDS).entries())
    lines.push(`    ${i === 0 ? 'IDs:' : '    '} ${id}`);
  if (ids.length > SHOWN_IDS) lines.push(`         … ${ids.length - SHOWN_IDS} more`);
  return lines;
}

function indent(text: string): string[] {
  return text.split('\n').map((line) => `  ${line}`);
}
