import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpKubeClient, KubeApiError, type NodeWatchEvent } from '../../src/kube/client.js';
import {
  apiServerUrl,
  CA_FILE_ENV,
  credentialFiles,
  fileToken,
  inClusterClient,
  KubeConfigError,
  TOKEN_FILE_ENV,
} from '../../src/kube/in-cluster.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A server whose handler the test writes inline. */
async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgpu-sa-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const node = (rv: string) => ({ metadata: { name: 'n', resourceVersion: rv, labels: { a: 'b' } } });

describe('HttpKubeClient', () => {
  it('re-reads the token file on every request (bound tokens rotate in place)', async () => {
    const seen: (string | undefined)[] = [];
    const server = await serve((req, res) => {
      seen.push(req.headers.authorization);
      res.end(JSON.stringify(node('1')));
    });
    const dir = await tempDir();
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, 'first\n');
    const client = new HttpKubeClient({ server, token: fileToken(tokenFile) });
    const signal = new AbortController().signal;
    expect(await client.getNode('n', signal)).toEqual(node('1'));
    await writeFile(tokenFile, 'second');
    await client.getNode('n', signal);
    expect(seen).toEqual(['Bearer first', 'Bearer second']);
  });

  it('splits watch events on newlines, whatever the chunk boundaries', async () => {
    const events: NodeWatchEvent[] = [
      { type: 'MODIFIED', object: node('2') },
      { type: 'BOOKMARK', object: { metadata: { name: '', resourceVersion: '3' } } },
      { type: 'MODIFIED', object: node('4') },
    ];
    const text = events.map((e) => `${JSON.stringify(e)}\n`).join('');
    const server = await serve(async (_req, res) => {
      res.writeHead(200);
      for (let i = 0; i < text.length; i += 7) {
        res.write(text.slice(i, i + 7));
        await new Promise((resolve) => setImmediate(resolve));
      }
      res.end();
    });
    const client = new HttpKubeClient({ server });
    const stream = await client.watchNodes({
      fieldSelector: 'metadata.name=n',
      resourceVersion: '1',
      timeoutSeconds: 5,
      signal: new AbortController().signal,
    });
    const received: NodeWatchEvent[] = [];
    for await (const event of stream) received.push(event);
    expect(received).toEqual(events);
  });

  it('turns error statuses into KubeApiError with the API message', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'nodes "x" not found' }),
      );
    });
    const error = await new HttpKubeClient({ server })
      .getNode('x', new AbortController().signal)
      .catch((e) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect(error).toMatchObject({
      status: 404,
      reason: 'NotFound',
      message: 'GET /api/v1/nodes/x: 404 nodes "x" not found',
    });
  });

  it('merge-patches Node metadata, and names the missing grant when refused', async () => {
    const seen: { method?: string; type?: string; body: string }[] = [];
    const server = await serve((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += String(chunk);
      });
      req.on('end', () => {
        seen.push({ method: req.method, type: req.headers['content-type'], body });
        res.writeHead(seen.length === 1 ? 200 : 403, { 'content-type': 'application/json' });
        res.end(
          seen.length === 1
            ? JSON.stringify({ metadata: { name: 'x', resourceVersion: '2', labels: { a: '1' } } })
            : JSON.stringify({
                kind: 'Status',
                code: 403,
                reason: 'Forbidden',
                message: 'nodes "x" is forbidden',
              }),
        );
      });
    });
    const client = new HttpKubeClient({ server });
    const signal = new AbortController().signal;
    const patch = { labels: { a: '1', b: null }, annotations: { note: 'a' } };
    const node = await client.patchNodeMetadata('x', patch, signal);
    expect(node.metadata.labels).toEqual({ a: '1' });
    expect(seen[0]).toEqual({
      method: 'PATCH',
      type: 'application/merge-patch+json',
      body: JSON.stringify({ metadata: patch }),
    });
    await expect(client.patchNodeMetadata('x', patch, signal)).rejects.toMatchObject({
      status: 403,
      message: 'PATCH /api/v1/nodes/x: 403 nodes "x" is forbidden (the service account needs patch on nodes)',
    });
  });

  it('gives up on a silent server after the request timeout', async () => {
    const server = await serve(() => {
      // never answers
    });
    const client = new HttpKubeClient({ server, requestTimeoutMs: 50 });
    await expect(client.getNode('n', new AbortController().signal)).rejects.toThrow(
      `no answer from ${server} within 50 ms`,
    );
  });
});

describe('in-cluster credentials', () => {
  it('builds the API address from the service variables, IPv6 included', () => {
    expect(apiServerUrl({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' })).toBe(
      'https://10.96.0.1:443',
    );
    expect(apiServerUrl({ KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' })).toBe(
      'https://[fd00:10:96::1]:443',
    );
    expect(() => apiServerUrl({})).toThrow(KubeConfigError);
  });

  it('fails at once without a service account token', async () => {
    const dir = await tempDir();
    const env = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' };
    await expect(inClusterClient(env, dir)).rejects.toThrow(
      /^cannot read the service account credentials \(.*\/token, .*\/ca\.crt\): ENOENT.*\(is automountServiceAccountToken disabled for the pod\? VGPU_AGENT_KUBE_TOKEN_FILE and VGPU_AGENT_KUBE_CA_FILE name other files\)$/,
    );
    await writeFile(path.join(dir, 'ca.crt'), 'pem');
    await writeFile(path.join(dir, 'token'), '');
    await expect(inClusterClient(env, dir)).rejects.toThrow('the service account token file is empty');
    await writeFile(path.join(dir, 'token'), 'abc');
    await expect(inClusterClient(env, dir)).resolves.toBeInstanceOf(HttpKubeClient);
  });

  it('takes the token and CA files from the environment when set, else from the service account volume', () => {
    expect(credentialFiles({}, '/sa')).toEqual({ tokenFile: '/sa/token', caFile: '/sa/ca.crt' });
    expect(credentialFiles({ [TOKEN_FILE_ENV]: '/t/token', [CA_FILE_ENV]: ' /t/ca.pem ' }, '/sa')).toEqual({
      tokenFile: '/t/token',
      caFile: '/t/ca.pem',
    });
    expect(credentialFiles({ [TOKEN_FILE_ENV]: '' }, '/sa').tokenFile).toBe('/sa/token');
  });

  it('reads the files the environment names', async () => {
    const dir = await tempDir();
    const env = {
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
      [TOKEN_FILE_ENV]: path.join(dir, 'my-token'),
      [CA_FILE_ENV]: path.join(dir, 'my-ca.pem'),
    };
    await writeFile(path.join(dir, 'my-token'), 'abc');
    await expect(inClusterClient(env, '/nonexistent')).rejects.toThrow(/ENOENT: .*open '.*my-ca\.pem'/);
    await writeFile(path.join(dir, 'my-ca.pem'), 'pem');
    await expect(inClusterClient(env, '/nonexistent')).resolves.toBeInstanceOf(HttpKubeClient);
  });
});
