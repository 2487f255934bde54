#!/bin/sh
# A test runner that is not Python: plain psql checks against $DATABASE_URL (libpq reads the PG*
# variables `sqlrs run` sets). Run it with:  sqlrs run -- ./run-tests.sh
set -eu
failed=0
check() {  # check NAME SQL EXPECTED
    got=$(psql -XAtq -v ON_ERROR_STOP=1 -c "$2" 2>&1) || got="error: $got"
    if [ "$got" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected '$3', got '$got'"; failed=1; fi
}
check "ten seeded accounts" "select count(*) from accounts" "10"
check "a transfer moves money" "do \$\$ begin perform transfer(1, 2, 250); end \$\$; select balance_cents from accounts where id = 2" "1250"
check "money is never created" "select sum(balance_cents) from accounts" "10000"
check "an overdraft is refused" "select transfer(3, 4, 5000)" \
      "error: ERROR:  new row for relation \"accounts\" violates check constraint \"accounts_balance_cents_check\"
DETAIL:  Failing row contains (3, -4000).
CONTEXT:  SQL function \"transfer\" statement 1"
exit $failed
