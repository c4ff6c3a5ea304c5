/** The monitor's mock NVML state types live in src/sim (the demo uses them); tests import them here. */
export * from '../../src/sim/monitor-state.js';
