export { ConfigMapVolume } from '../../src/sim/configmap-volume.js';
