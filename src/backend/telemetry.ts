/**
 * ONNX Runtime's telemetry, off unless the user opts in (`backend.telemetry: true`).
 *
 * ONNX Runtime 1.29 and later build Microsoft's 1DS telemetry into the Linux library, on by
 * default: the first session of a process reads /etc/machine-id, writes `.ses` and
 * `mat-debug-<pid>.log` into the temporary folder and a device id and an event database under
 * `~/.cache/Microsoft/DeveloperTools/.onnxruntime/`, and may upload. The library reads the
 * environment variable `ORT_DISABLE_TELEMETRY` once, when the process's ONNX Runtime environment
 * is created (the first session): setting it to `1` before then turns all of that off (checked
 * with strace against onnxruntime-node 1.30: no file, no machine id, no socket).
 *
 * Importing this module sets the default (off) for the whole process, so every entry point that
 * imports the backend, the compressor or the CLI is covered before any session exists.
 */

/** The environment variable ONNX Runtime reads (core/platform/posix/telemetry.cc). */
export const ORT_TELEMETRY_ENV = 'ORT_DISABLE_TELEMETRY';

// What the user's environment said before this module touched it: an explicit value wins over the
// parameter in both directions, so `ORT_DISABLE_TELEMETRY=1` is never undone by a parameter file.
const fromEnvironment = process.env[ORT_TELEMETRY_ENV];
if (fromEnvironment === undefined) process.env[ORT_TELEMETRY_ENV] = '1';

/**
 * Apply `backend.telemetry` before a session is created: `false` (the default) keeps ONNX
 * Runtime's telemetry off, `true` leaves ONNX Runtime's own default (on). A value the user set in
 * the environment is kept either way. Takes effect only before the process's first session.
 *
 * @returns whether ONNX Runtime telemetry is disabled by the environment now.
 */
export function applyTelemetryPolicy(enabled: boolean): boolean {
  if (fromEnvironment === undefined) {
    if (enabled) delete process.env.ORT_DISABLE_TELEMETRY;
    else process.env[ORT_TELEMETRY_ENV] = '1';
  }
  return telemetryDisabled();
}

/** Whether the environment tells ONNX Runtime to send no telemetry. */
export function telemetryDisabled(): boolean {
  const v = process.env[ORT_TELEMETRY_ENV];
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}
