/** What an error says, whatever was thrown: for a message to people, where its stack would be noise. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
