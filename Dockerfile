# onepin-mcp in a container. See docs/deployment.md.
#
#   docker build -t onepin-mcp .
#   docker run -i --rm -e ONEPIN_API_KEY onepin-mcp                # stdio, for a desktop client
#   docker run --rm -p 8000:8000 -e ONEPIN_MCP_TRANSPORT=streamable-http \
#     -e ONEPIN_MCP_HTTP_TOKEN -e ONEPIN_API_KEY onepin-mcp          # Streamable HTTP at :8000/mcp
#
# Serving is configured by environment only (ONEPIN_MCP_*), so that the health check below sees
# the same settings as the server. HTTP binds 0.0.0.0 in the container, which the server refuses
# without client auth (exit 2): set ONEPIN_MCP_HTTP_TOKEN, or ONEPIN_MCP_AUTH=passthrough.

# --- build: the wheel, installed with its dependencies into a virtual environment -------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY onepin_mcp ./onepin_mcp
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/onepin-mcp \
    && /opt/onepin-mcp/bin/pip install /wheels/*.whl \
    && /opt/onepin-mcp/bin/pip uninstall --yes pip

# --- run: the virtual environment on a clean base, as an unprivileged user ---------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="onepin-mcp" \
      org.opencontainers.image.description="MCP server for OnePin voice-generation workflows" \
      org.opencontainers.image.licenses="MIT"

RUN groupadd --system --gid 10001 onepin \
    && useradd --system --uid 10001 --gid onepin --create-home --home-dir /home/onepin \
       --shell /usr/sbin/nologin onepin

COPY --from=build /opt/onepin-mcp /opt/onepin-mcp

# stdio unless ONEPIN_MCP_TRANSPORT says otherwise. The address and port only apply to HTTP.
ENV PATH="/opt/onepin-mcp/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONEPIN_MCP_HOST=0.0.0.0 \
    ONEPIN_MCP_PORT=8000

USER 10001:10001
WORKDIR /home/onepin
EXPOSE 8000

# Over HTTP, healthy when GET /healthz (no auth) answers {"status": "ok"}. Over stdio there is
# no port to probe: the server is its process, which the engine already watches, so healthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import json, os, sys, urllib.request; \
env = lambda name, default: os.environ.get(name, '').strip() or default; \
transport = env('ONEPIN_MCP_TRANSPORT', 'stdio').lower(); \
transport == 'stdio' and sys.exit(0); \
url = 'http://127.0.0.1:%s/healthz' % env('ONEPIN_MCP_PORT', '8000'); \
answer = json.load(urllib.request.urlopen(url, timeout=4)); \
sys.exit(0 if answer.get('status') == 'ok' else 1)"]

ENTRYPOINT ["onepin-mcp"]
