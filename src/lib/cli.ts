// For entry points (server and scripts): load the configuration, or print why it is invalid and exit 1.
import { type Config, ConfigError, loadConfig } from '../config.js';

/**
 * The configuration; on a ConfigError, its message (one line per bad variable, after `prefix`) on stderr and exit
 * code 1. Any other error propagates.
 */
export function loadConfigOrExit(prefix = ''): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${prefix}${error.message}\n`);
    process.exit(1);
  }
}
