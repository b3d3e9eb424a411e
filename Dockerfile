# syntax=docker/dockerfile:1
# One image for every spvhub service and the ANAF emulator; the command chooses what runs:
#   docker run IMAGE spvhub_auth            (serve)      docker run IMAGE spvhub_auth migrate
#   docker run IMAGE anaf_emulator --host 0.0.0.0 --port 8080 --scenario demo.json
# Target `gateway` builds the nginx gateway with its config, merged OpenAPI and docs page generated from the code.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NGINX_IMAGE=nginx:1.28-alpine

# ---------------------------------------------------------------- build: a venv with pinned packages
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/spvhub
COPY constraints.txt requirements.txt ./
COPY libs/common libs/common
COPY libs/devtools libs/devtools
COPY libs/einvoice libs/einvoice
COPY emulator emulator
COPY services services
# Runtime packages only: requirements.txt without the editable installs and the test/CI tooling.
# spvhub_devtools (never imported by a service) comes without its test dependencies: the gateway-config stage below
# renders nginx.conf with it, and the dev stacks run their mailbox (devmail) from this image, as they run the emulator.
RUN sed -e '/^-e /d' -e '/^#/d' -e '/^$/d' requirements.txt \
      | grep -vxE 'pytest|pytest-asyncio|playwright|aiohttp|ruff|mypy|kubernetes-validate|promql-parser' > /tmp/runtime.txt \
 && /opt/spvhub/bin/pip install -c constraints.txt -r /tmp/runtime.txt \
      ./libs/common ./libs/einvoice ./emulator ./services/auth ./services/portfolio ./services/invitations \
      ./services/efactura ./services/etransport ./services/notifier ./services/webhooks ./services/web \
 && /opt/spvhub/bin/pip install --no-deps ./libs/devtools \
 && /opt/spvhub/bin/python -m compileall -q /opt/spvhub/lib

# ---------------------------------------------------------------- gateway config, generated from the code
FROM build AS gateway-config
COPY infra/nginx/nginx.conf.tmpl infra/nginx/security_headers.conf infra/stack.env /src/infra/
COPY contracts/openapi.json /src/contracts/
# The committed merged OpenAPI is served (CI proves it equals what the code generates).
# In containers every service listens on :8000 under its own name; the gateway listens on :8080 unprivileged.
# Trusted proxies (their X-Forwarded-For names the client): the private ranges the compose network and the cluster's
# pod network live in -- spvhub web calling for the person, the ingress controller; the same as SPVHUB_TRUSTED_PROXIES.
ARG SPVHUB_GATEWAY_TRUSTED_PROXIES=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
ENV SPVHUB_GATEWAY_TRUSTED_PROXIES=${SPVHUB_GATEWAY_TRUSTED_PROXIES}
RUN SPVHUB_ENV=test /opt/spvhub/bin/python -m spvhub_devtools.gateway_conf --template /src/infra/nginx.conf.tmpl \
      --env-file /src/infra/stack.env --out /gateway/nginx.conf --prefix /gateway --listen 8080 \
      --upstream-host '{name}' --upstream-port 8000 --user none \
      --openapi-from contracts --contracts-dir /src/contracts \
 && SPVHUB_ENV=test /opt/spvhub/bin/python -m spvhub_devtools.gateway_conf --template /src/infra/nginx.conf.tmpl \
      --env-file /src/infra/stack.env --out /gateway/nginx-noweb.conf --prefix /gateway --listen 8080 \
      --upstream-host '{name}' --upstream-port 8000 --user none --no-web \
      --openapi-from contracts --contracts-dir /src/contracts \
 && rm -rf /gateway/tmp

FROM ${NGINX_IMAGE} AS gateway
COPY --from=gateway-config --chown=0:0 /gateway /etc/spvhub-gateway
RUN install -d -o 101 -g 101 /etc/spvhub-gateway/tmp
USER 101:101
EXPOSE 8080
# tmp/ (temp files, pid) is the only writable path; mount an emptyDir there with a read-only root filesystem.
ENTRYPOINT []
CMD ["nginx", "-e", "stderr", "-p", "/etc/spvhub-gateway", "-c", "/etc/spvhub-gateway/nginx.conf", "-g", "daemon off;"]

# ---------------------------------------------------------------- app: the default target
FROM ${PYTHON_IMAGE} AS app
RUN groupadd --gid 10001 spvhub \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin spvhub
COPY --from=build /opt/spvhub /opt/spvhub
ENV PATH=/opt/spvhub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SPVHUB_HTTP_HOST=0.0.0.0 \
    SPVHUB_HTTP_PORT=8000
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["python", "-m"]
CMD ["spvhub_auth"]
