# syntax=docker/dockerfile:1
# The etcd-ts image: one image, two programs — etcd-ts (the entrypoint; what EtcdCluster members run) and
# etcd-ts-operator (what the Helm chart's Deployment runs, by command).
#
# The build stage runs one command, `make image-stage`, i.e. test/tools/image.sh stage: npm ci, tsc, then a
# runtime tree with production dependencies only. The same script builds the same tree on machines without
# Docker (`make image-rootfs`), where test/integration/image.test.ts starts it the way a container runtime
# starts this image (PID 1, uid 65532, read-only root). The README says what is verified where.
#
# Only linux/amd64: the RocksDB binding ships a prebuilt library for linux-x64 only, and the build stage
# stops with a clear message on other architectures rather than compiling it.

# Full Debian 12 Node 20 image: has make (and compilers, which stay in this stage).
ARG BUILD_IMAGE=node:20-bookworm
# Distroless Node 20 on Debian 12, nonroot variant. Chosen over node:20-bookworm-slim because it has no shell,
# no package manager and no npm/npx/corepack (nothing to remove, nothing an intruder could use), it already
# has the user nonroot = 65532:65532 the operator runs members as, and it has the same Debian 12 glibc and
# libstdc++ as the build stage, which the prebuilt RocksDB binding links against. Node is /nodejs/bin/node
# there; the staged launchers' shebangs name that path.
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# Only what the staging needs, so edits to tests or docs do not invalidate this layer.
COPY Makefile package.json package-lock.json .npmrc tsconfig.json ./
COPY src ./src
COPY operator ./operator
COPY proto ./proto
COPY test/tools/image.sh ./test/tools/image.sh
RUN make image-stage IMAGE_STAGE=/out

FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="etcd-ts" \
      org.opencontainers.image.description="etcd v3 compatible key-value store (etcd-ts) and its Kubernetes operator (etcd-ts-operator)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# The program files are owned by root (COPY's default), so the runtime user cannot change them.
COPY --from=build /out/app /app
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# The working directory is the data volume's mount point: with etcd's default --data-dir (<name>.etcd,
# relative) a plain `docker run` writes there, and members mount their volume at the same path.
COPY --from=build --chown=65532:65532 /out/var/lib/etcd-ts /var/lib/etcd-ts
ENV PATH=/usr/local/bin:/nodejs/bin:/usr/bin:/bin \
    HOME=/home/nonroot
WORKDIR /var/lib/etcd-ts
USER 65532:65532
# client (gRPC + HTTP on one port), peer
EXPOSE 2379 2380
# etcd-ts runs as PID 1 with no init in front: it handles SIGTERM/SIGINT itself (graceful stop, leadership
# transfer), and neither program starts child processes, so there are no zombies to reap. The default stop
# signal (SIGTERM) is the one it handles. No HEALTHCHECK: there is no shell or HTTP client in the image, and
# Kubernetes probes /livez and /readyz directly.
ENTRYPOINT ["etcd-ts"]
CMD []
