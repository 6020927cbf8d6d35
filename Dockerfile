# podplex's DaemonSet image: the node artifact (scripts/artifact.sh: entry, one bundle, the
# Deno runtime, libnl copies, the serve client) on a small base, `podplex install` as the
# entrypoint (deploy/daemonset.yaml passes its flags).
#
# Elsewhere: podman build -t podplex .   (or docker build). Offline on a machine without a
# registry: scripts/image.sh makes the two base images below from Debian packages first.
ARG BUILD_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
ARG DENO_VERSION=2.9.6
# gcc for the serve client, libnl for the artifact to copy; a no-op when the base has them.
RUN missing=""; \
    for p in gcc libc6-dev libnl-3-200 libnl-route-3-200; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || \
        missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && \
      rm -rf /var/lib/apt/lists/*; \
    fi
# Deno from the npm registry, as scripts/setup.sh installs it.
RUN npm install --prefer-offline --no-audit --no-fund --prefix /opt/deno "deno@${DENO_VERSION}"
ENV DENO=/opt/deno/node_modules/.bin/deno
WORKDIR /src
COPY deno.json deno.lock ./
RUN "$DENO" install --quiet
COPY . .
RUN bash scripts/artifact.sh /artifact

FROM ${RUNTIME_IMAGE}
# iptables and nft for ipMasq and macspoofchk, which thick mode runs in this container; a no-op
# when the base has them.
RUN missing=""; \
    for p in iptables nftables; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || \
        missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && \
      rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /artifact /podplex
ENTRYPOINT ["/podplex/podplex", "install"]
CMD ["--watch"]
