# The demo job of the docker-compose stack (docker-compose.yml runs it, then serves its metrics).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.py MANIFEST.in README.md docker-compose.yml ./
COPY prometheus ./prometheus
COPY grafana ./grafana
COPY configs ./configs
COPY dj_observe ./dj_observe
RUN pip install .
# Run as an unprivileged user; it owns the outputs directory (the compose volume's mount point).
RUN useradd --create-home --uid 10001 dj && mkdir -p /app/outputs && chown dj:dj /app/outputs
USER dj

EXPOSE 9464 9465
CMD ["dj-observe", "--help"]
