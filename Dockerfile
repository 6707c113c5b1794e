# syntax=docker/dockerfile:1

# --- builder: build the wheel and install it (with its dependencies) into a venv ---
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
RUN python -m venv /opt/venv

COPY pyproject.toml README.md ./
COPY api/ api/
COPY domain/ domain/
COPY schema/ schema/
COPY auth/ auth/
COPY migrations/ migrations/
COPY dashboard/ dashboard/

RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install /wheels/*.whl

# --- runtime: the venv only, run as a non-root user ---
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORTFOLIO_ENVIRONMENT=production
# DATABASE_URL is not baked in: pass it at run time (docker run -e DATABASE_URL=...).

RUN useradd --create-home --uid 10001 --user-group portfolio
COPY --from=builder /opt/venv /opt/venv

USER portfolio
WORKDIR /home/portfolio

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Migrate the database to head, then replace the shell with the server (so it gets signals).
CMD ["sh", "-c", "portfolio migrate upgrade && exec portfolio serve --host 0.0.0.0 --port 8000"]
