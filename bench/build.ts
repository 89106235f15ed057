// The JavaScript every server process of the benchmark runs: src/ and bench/ transpiled file by file (TypeScript's
// transpileModule, no type check: `npm run typecheck` does that) into a temporary folder, so the servers run on
// plain `node` as production runs dist/, without tsx's loader thread and its source maps, which cost a bare
// Fastify process ~30 MB of RSS and the service more.
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ts from 'typescript';

export interface Build {
  /** Root of the transpiled tree: `<dir>/src/...`, `<dir>/bench/...`. */
  dir: string;
  /** The JavaScript file of a source file, e.g. `bench/service.ts` → `<dir>/bench/service.js`. */
  file(source: string): string;
  remove(): Promise<void>;
}

const TRANSPILED = ['src', 'bench'];
// What the code reads next to itself (migrations, the browser app, packages), at the same depth as in the checkout.
const LINKED = ['migrations', 'web', 'client', 'node_modules', 'package.json'];

const compilerOptions: ts.CompilerOptions = {
  // As tsconfig.json, but always ES modules: transpileModule cannot see package.json's "type" for NodeNext.
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ES2022,
  isolatedModules: true,
  esModuleInterop: true,
  sourceMap: false,
};

export async function buildForBench(repoRoot: string): Promise<Build> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auth-bench-build-'));
  try {
    for (const folder of TRANSPILED) {
      const entries = await readdir(path.join(repoRoot, folder), { recursive: true });
      for (const entry of entries.filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))) {
        const source = path.join(folder, entry);
        const text = await readFile(path.join(repoRoot, source), 'utf8');
        const { outputText } = ts.transpileModule(text, { compilerOptions, fileName: source });
        const target = path.join(dir, source.replace(/\.ts$/, '.js'));
        await mkdir(path.dirname(target), { recursive: true });
        await writeFile(target, outputText);
      }
    }
    for (const name of LINKED) await symlink(path.join(repoRoot, name), path.join(dir, name));
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    file: (source) => path.join(dir, source.replace(/\.ts$/, '.js')),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
