# syntax=docker/dockerfile:1
# The vgpu-agent image: one image for the device plugin and the monitor (`vgpu-agent plugin`,
# `vgpu-agent monitor`). Node.js 24 (the image's runtime) on Debian bookworm, production dependencies
# only, non-root by default; the Helm chart runs as root only the containers that need it.
#
#   docker build -t vgpu-agent:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/vgpu-agent:0.1.0 --push .
#
# The build stages run on the build machine's architecture (--platform=$BUILDPLATFORM): the compiled
# JavaScript is the same everywhere, and the only native addon, koffi, is installed with its prebuilt
# binaries for both linux-x64 and linux-arm64, so the same node_modules serves either target.
ARG BASE_IMAGE=node:24-bookworm-slim

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS build
WORKDIR /build
COPY package.json package-lock.json ./
# --omit=optional: the compiler needs no platform binaries (linters', bundlers', koffi's).
# --ignore-scripts: koffi's install script only looks for its prebuilt, and protobufjs' checks versions.
RUN npm ci --omit=optional --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json \
 && chmod 755 dist/cli/main.js

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS deps
WORKDIR /deps
COPY package.json package-lock.json ./
COPY scripts/koffi-prebuilts.mjs ./scripts/
# Production dependencies, plus koffi's glibc prebuilts for both CPUs at the lockfile's version and
# integrity. Pruned, as nothing loads them at run time: koffi's musl prebuilts (the base is glibc), type
# declarations and source maps; measured, 28.6 MB of files become 19.4 MB. The last step loads koffi,
# as the agent does.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && node scripts/koffi-prebuilts.mjs linux-x64 linux-arm64 \
 && rm -rf node_modules/@types \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' \) -delete \
 && node -e "require('koffi')"

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=""
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="vgpu-agent" \
      org.opencontainers.image.description="Kubernetes node agent sharing NVIDIA GPUs: kubelet device plugin and GPU usage exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /opt/vgpu-agent
COPY package.json ./
# The ready node descriptions `vgpu-agent config check` describes a node with (no GPU needed).
COPY native/mock-nvml/nodes ./native/mock-nvml/nodes
COPY --from=deps /deps/node_modules ./node_modules
COPY --from=build /build/dist ./dist
RUN ln -s /opt/vgpu-agent/dist/cli/main.js /usr/local/bin/vgpu-agent
# V8's compile cache (Node >= 22.1), warmed here by importing every module once, so that a start finds
# them compiled (docs/performance.md). Read-only at run time (the chart's read-only root file system):
# Node then only reads it. Node keeps one subdirectory per user id and never reads another user's, so
# it is warmed for root (the chart runs both containers as root) and for the image's user 1000.
ENV NODE_COMPILE_CACHE=/opt/vgpu-agent/compile-cache
ARG WARM_COMPILE_CACHE="import { readdirSync } from 'node:fs'; \
  for (const f of readdirSync('dist', { recursive: true })) \
    if (f.endsWith('.js') && f !== 'cli/main.js') await import('./dist/' + f);"
RUN mkdir compile-cache \
 && node --input-type=module -e "$WARM_COMPILE_CACHE" \
 && vgpu-agent version >/dev/null \
 && chmod -R a+rX compile-cache \
 && chown 1000:1000 compile-cache
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
RUN node --input-type=module -e "$WARM_COMPILE_CACHE" && vgpu-agent version >/dev/null
ENTRYPOINT ["vgpu-agent"]
CMD ["--help"]
