// Creates the embedded database's cluster (PGlite's initdb) in the folder given, then exits: run by openPglite in
// src/db/client.ts on a new data folder, so initdb's memory is this short-lived process's, not the server's.
import { createPgliteCluster } from './client.js';

const [directory] = process.argv.slice(2);
if (!directory) {
  process.stderr.write('usage: pglite-initdb <folder>\n');
  process.exit(2);
}
await createPgliteCluster(directory);
// The process's peak, in KiB, for whoever wants it (bench/embedded-memory.ts); the server ignores stdout.
process.stdout.write(`${JSON.stringify({ peakRssKb: process.resourceUsage().maxRSS })}\n`);
