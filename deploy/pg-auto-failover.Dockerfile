# PostgreSQL 15 with pg_auto_failover (Debian's package), for docker-compose.ha.yml: the same
# formation scripts/ha.py runs on one machine, one container per node.
FROM postgres:15-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15-auto-failover \
    && rm -rf /var/lib/apt/lists/*
USER postgres
ENV PGDATA=/var/lib/postgresql/data/node
