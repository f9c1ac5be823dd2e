-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d),
-- as POSTGRES_USER (flashsale, a superuser) against its default database.
-- The same two databases scripts/stack.sh creates: logical shard i lives on
-- database i mod 2, and flashsale_0 also holds the sales. The schema itself is
-- applied by the compose `migrate` service (flashsale migrate up).
CREATE DATABASE flashsale_0 OWNER flashsale;
CREATE DATABASE flashsale_1 OWNER flashsale;
