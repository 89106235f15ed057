# syntax=docker/dockerfile:1
# Auth service image: compile with dev dependencies, then run dist/ with production dependencies as a non-root user.
# Node 24 is the Active LTS line (supported until April 2028); package.json's engines (>= 20) stays the floor.
ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
# glibc gives each thread that mallocs its own arena, and each keeps the 19 MiB argon2 buffers it freed: one arena
# for the process bounds that to one buffer per concurrent hash (ARGON2_CONCURRENCY). glibc's own mmap threshold
# stays dynamic, so a buffer is reused rather than mapped and faulted in again per hash, which costs a third of a
# login's CPU (MALLOC_MMAP_THRESHOLD_=1 MiB: 42 ms a verification against 28 ms, same peak RSS).
# V8 grows its heap with the allocation rate, not the live data: under 50 connections the heap reached 150 MB
# around ~35 MB of live objects. A heap budget (old space 96 MB, 4 MB semi-spaces) held the benchmark's peak RSS to
# 146 MB at the same throughput; a deployment with far more connections in flight raises it through NODE_OPTIONS.
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=1 \
    NODE_OPTIONS="--max-semi-space-size=4 --max-old-space-size=96" \
    HOST=0.0.0.0 \
    PORT=3000 \
    KEYS_DIR=/app/keys
WORKDIR /app
# Code stays owned by root: the `node` user can read it but not change it.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Applied at boot (under an advisory lock, so several instances can start together).
COPY migrations ./migrations
# The browser app at / and its client module (the web module refuses to boot without them).
COPY web ./web
COPY client ./client
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server.js"]
