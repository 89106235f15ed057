// Medians of rounds and the pass/fail checks of the report.
import type { StreamResult } from './load-protocol.js';

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** One run: every stream of it (the first is the measured one). */
export type Run = StreamResult[];

export interface SideSummary {
  label: string;
  server: string;
  /** The measured stream of each round. */
  rounds: StreamResult[];
  /** Every stream of each round, the measured one first. */
  runs: Run[];
  /** Medians over the rounds of the measured stream. */
  median: { rps: number; p50: number; p99: number };
  /** Non-2xx answers plus connection errors (autocannon's `errors`, which include timeouts), every stream, every round. */
  errors: number;
  /** For refresh chains: the fewest connections that advanced their chain in one round. */
  minChainsWalked?: number;
}

export function summarize(label: string, server: string, runs: Run[]): SideSummary {
  const rounds = runs.map((run) => run[0] as StreamResult);
  const chains = rounds.map((round) => round.chains?.walked).filter((walked) => walked !== undefined);
  return {
    label,
    server,
    rounds,
    runs,
    median: {
      rps: median(rounds.map((round) => round.rps)),
      p50: median(rounds.map((round) => round.p50)),
      p99: median(rounds.map((round) => round.p99)),
    },
    errors: runs.flat().reduce((sum, stream) => sum + stream.non2xx + stream.errors, 0),
    ...(chains.length > 0 ? { minChainsWalked: Math.min(...chains) } : {}),
  };
}

export type Unit = 'ratio' | 'times' | 'count' | 'MB';

export interface Check {
  id: string;
  label: string;
  value: number;
  unit: Unit;
  target: { op: '>=' | '<='; value: number };
  pass: boolean;
}

export function atLeast(id: string, label: string, value: number, target: number, unit: Unit): Check {
  return { id, label, value, unit, target: { op: '>=', value: target }, pass: value >= target };
}

export function atMost(id: string, label: string, value: number, target: number, unit: Unit): Check {
  return { id, label, value, unit, target: { op: '<=', value: target }, pass: value <= target };
}
