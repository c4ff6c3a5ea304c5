/**
 * The pod's own API credentials, located the way in-cluster clients do: the API address from the
 * service variables kubelet injects (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`), the cluster
 * CA and the service account token from the projected volume. Two variables move the files elsewhere
 * (`VGPU_AGENT_KUBE_TOKEN_FILE`, `VGPU_AGENT_KUBE_CA_FILE`): a token mounted at another path, or a
 * test against a local API server with its own CA. The token file is re-read on every request,
 * because kubelet rotates bound tokens in place (they expire after an hour).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { HttpKubeClient } from './client.js';

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The variables that override where the credential files are (documented in docs/configuration.md). */
export const TOKEN_FILE_ENV = 'VGPU_AGENT_KUBE_TOKEN_FILE';
export const CA_FILE_ENV = 'VGPU_AGENT_KUBE_CA_FILE';

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
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: reading the API needs the agent ' +
        'to run in a pod (or these variables to name the API server)',
    );
  }
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Where the token and CA files are: the service account volume, unless the environment says otherwise. */
export function credentialFiles(
  env: NodeJS.ProcessEnv,
  dir: string = SERVICE_ACCOUNT_DIR,
): { tokenFile: string; caFile: string } {
  return {
    tokenFile: env[TOKEN_FILE_ENV]?.trim() || path.join(dir, 'token'),
    caFile: env[CA_FILE_ENV]?.trim() || path.join(dir, 'ca.crt'),
  };
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
  const { tokenFile, caFile } = credentialFiles(env, dir);
  const token = fileToken(tokenFile);
  let ca: Buffer;
  try {
    ca = await readFile(caFile);
    await token();
  } catch (error) {
    if (error instanceof KubeConfigError) throw error;
    throw new KubeConfigError(
      `cannot read the service account credentials (${tokenFile}, ${caFile}): ${(error as Error).message} ` +
        `(is automountServiceAccountToken disabled for the pod? ${TOKEN_FILE_ENV} and ${CA_FILE_ENV} name other files)`,
    );
  }
  return new HttpKubeClient({ server, ca, token });
}
