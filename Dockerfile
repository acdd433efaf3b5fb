# newsbot in a container. Build:  docker build -t newsbot .
# Run:  docker run -d --name newsbot --env-file newsbot.env \
#         -v newsbot-data:/data -v "$PWD/config:/config:ro" -v "$PWD/templates:/templates:ro" \
#         -e NEWSBOT_CONFIG=/config/newsbot.yaml -p 127.0.0.1:9108:9108 newsbot
# The ledger lives on the /data volume (database: sqlite:////data/newsbot.db in the config).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --system --uid 10001 --home-dir /data --create-home newsbot
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install '.[postgres]'
COPY templates /templates
COPY config /config

USER newsbot
VOLUME ["/data"]
EXPOSE 9108
ENV NEWSBOT_CONFIG=/config/newsbot.yaml
# docker stop sends SIGTERM and waits 10 s by default: give it longer with --stop-timeout 45.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4)" || exit 1
ENTRYPOINT ["newsbot"]
CMD ["run"]
