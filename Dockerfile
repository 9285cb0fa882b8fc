# The lienthong services' image for docker-compose.yml (deployments elsewhere; not used by the tests here).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY lienthong lienthong
COPY producers producers
COPY router router
COPY consumers consumers
COPY schemas schemas
RUN pip install --no-cache-dir . "psycopg[binary]>=3.2" && useradd --system lienthong
USER lienthong
ENTRYPOINT []
