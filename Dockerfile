# bridge: one image for `bridge run`, the setup of a site (scripts/site-setup) and the
# demo's legacy writer (scripts/legacy-writer). See docs/demo.md ("Try it with Docker").
#
#   docker build -t bridge .                                # PostgreSQL, MariaDB
#   docker build --target bridge-multi-dialect -t bridge:multi-dialect .
#                                # + SQL Server (pyodbc, Microsoft ODBC Driver 18) and
#                                #   Oracle (python-oracledb, thin mode: no Oracle client)
#
# Configuration comes from the environment at run time (BRIDGE_<KEY>,
# docs/configuration.md): the image holds no configuration and no secret.

FROM python:3.11.14-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# an unprivileged user of its own: bridge needs no file it writes, no port below 1024
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin bridge

WORKDIR /app

# the scripts scripts/demo runs too (docker-compose.yml runs them as python scripts/...)
COPY scripts/site-setup scripts/legacy-writer /app/scripts/

# `bridge status` exits non-zero when it cannot read the site's state (database down,
# bridge not initialised)
HEALTHCHECK --interval=30s --timeout=20s --start-period=30s --retries=3 \
    CMD ["bridge", "status"]

CMD ["bridge", "run"]

# ------------------------------------------------------------------ multi-dialect target
FROM base AS bridge-multi-dialect

# (SHELL is inherited from base; said again for hadolint, which checks each stage alone)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Microsoft's ODBC Driver 18 for SQL Server, from Microsoft's Debian 12 repository, as
# Microsoft documents it; curl and gnupg only for that, removed afterwards.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
    && curl -fsSL https://packages.microsoft.com/keys/microsoft.asc \
        | gpg --dearmor -o /usr/share/keyrings/microsoft-prod.gpg \
    && curl -fsSL https://packages.microsoft.com/config/debian/12/prod.list \
        -o /etc/apt/sources.list.d/mssql-release.list \
    && apt-get update \
    && ACCEPT_EULA=Y apt-get install -y --no-install-recommends msodbcsql18 unixodbc \
    && apt-get purge -y --auto-remove curl gnupg \
    && rm -rf /var/lib/apt/lists/*
# (DL3008: the apt packages follow Debian 12's and Microsoft's security updates instead
# of versions pinned here, which the repositories drop as soon as they are superseded)

COPY pyproject.toml README.md /tmp/src/
COPY bridge /tmp/src/bridge
COPY sql_templates /tmp/src/sql_templates
RUN pip install --no-cache-dir "/tmp/src[mssql,oracle]" \
    && rm -rf /tmp/src

USER 10001:10001

# ------------------------------------------------------------- default target: bridge
FROM base AS bridge

COPY pyproject.toml README.md /tmp/src/
COPY bridge /tmp/src/bridge
COPY sql_templates /tmp/src/sql_templates
RUN pip install --no-cache-dir "/tmp/src[mariadb]" \
    && rm -rf /tmp/src

USER 10001:10001
