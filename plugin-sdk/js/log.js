// Logging into the engine's log, tagged with plugin, tenant and account.
// Inside the engine a line goes to the engine's log (standard error of
// `intake`) and, under `intake plugin test`, into the report's
// `steps[].logs`. The engine keeps at most 50 lines per message and 2048
// bytes per line. (`console.log` goes to captured standard output instead,
// without a level.)
import { write } from 'intake:plugin/log@0.1.0';

/** Very detailed tracing. */
export const trace = (message) => write('trace', String(message));
/** Diagnostic detail. */
export const debug = (message) => write('debug', String(message));
/** Normal operation. */
export const info = (message) => write('info', String(message));
/** Something unexpected that the plugin handled. */
export const warn = (message) => write('warn', String(message));
/** Something failed. */
export const error = (message) => write('error', String(message));
