#!/usr/bin/env bash
# partition-scale.sh builds a scratch database with the project's schema,
# MONTHS monthly partitions of audit_log and ROWS_PER_MONTH generated rows in
# each, for measuring partition pruning and query plans at scale
# (docs/scaling.md). Partitions are UNLOGGED (no WAL: the data is disposable)
# and the indexes are dropped during the load and rebuilt afterwards with the
# migrations' names and definitions.
#
# DB is dropped and created anew: point it at a scratch database only.
#
# Usage: DB=audit_scale MONTHS=84 ROWS_PER_MONTH=400000 scripts/partition-scale.sh
# Env: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), FIRST_MONTH (2020-01-01).
set -euo pipefail
cd "$(dirname "$0")/.."
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
DB=${DB:-audit_scale}
MONTHS=${MONTHS:-84}
ROWS_PER_MONTH=${ROWS_PER_MONTH:-400000}
FIRST_MONTH=${FIRST_MONTH:-2020-01-01}
psqlq() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
for f in postgres/migrations/*.up.sql; do psqlq -f "$f"; done

# Indexes go while loading; saved first so that they come back exactly.
psqlq -At -c "SELECT replace(pg_get_indexdef(indexrelid), ' ON ONLY ', ' ON ') || ';' FROM pg_index
	WHERE indrelid = 'audit_log'::regclass AND NOT indisprimary ORDER BY indexrelid" > "/tmp/$DB.indexes.sql"
psqlq -c "ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey"
psqlq -At -c "SELECT 'DROP INDEX ' || indexrelid::regclass || ';' FROM pg_index
	WHERE indrelid = 'audit_log'::regclass" | psqlq

psqlq <<SQL
DO \$\$
DECLARE m date;
BEGIN
  FOR i IN 0..$MONTHS-1 LOOP
    m := date '$FIRST_MONTH' + make_interval(months => i);
    EXECUTE format('CREATE UNLOGGED TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
      'audit_log_' || to_char(m, 'YYYY_MM'), m::timestamptz, (m + interval '1 month')::timestamptz);
  END LOOP;
END \$\$;
SQL

# One month's rows are generated once into a template (hashes and JSON cost
# microseconds a row); each month copies it with its own ids and times.
start=$(date +%s)
psqlq <<SQL
CREATE UNLOGGED TABLE scale_template AS
SELECT n, n::double precision / $ROWS_PER_MONTH AS frac,
       'user-' || (h % 20000) AS principal_id,
       'org-' || (CASE WHEN h % 10 < 5 THEN 1 ELSE h % 10 END) AS organization_id,
       (ARRAY['auth.login','auth.logout','auth.token.refresh','fhir.read','fhir.search',
              'fhir.update','fhir.create','data.export','data.query','admin.user.update',
              'system.startup','fhir.read'])[1 + h % 12] AS action,
       (ARRAY['Patient','Observation','Encounter','User','Session','Dataset'])[1 + h % 6] AS target_resource_type,
       'res-' || (h % 200000) AS target_resource_id,
       CASE WHEN h % 20 = 0 THEN 'failure' ELSE 'success' END AS status,
       md5(n::text) || md5(n::text || 'h') AS hash,
       (ARRAY['PUBLIC','INTERNAL','CONFIDENTIAL','PHI'])[1 + h % 4] AS data_classification,
       (h % 500) / 10.0 AS processing_latency,
       json_build_object('sessionContext', json_build_object('sessionId', 'sess-' || (h % 100000),
           'ipAddress', '10.' || (h % 256) || '.' || (h / 256 % 256) || '.' || (h / 65536 % 256),
           'userAgent', 'Mozilla/5.0 (X11; Linux x86_64)'),
         'resourceVersion', h % 17, 'reason', 'routine access for care delivery') AS details,
       md5(n::text || 'r') || md5(n::text || 'R') AS record_hash
FROM generate_series(0, $ROWS_PER_MONTH - 1) AS g(n),
     LATERAL (SELECT hashint8(n)::bigint & 2147483647 AS h) x;
SQL
echo "template of $ROWS_PER_MONTH rows in $(($(date +%s) - start)) s"
for ((i = 0; i < MONTHS; i++)); do
	psqlq <<SQL
SET synchronous_commit = off;
INSERT INTO audit_log
SELECT id, ts, NULL, principal_id, organization_id, action, target_resource_type, target_resource_id,
       status, NULL, hash, 'SHA-256', '1.0', 'corr-' || (id / 4), data_classification, 'standard',
       processing_latency, NULL, details, ts::text, 'idk-' || id, 'queue', 'verified', NULL, NULL,
       'unsigned', record_hash, ts + interval '40 ms', ts + interval '90 ms'
FROM (SELECT (date '$FIRST_MONTH' + make_interval(months => $i))::timestamptz AS m0,
             (date '$FIRST_MONTH' + make_interval(months => $i + 1))::timestamptz AS m1) b,
     scale_template t,
     LATERAL (SELECT $i::bigint * $ROWS_PER_MONTH + t.n + 1 AS id, b.m0 + (b.m1 - b.m0) * t.frac AS ts) x;
SQL
	echo "month $((i + 1))/$MONTHS loaded, $(($(date +%s) - start)) s"
done
psqlq -c "DROP TABLE scale_template"
psqlq -c "SELECT setval('audit_log_id_seq', greatest($MONTHS::bigint * $ROWS_PER_MONTH, 1), $ROWS_PER_MONTH > 0)" >/dev/null

istart=$(date +%s)
psqlq -c "SET maintenance_work_mem = '512MB'" -c "ALTER TABLE audit_log ADD PRIMARY KEY (id, \"timestamp\")" \
	-f "/tmp/$DB.indexes.sql"
echo "indexes built in $(($(date +%s) - istart)) s"
astart=$(date +%s)
psqlq -c "ANALYZE audit_log"
echo "analyzed in $(($(date +%s) - astart)) s"
psqlq -c "SELECT count(*) AS partitions, pg_size_pretty(sum(pg_total_relation_size(inhrelid))) AS total
	FROM pg_inherits WHERE inhparent = 'audit_log'::regclass"
