// What every child process of the benchmark does: report readiness to the runner over IPC, and die with it.
import type { AddressInfo } from 'node:net';

/** The first message a child sends: its port, for servers. */
export interface ReadyMessage {
  type: 'ready';
  port?: number;
}

/**
 * The IPC channel closes when the runner exits, however it exits (even kill -9): no server outlives a run, and no
 * pid file is needed.
 */
export function exitWithParent(): void {
  if (!process.send) throw new Error('this script is a child of bench/run.ts (it needs an IPC channel)');
  process.on('disconnect', () => process.exit(0));
}

export function announceReady(server?: { server: { address(): AddressInfo | string | null } }): void {
  const address = server?.server.address();
  const message: ReadyMessage = {
    type: 'ready',
    port: typeof address === 'object' && address ? address.port : undefined,
  };
  process.send?.(message);
}
