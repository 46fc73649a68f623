# mlab-etl: the production worker image (`serve` by default; any other command works too).
# The same steps are checked without a Docker engine by .ci/package-check.

# Node.js 22 (maintenance LTS until April 2027): Node 20 reached its end of life in April 2026.
# .ci/run runs the test suite (but its end-to-end files) on the major version named here too.
FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Dependencies first, for the layer cache; `prepare` (the build) runs below, with the sources.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY parsers ./parsers
COPY schemas ./schemas
RUN npm run build

FROM node:22-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY schemas ./schemas
ARG GIT_COMMIT=""
ENV MLAB_ETL_GIT_COMMIT=${GIT_COMMIT}
# The node image's unprivileged user; the root filesystem can be mounted read-only (see deploy/).
USER node
EXPOSE 8080
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
