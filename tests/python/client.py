"""A new user's first Drift client: stubs generated from connectors/proto/drift.proto with
grpcio-tools, then create a collection, upsert, search, and check an error status.

Usage: python3 client.py HOST:PORT PROTO_DIR
"""
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="drift-py-")
    rc = protoc.main([
        "protoc",
        f"-I{proto_dir}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(proto_dir, "drift.proto"),
    ])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    import drift_pb2
    import drift_pb2_grpc
    return drift_pb2, drift_pb2_grpc


def main():
    addr, proto_dir = sys.argv[1], sys.argv[2]
    pb, rpc = stubs(proto_dir)
    with grpc.insecure_channel(addr) as channel:
        stub = rpc.DriftStub(channel)
        assert stub.Health(pb.HealthRequest()).status == "serving"
        stub.CreateCollection(pb.CreateCollectionRequest(name="py", dim=3, metric="cosine"))
        records = [
            pb.Record(id=i, vector=[1.0, float(i), 0.5], payload='{"n": %d}' % i)
            for i in range(1, 101)
        ]
        stub.Upsert(pb.UpsertRequest(collection="py", records=records))
        hits = stub.Search(pb.SearchRequest(
            collection="py", vector=[1.0, 42.0, 0.5], k=3, with_payload=True)).hits
        assert hits[0].id == 42, hits
        assert hits[0].payload == '{"n": 42}', hits[0].payload
        try:
            stub.Upsert(pb.UpsertRequest(
                collection="py", records=[pb.Record(id=1, vector=[1.0, 2.0])]))
            sys.exit("a wrong dimension was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
            assert "dimension" in e.details(), e.details()
        try:
            stub.Search(pb.SearchRequest(collection="nope", vector=[1, 2, 3], k=1))
            sys.exit("an unknown collection was found")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
        listed = stub.ListCollections(pb.ListCollectionsRequest()).collections
        assert [(c.name, c.live_vectors) for c in listed] == [("py", 100)], listed
    print("python client ok: top hit", hits[0].id, "distance", round(hits[0].distance, 6))


if __name__ == "__main__":
    main()
