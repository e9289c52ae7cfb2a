# The backbone's own processes (CLI, workers, collector) for docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY omnichannel ./omnichannel
COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
COPY api ./api
RUN pip install --no-cache-dir .
ENTRYPOINT []
CMD ["omnichannel", "--help"]
