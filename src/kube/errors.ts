/**
 * The error of a Kubernetes API call, in a module of its own: code that only recognises it (HAMi
 * mode's allocator, loaded with the plugin) does not load the HTTP client with it.
 */

/** The API answered with an error status (or not at all, status 0). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
  }
}
