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
# glibc keeps each freed 19 MiB argon2 buffer in a per-thread arena unless big blocks are always mmapped: a fixed
# threshold returns them to the system (peak RSS on real servers ~210 -> ~150 MiB); two arenas bound the rest.
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=1048576 \
    MALLOC_ARENA_MAX=2 \
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
