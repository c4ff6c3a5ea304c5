/**
 * The pod's own API credentials: the API address from the service environment variables kubelet
 * injects, the cluster CA and the service account token from the projected volume. The token file is
 * re-read on every request, because kubelet rotates bound tokens in place (they expire after an hour).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { HttpKubeClient } from './client.js';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The agent cannot talk to the API from here; the CLI reports it as a usage error. */
export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

/** `https://10.96.0.1:443`, or `https://[fd00::1]:443` for an IPv6 service address. */
export function apiServerUrl(env: NodeJS.ProcessEnv): string {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  const port = env.KUBERNETES_SERVICE_PORT?.trim();
  if (!host || !port) {
    throw new KubeConfigError(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: reading the node label through ' +
        'the API needs the agent to run in a pod',
    );
  }
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Reads the token file each time it is called; an empty file counts as missing. */
export function fileToken(file: string): () => Promise<string> {
  return async () => {
    const token = (await readFile(file, 'utf8')).trim();
    if (token === '') throw new KubeConfigError(`${file}: the service account token file is empty`);
    return token;
  };
}

/** A client with the pod's service account. Fails at once when the pod has no API credentials. */
export async function inClusterClient(
  env: NodeJS.ProcessEnv = process.env,
  dir: string = SERVICE_ACCOUNT_DIR,
): Promise<HttpKubeClient> {
  const server = apiServerUrl(env);
  const token = fileToken(path.join(dir, 'token'));
  let ca: Buffer;
  try {
    ca = await readFile(path.join(dir, 'ca.crt'));
    await token();
  } catch (error) {
    if (error instanceof KubeConfigError) throw error;
    throw new KubeConfigError(
      `cannot read the service account credentials in ${dir}: ${(error as Error).message} ` +
        '(is automountServiceAccountToken disabled for the pod?)',
    );
  }
  return new HttpKubeClient({ server, ca, token });
}
