-- LoRA Forge database bootstrap: run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d) or by hand with `psql -U postgres -f init.sql`.
-- CREATE DATABASE cannot run inside a function or DO block, so psql's \gexec runs it only when missing.
-- Tables are not created here: `loraforge db upgrade` (Alembic) owns the schema.

-- The catalog.
SELECT 'CREATE DATABASE loraforge'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'loraforge')\gexec

-- Prefect server's own database, kept apart from the catalog so each can be backed up and upgraded alone.
SELECT 'CREATE DATABASE prefect'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'prefect')\gexec
