// Helpers shared by the example: errors the host understands, and configuration parsing.
// WIT -> JS (componentize-js): records are objects with camelCase fields, variants `{ tag, val }`,
// enums kebab-case strings, u64 a BigInt, option<T> the value or undefined; an exported
// result's error is thrown as an Error whose `payload` is the step-error variant.

export class StepError extends Error {
  constructor(tag, message) {
    super(message);
    this.payload = { tag, val: message };
  }
}

export function parseConfig(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StepError('invalid-config', `configuration is not JSON: ${error.message}`);
  }
}

/** Runs `body`, turning anything unexpected into a `failed` step error instead of a trap. */
export function guarded(body) {
  try {
    return body();
  } catch (error) {
    if (error instanceof StepError) throw error;
    throw new StepError('failed', `internal error: ${error?.message ?? error}`);
  }
}
