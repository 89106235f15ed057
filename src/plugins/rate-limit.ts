// Per-IP request budgets on @fastify/rate-limit, counted in our store (Redis: shared by every instance).
// Routes opt in with `config: { rateLimit: perIp(name, max, windowMs) }`; a store failure fails closed (503).
import rateLimit, { type FastifyRateLimitStore, type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { rateLimited } from '../errors.js';
import { rateLimitKey } from '../lib/client-address.js';
import type { Store } from '../store/store.js';

// Unknown URLs share one per-IP budget: probing for routes is reconnaissance.
const NOT_FOUND_PER_IP_PER_MINUTE = 60;

/**
 * A fixed-window budget per client IP, each refusal counted in `auth_rate_limit_hits_total{limit=name}`;
 * `onExceeded` learns who was limited (e.g. to record an event).
 */
export function perIp(
  name: string,
  max: number,
  windowMs: number,
  onExceeded?: (request: FastifyRequest) => void,
): RateLimitOptions {
  return {
    max,
    timeWindow: windowMs,
    // After validation, so a handler of the limit can read the body.
    hook: 'preHandler',
    keyGenerator: (request) => `${name}:${rateLimitKey(request.ip)}`,
    // Once per refused request. A budget is built without an app at hand: the metrics come through the request.
    onExceeded: (request) => {
      request.server.metrics.rateLimitHits.inc({ limit: name });
      onExceeded?.(request);
    },
  };
}

function storeAdapter(store: Store) {
  return class RateLimitStore implements FastifyRateLimitStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow?: number,
    ): void {
      store.hit(`rl:${key}`, timeWindow ?? 60_000).then(
        ({ count, resetInMs }) => callback(null, { current: count, ttl: resetInMs }),
        (error: Error) => callback(error),
      );
    }
    child(): FastifyRateLimitStore {
      return this;
    }
  } as unknown as new (
    options: unknown,
  ) => FastifyRateLimitStore;
}

export default fp(
  async (app) => {
    if (!app.config.rateLimit.enabled) {
      app.log.warn('RATE_LIMIT_ENABLED=false: no rate limits apply');
      return;
    }
    await app.register(rateLimit, {
      global: false,
      store: storeAdapter(app.store),
      // Never fail open: without the counter store, limited routes answer 503.
      skipOnError: false,
      addHeaders: {
        'retry-after': true,
        'x-ratelimit-limit': true,
        'x-ratelimit-remaining': true,
        'x-ratelimit-reset': true,
      },
      errorResponseBuilder: (_request, context) => rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
    });
    // The error-handler plugin's 404 handler runs this first.
    app.notFoundBudget = app.rateLimit(perIp('not-found', NOT_FOUND_PER_IP_PER_MINUTE, 60_000));
  },
  { name: 'rate-limit', dependencies: ['config', 'store', 'error-handler', 'metrics'] },
);
