"""Flight SQL from a client the project did not write: ADBC's Python driver (DBAPI).

Usage: flightsql.py HOST:PORT COLLECTION DIM

The collection holds ids 0..N with vector i = [i, i, ..., i]. Checks a count, an index search
in pgvector's shape, vector_search with a SET in the same request, and that bad SQL comes back
as an error naming the problem while the server keeps answering.
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager

addr, name, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
query = "[" + ",".join(["7.2"] * dim) + "]"

with flightsql.connect(f"grpc://{addr}", autocommit=True) as conn:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) AS n FROM {name}")
        (n,) = cur.fetchone()
        assert n > 10, n

        cur.execute(f"SELECT id FROM {name} ORDER BY vector <-> '{query}' LIMIT 3")
        ids = [row[0] for row in cur.fetchall()]
        assert ids == [7, 8, 6], ids

        cur.execute(
            f"SET drift.nprobe = 4; "
            f"SELECT id, _distance FROM vector_search('{name}', {query}, 5)"
        )
        table = cur.fetch_arrow_table()
        assert table.num_rows == 5, table
        assert table.column("id").to_pylist()[0] == 7, table
        distances = table.column("_distance").to_pylist()
        assert distances == sorted(distances), distances

        for bad, says in [("SELEC 1", "SELEC"), ("SELECT id FROM nope", "nope")]:
            try:
                cur.execute(bad)
                cur.fetchall()
            except adbc_driver_manager.Error as e:
                assert says in str(e), (bad, str(e))
            else:
                raise AssertionError(f"{bad!r} did not fail")

        cur.execute(f"SELECT count(*) FROM {name}")
        assert cur.fetchone()[0] == n

print(f"flight sql via adbc: count {n}, nearest {ids}, errors named")
