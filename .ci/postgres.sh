#!/usr/bin/env bash
# Install (if needed) and start a real PostgreSQL server from Debian's packages,
# listening on loopback only, with a database and role for sigil's report-store
# tests. Exports SIGIL_TEST_PG_URL.
#
# Usage:
#   source .ci/postgres.sh        # from .ci/run: sets SIGIL_TEST_PG_URL in the caller
#   bash .ci/postgres.sh          # by hand: prints an `export SIGIL_TEST_PG_URL=...` line
#   eval "$(bash .ci/postgres.sh | tail -n1)"
#
# Idempotent and quick when everything is already in place (a second run only
# checks the cluster is up and the role exists). Must run as root (CI does).
# Written to be sourced: it never calls `exit` and leaves the caller's shell
# options alone; failures print a clear message and return non-zero.

sigil_pg_setup() {
    local db=sigil_test role=sigil password=sigil
    local say='==> postgres.sh:'

    if [ "$(id -u)" -ne 0 ]; then
        echo "$say error: must run as root (installs packages and starts a server as user postgres)" >&2
        return 1
    fi

    # 1. The server binaries, from Debian's packages.
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "$say installing postgresql from Debian packages"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q postgresql >/tmp/sigil-pg-apt.log 2>&1; then
            # A fresh machine may have empty or stale package lists.
            apt-get update -q >>/tmp/sigil-pg-apt.log 2>&1 || true
            if ! apt-get install -y -q postgresql >>/tmp/sigil-pg-apt.log 2>&1; then
                echo "$say error: 'apt-get install -y postgresql' failed; last lines of /tmp/sigil-pg-apt.log:" >&2
                tail -n 15 /tmp/sigil-pg-apt.log >&2
                return 1
            fi
        fi
    fi

    local version
    version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
    if [ -z "$version" ]; then
        echo "$say error: no PostgreSQL version found under /usr/lib/postgresql" >&2
        return 1
    fi

    # 2. A cluster. Debian's package creates "main" on install; a machine image
    #    may lack it (or its data directory), so create it when missing.
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1==v && $2=="main"' | grep -q .; then
        echo "$say creating cluster $version/main"
        if ! pg_createcluster "$version" main >/tmp/sigil-pg-create.log 2>&1; then
            echo "$say error: pg_createcluster $version main failed:" >&2
            cat /tmp/sigil-pg-create.log >&2
            return 1
        fi
    fi

    # Loopback only: tests never need more, and nothing else should reach it.
    local conf="/etc/postgresql/$version/main/postgresql.conf"
    if [ -f "$conf" ] && ! grep -q "^listen_addresses = 'localhost'" "$conf"; then
        printf "\n# set by sigil .ci/postgres.sh\nlisten_addresses = 'localhost'\n" >>"$conf"
    fi

    # 3. Start it (pg_ctlcluster switches to the postgres user itself).
    local status
    status=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}')
    if [ "$status" != "online" ]; then
        echo "$say starting cluster $version/main"
        # The socket directory lives on a tmpfs in many images and may be gone.
        install -d -o postgres -g postgres -m 2775 /var/run/postgresql
        if ! pg_ctlcluster "$version" main start >/tmp/sigil-pg-start.log 2>&1; then
            echo "$say error: pg_ctlcluster $version main start failed:" >&2
            cat /tmp/sigil-pg-start.log >&2
            tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" >&2 2>/dev/null || true
            return 1
        fi
    fi
    local port
    port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')

    local i
    for i in $(seq 1 50); do
        if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
        sleep 0.2
    done
    if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
        echo "$say error: server on 127.0.0.1:$port did not become ready within 10 s" >&2
        tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" >&2 2>/dev/null || true
        return 1
    fi

    # 4. Role and database (idempotent).
    local psql_super=(runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres)
    if ! "${psql_super[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$role'" | grep -q 1; then
        "${psql_super[@]}" -c "CREATE ROLE $role LOGIN PASSWORD '$password'" || {
            echo "$say error: could not create role $role" >&2
            return 1
        }
    fi
    if ! "${psql_super[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1; then
        "${psql_super[@]}" -c "CREATE DATABASE $db OWNER $role" || {
            echo "$say error: could not create database $db" >&2
            return 1
        }
    fi

    # sslmode=disable: loopback only, and Debian's cluster offers TLS with a
    # self-signed "snakeoil" certificate that a verifying client rightly refuses.
    export SIGIL_TEST_PG_URL="postgres://$role:$password@127.0.0.1:$port/$db?sslmode=disable"
    # Prove the DSN works over TCP with a password, as the tests will use it.
    if ! PGPASSWORD="$password" psql -X -q -h 127.0.0.1 -p "$port" -U "$role" -d "$db" -tAc 'SELECT 1' >/dev/null; then
        echo "$say error: cannot log in with $SIGIL_TEST_PG_URL (check pg_hba.conf)" >&2
        return 1
    fi
    echo "$say PostgreSQL $version ready at 127.0.0.1:$port, SIGIL_TEST_PG_URL exported"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Executed, not sourced.
    set -uo pipefail
    sigil_pg_setup || exit 1
    echo "export SIGIL_TEST_PG_URL='$SIGIL_TEST_PG_URL'"
else
    sigil_pg_setup
fi
