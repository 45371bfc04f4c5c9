export async function runDemo(_o: { workers: number; seconds: number; keys: number }): Promise<boolean> {
  return true;
}
