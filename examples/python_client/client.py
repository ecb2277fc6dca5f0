#!/usr/bin/env python3
"""Minimal sigil gRPC client (grpcio): match an image file, or a batch of
hashes, and print the verdicts.

    pip install grpcio grpcio-tools
    python -m grpc_tools.protoc -I ../../proto --python_out=. --grpc_python_out=. \
        sigil/v1/common.proto sigil/v1/matcher.proto sigil/v1/reports.proto
    (the generated sigil/ package must be importable: run from this folder, or
    put the --python_out folder on PYTHONPATH)
    # server without auth, for a local trial:
    #   sigil serve --index INDEX_DIR --insecure-loopback
    python client.py --addr 127.0.0.1:50051 image photo.jpg
    python client.py --addr 127.0.0.1:50051 hashes pdq:<64 hex> md5:<32 hex>
    SIGIL_TOKEN=... python client.py --addr sigil.internal:50051 --tls ca.crt image photo.jpg

The image bytes go to the server, are hashed in memory and dropped; the
server never stores them. To keep images on your side, hash them locally
(`sigil hash`) and send only the hashes with the `hashes` command.
"""

import argparse
import os
import sys

import grpc

from sigil.v1 import common_pb2, matcher_pb2, matcher_pb2_grpc

KINDS = {
    "pdq": common_pb2.HASH_KIND_PDQ,
    "md5": common_pb2.HASH_KIND_MD5,
    "sha1": common_pb2.HASH_KIND_SHA1,
    "sha256": common_pb2.HASH_KIND_SHA256,
}


def channel(args):
    # Requests up to the server's default 32 MiB limit.
    options = [("grpc.max_send_message_length", 32 << 20)]
    if args.tls:
        with open(args.tls, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(args.addr, creds, options=options)
    return grpc.insecure_channel(args.addr, options=options)


def metadata():
    token = os.environ.get("SIGIL_TOKEN")
    return [("authorization", f"Bearer {token}")] if token else []


def print_matches(matches):
    for m in matches:
        variant = common_pb2.Dihedral.Name(m.variant)
        print(f"  {m.list}/{m.id} category={m.category} "
              f"kind={common_pb2.HashKind.Name(m.kind)} distance={m.distance} variant={variant}")


def match_image(stub, path, dihedral):
    with open(path, "rb") as f:
        data = f.read()
    req = matcher_pb2.MatchImageRequest(
        image=data,
        content_ref=path,
        request_id=os.path.basename(path),
        options=matcher_pb2.MatchOptions(dihedral=dihedral),
    )
    res = stub.MatchImage(req, metadata=metadata(), timeout=10)
    print(f"{path}: {matcher_pb2.Verdict.Name(res.verdict)} pdq={res.hashes.pdq} "
          f"quality={res.hashes.quality} md5={res.hashes.md5}")
    if res.error:
        print(f"  error: {res.error}")
    if res.report_id:
        print(f"  report stub: {res.report_id}")
    print_matches(res.matches)


def match_hashes(stub, specs):
    queries = []
    for i, spec in enumerate(specs):
        kind, _, hexdigest = spec.partition(":")
        if kind not in KINDS:
            sys.exit(f"{spec!r}: expected KIND:HEX with KIND one of {', '.join(KINDS)}")
        queries.append(matcher_pb2.HashQuery(id=str(i), kind=KINDS[kind], hex=hexdigest))
    res = stub.MatchHashes(matcher_pb2.MatchHashesRequest(hashes=queries),
                           metadata=metadata(), timeout=10)
    for q, r in zip(specs, res.results):
        print(f"{q}: {matcher_pb2.Verdict.Name(r.verdict)}"
              + (f" report={r.report_id}" if r.report_id else ""))
        print_matches(r.matches)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", default="127.0.0.1:50051")
    p.add_argument("--tls", metavar="CA_PEM", help="use TLS, trusting this CA")
    p.add_argument("--wait", type=float, metavar="SECONDS",
                   help="wait up to SECONDS for the server to accept connections "
                        "(a server started a moment ago is still mapping its index)")
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("image")
    pi.add_argument("files", nargs="+")
    pi.add_argument("--dihedral", action="store_true", help="also match rotations/mirrors")
    ph = sub.add_parser("hashes")
    ph.add_argument("specs", nargs="+", metavar="KIND:HEX")
    sub.add_parser("info")
    args = p.parse_args()

    ch = channel(args)
    if args.wait:
        try:
            grpc.channel_ready_future(ch).result(timeout=args.wait)
        except grpc.FutureTimeoutError:
            sys.exit(f"{args.addr}: no server accepted a connection within {args.wait} s")
    stub = matcher_pb2_grpc.MatcherStub(ch)
    try:
        if args.cmd == "image":
            for f in args.files:
                match_image(stub, f, args.dihedral)
        elif args.cmd == "hashes":
            match_hashes(stub, args.specs)
        else:
            info = stub.IndexInfo(matcher_pb2.IndexInfoRequest(), metadata=metadata(), timeout=10)
            print(info)
    except grpc.RpcError as e:
        sys.exit(f"sigil: {e.code().name}: {e.details()}")


if __name__ == "__main__":
    main()
