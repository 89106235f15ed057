// `npm run lint:openapi`: builds the app in-process on the embedded defaults (PGlite, embedded store, a generated
// development key, all in a temporary folder), writes its OpenAPI document to a temporary file and runs
// `redocly lint --extends recommended` on it. Exits with redocly's status.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { runTool } from './run-tool.js';

/** Runs redocly's recommended rules on a document file; resolves with its exit code. */
export function redoclyLint(file: string, args: string[] = []): Promise<{ code: number | null; output: string }> {
  return runTool('redocly', ['lint', '--extends', 'recommended', ...args, file], {
    ...process.env,
    REDOCLY_TELEMETRY: 'off',
    REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
  });
}

async function main(): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-openapi-'));
  try {
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATA_DIR: path.join(dir, 'data'),
      KEYS_DIR: path.join(dir, 'keys'),
    });
    const app = await buildApp(config, { logger: false });
    let document: string;
    try {
      // Indented, so redocly's excerpts show a few lines rather than one long one.
      document = JSON.stringify((await app.inject({ method: 'GET', url: '/docs/json' })).json(), null, 2);
    } finally {
      await app.close();
    }
    const file = path.join(dir, 'openapi.json');
    await writeFile(file, document);
    const { code, output } = await redoclyLint(file);
    process.stdout.write(output);
    return code ?? 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
