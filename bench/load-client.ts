// The runner's side of the load generator: one request at a time over IPC, answered by bench/load.ts.
import type { LoadResponse, LoadStream, StreamResult } from './load-protocol.js';
import type { Child } from './processes.js';

export class LoadGenerator {
  #nextId = 1;

  constructor(private readonly child: Child) {}

  /** Runs `streams` together for `seconds`; rejects if the load generator fails or dies. */
  run(seconds: number, streams: LoadStream[]): Promise<StreamResult[]> {
    const id = this.#nextId++;
    const { process: child } = this.child;
    return new Promise((resolve, reject) => {
      // autocannon ends a run on its own; this only catches a load generator that hangs.
      const timer = setTimeout(
        () => settle(new Error(`load generator: no answer ${seconds + 60} s into a run`)),
        (seconds + 60) * 1000,
      );
      const onMessage = (message: LoadResponse) => {
        if (message?.id !== id) return;
        if ('error' in message) settle(new Error(`load generator: ${message.error}`));
        else settle(undefined, message.results);
      };
      const onExit = () => settle(new Error(`load generator exited during a run\n${this.child.stderr()}`));
      const settle = (error: Error | undefined, results?: StreamResult[]) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve(results as StreamResult[]);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send({ id, seconds, streams });
    });
  }
}
